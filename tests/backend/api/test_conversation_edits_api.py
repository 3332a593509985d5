"""Search, rename and dropping replaced exchanges (/api/v1/conversations), through the
real app with history written by real /v1 chats (the fake LLM answers)."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from backend.conversations.service import excerpt, title_of
from backend.db.models import TrainingExample
from backend.runtime import Runtime
from tests.conftest import audit_events, client_as, make_key
from tests.fakes.openai_server import FakeOpenAI, Reply


async def chat(
    client: httpx.AsyncClient, text: str, conversation_id: str | None = None, model: str = "auto"
) -> dict[str, str]:
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if conversation_id:
        body["conversation_id"] = conversation_id
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    info = r.json()["expertgate"]
    return {"conversation_id": info["conversation_id"], "request_id": info["request_id"]}


def test_excerpt_cuts_around_the_first_hit_on_one_line() -> None:
    text = "alpha " * 20 + "the\nLiability cap is twelve months " + "omega " * 20
    got = excerpt(text, "liability cap", context=10)
    assert got.startswith("…") and got.endswith("…")
    assert "Liability cap" in got and "\n" not in got
    assert excerpt("short text", "text", context=40) == "short text"
    assert excerpt("nothing here", "cap") == ""
    assert title_of("  first line\nsecond") == "first line"


async def test_search_finds_titles_and_message_text_only_of_the_caller(
    client: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    llm.script(Reply("Use an interactive rebase."), Reply("The cap is twelve months of fees."), Reply("Reset it."))
    git = await chat(client, "how do I squash commits")
    msa = await chat(client, "what is the liability cap")
    other_key = await make_key(runtime, "bob@example.com")
    async with client_as(runtime, other_key) as bob:
        await chat(bob, "twelve months of what exactly?")

    # In an answer's text, case-insensitive: alice's conversation only, with an excerpt.
    r = await client.get("/api/v1/conversations", params={"q": "TWELVE months"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [c["id"] for c in data] == [msa["conversation_id"]]
    assert "twelve months" in data[0]["match"]
    # In a title (and the question): found.
    r = await client.get("/api/v1/conversations", params={"q": "squash"})
    assert [c["id"] for c in r.json()["data"]] == [git["conversation_id"]]
    # LIKE wildcards are taken literally; nothing matches.
    r = await client.get("/api/v1/conversations", params={"q": "%"})
    assert r.json()["data"] == []
    # No search: everything, no excerpts.
    r = await client.get("/api/v1/conversations")
    assert len(r.json()["data"]) == 2 and all(c["match"] is None for c in r.json()["data"])
    r = await client.get("/api/v1/conversations", params={"q": "x" * 201})
    assert r.status_code == 400


async def test_rename_is_owner_only_and_keeps_the_order(
    client: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    llm.script(Reply("one"), Reply("two"))
    first = (await chat(client, "first question"))["conversation_id"]
    second = (await chat(client, "second question"))["conversation_id"]
    r = await client.patch(f"/api/v1/conversations/{first}", json={"title": "  Git   help \n"})
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "Git help"
    listed = (await client.get("/api/v1/conversations")).json()["data"]
    assert [(c["id"], c["title"]) for c in listed] == [(second, "second question"), (first, "Git help")]
    # Searchable by its new title.
    r = await client.get("/api/v1/conversations", params={"q": "git help"})
    assert [c["id"] for c in r.json()["data"]] == [first]
    for bad in ({"title": "   "}, {"title": "x" * 201}, {"name": "x"}):
        r = await client.patch(f"/api/v1/conversations/{first}", json=bad)
        assert r.status_code == 400, bad
    other_key = await make_key(runtime, "bob@example.com")
    async with client_as(runtime, other_key) as bob:
        r = await bob.patch(f"/api/v1/conversations/{first}", json={"title": "mine now"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "conversation_not_found"
    assert (await client.get(f"/api/v1/conversations/{first}")).json()["title"] == "Git help"


async def test_regenerate_replaces_the_last_answer_and_both_requests_stay_audited(
    client: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    llm.script(Reply("Use git rebase -i."), Reply("First take."), Reply("Second take."))
    one = await chat(client, "how do I squash commits")
    conv = one["conversation_id"]
    old = await chat(client, "and then push?", conv)
    new = await chat(client, "and then push?", conv)  # the regenerated answer, same question
    r = await client.post(f"/api/v1/conversations/{conv}/drop-exchanges", json={"request_ids": [old["request_id"]]})
    assert r.status_code == 200, r.text
    messages = r.json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "how do I squash commits"),
        ("assistant", "Use git rebase -i."),
        ("user", "and then push?"),
        ("assistant", "Second take."),
    ]
    assert messages[3]["request_id"] == new["request_id"]
    # Reading it again says the same; the title did not change.
    detail = (await client.get(f"/api/v1/conversations/{conv}")).json()
    assert [m["content"] for m in detail["messages"]] == [m["content"] for m in messages]
    assert detail["title"] == "how do I squash commits"
    # Every request is in the audit trail, the dropped one too, and the drop itself.
    audited = {e.request_id for e in await audit_events(runtime, action="chat.completion")}
    assert {one["request_id"], old["request_id"], new["request_id"]} <= audited
    drops = await audit_events(runtime, action="conversation.exchanges_dropped")
    assert len(drops) == 1 and drops[0].payload == {"conversation_id": conv, "request_ids": [old["request_id"]]}


async def test_edit_drops_the_edited_exchange_and_what_followed_and_retitles(
    client: httpx.AsyncClient, llm: FakeOpenAI
) -> None:
    llm.script(Reply("a1"), Reply("a2"), Reply("a3"), Reply("edited answer"))
    first = await chat(client, "original first question")
    conv = first["conversation_id"]
    second = await chat(client, "second", conv)
    await chat(client, "third", conv)
    third = (await client.get(f"/api/v1/conversations/{conv}")).json()["messages"][4]["request_id"]
    edited = await chat(client, "edited first question", conv)
    r = await client.post(
        f"/api/v1/conversations/{conv}/drop-exchanges",
        json={"request_ids": [first["request_id"], second["request_id"], third]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [m["content"] for m in body["messages"]] == ["edited first question", "edited answer"]
    assert {m["request_id"] for m in body["messages"]} == {edited["request_id"]}
    # The title came from the old first question: it follows the new one.
    assert body["title"] == "edited first question"


async def test_a_renamed_title_survives_an_edit_of_the_first_question(
    client: httpx.AsyncClient, llm: FakeOpenAI
) -> None:
    llm.script(Reply("a1"), Reply("a2"))
    first = await chat(client, "original question")
    conv = first["conversation_id"]
    await client.patch(f"/api/v1/conversations/{conv}", json={"title": "My title"})
    await chat(client, "edited question", conv)
    r = await client.post(f"/api/v1/conversations/{conv}/drop-exchanges", json={"request_ids": [first["request_id"]]})
    assert r.json()["title"] == "My title"


async def test_dropping_is_all_or_nothing_and_owner_only(
    client: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    llm.script(Reply("a1"), Reply("a2"), Reply("b1"))
    one = await chat(client, "q1")
    conv = one["conversation_id"]
    await chat(client, "q2", conv)
    elsewhere = await chat(client, "in another conversation")
    # An exchange of another conversation (or none at all): 404, nothing removed.
    for ids in ([one["request_id"], elsewhere["request_id"]], ["no-such-request"]):
        r = await client.post(f"/api/v1/conversations/{conv}/drop-exchanges", json={"request_ids": ids})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "exchange_not_found"
    assert len((await client.get(f"/api/v1/conversations/{conv}")).json()["messages"]) == 4
    r = await client.post(f"/api/v1/conversations/{conv}/drop-exchanges", json={"request_ids": []})
    assert r.status_code == 400
    other_key = await make_key(runtime, "bob@example.com")
    async with client_as(runtime, other_key) as bob:
        r = await bob.post(f"/api/v1/conversations/{conv}/drop-exchanges", json={"request_ids": [one["request_id"]]})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "conversation_not_found"
    assert len((await client.get(f"/api/v1/conversations/{conv}")).json()["messages"]) == 4
    assert await audit_events(runtime, action="conversation.exchanges_dropped") == []


async def test_a_preference_after_asking_another_expert_reaches_the_training_examples(
    client: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    """The web UI's "ask another expert": the second answer is asked in the same
    conversation with the expert named; the preferred one is kept and the other dropped,
    and the preference is feedback on the one not kept ("should have gone to X")."""
    llm.script(Reply("Legal says: twelve months."), Reply("Support says: ask your manager."))
    original = await chat(client, "what is the liability cap in our MSA", model="legal")
    conv = original["conversation_id"]
    other = await chat(client, "what is the liability cap in our MSA", conv, model="support")
    r = await client.post(
        "/api/v1/feedback",
        json={"request_id": original["request_id"], "rating": "down", "expected_expert": "support",
              "comment": "asked support too and preferred its answer"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/api/v1/conversations/{conv}/drop-exchanges", json={"request_ids": [original["request_id"]]}
    )
    assert r.status_code == 200
    assert [m["content"] for m in r.json()["messages"]][1] == "Support says: ask your manager."
    assert r.json()["messages"][1]["request_id"] == other["request_id"]
    # The question, labelled with the preferred expert, trains the next router version,
    # though its first exchange is gone from the conversation.
    async with runtime.db.session() as session:
        examples = (await session.scalars(select(TrainingExample))).all()
    assert [(e.text, e.domain, e.source) for e in examples] == [
        ("what is the liability cap in our MSA", "support", "feedback")
    ]
