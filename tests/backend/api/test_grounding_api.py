"""Grounding through the real app (issue 22): the fake model answers about an uploaded
MSA; the answer is checked against the passages it cites, the marks reach the response
(plain and streamed), the stored conversation and the audit event, and each expert's
policy (flag, quote, refuse, quote-first) changes what the asker gets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.backend.api.test_chat_api import sse_events
from tests.conftest import audit_events, client_as, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Reply

MSA = b"""# Master Services Agreement: Key Terms

## Liability cap

Each party's total liability under the MSA is capped at the fees paid in the 12 months
before the claim. The cap does not apply to breaches of confidentiality.

## Termination

Either party may terminate for convenience with 90 days written notice.
"""
ASK = {"model": "legal", "messages": [{"role": "user", "content": "What is the liability cap in our MSA?"}]}
WRONG = "The liability cap is the fees paid in the 24 months before the claim [1]."
RIGHT = "Liability is capped at the fees paid in the 12 months before the claim [1]."


async def app_with(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder, **legal: Any) -> Runtime:
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base, legal=legal),
        bootstrap_admin=False,
    )
    return build_runtime(settings, encoder=encoder, environ={})


@pytest.fixture
async def flagging(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder) -> AsyncIterator[Runtime]:
    built = await app_with(tmp_path, gate_dir, llm, encoder)  # the shipped default policy: flag
    yield built
    await built.close()


@contextlib.asynccontextmanager
async def admin_with_msa(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client, after the MSA was uploaded to the legal index."""
    key = await make_key(runtime, "root@example.com", roles={"admin"})
    async with client_as(runtime, key) as client:
        files = [("files", ("msa.md", MSA))]
        r = await client.post("/api/v1/documents", data={"domain": "legal", "groups": ""}, files=files)
        assert r.status_code == 202, r.text
        yield client


async def test_a_wrong_number_is_marked_where_it_stands(flagging: Runtime, llm: FakeOpenAI) -> None:
    async with admin_with_msa(flagging) as c:
        llm.script(Reply(WRONG))
        r = await c.post("/v1/chat/completions", json=ASK)
        metrics = (await c.get("/metrics")).text
    assert 'expertgate_unsupported_claims_total{expert="legal",reason="number_mismatch"} 1.0' in metrics
    assert 'expertgate_grounding_score_count{expert="legal"} 1.0' in metrics
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["message"]["content"]
    grounding = r.json()["expertgate"]["grounding"]
    assert grounding["action"] == "flag" and grounding["score"] < 0.5
    (mark,) = grounding["unsupported"]
    assert mark["reason"] == "number_mismatch"
    assert text[mark["start"] : mark["end"]] == mark["text"] and "24" in mark["text"]
    (event,) = await audit_events(flagging, action="chat.completion")
    assert event.payload["grounding"]["unsupported"][0]["reason"] == "number_mismatch"


async def test_a_supported_answer_is_clean_and_kept_with_the_conversation(flagging: Runtime, llm: FakeOpenAI) -> None:
    async with admin_with_msa(flagging) as c:
        llm.script(Reply(RIGHT))
        r = await c.post("/v1/chat/completions", json=ASK)
        grounding = r.json()["expertgate"]["grounding"]
        assert grounding["score"] == 1.0 and grounding["unsupported"] == [] and grounding["action"] == "none"
        conversation = r.json()["expertgate"]["conversation_id"]
        stored = (await c.get(f"/api/v1/conversations/{conversation}")).json()
    answer = next(m for m in stored["messages"] if m["role"] == "assistant")
    assert answer["route"]["grounding"]["score"] == 1.0


async def test_unsupported_spans_survive_streaming(flagging: Runtime, llm: FakeOpenAI) -> None:
    async with admin_with_msa(flagging) as c:
        llm.script(Reply(WRONG))
        r = await c.post("/v1/chat/completions", json={**ASK, "stream": True})
    events = [e for e in sse_events(r.text) if isinstance(e, dict)]
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    (mark,) = events[-1]["expertgate"]["grounding"]["unsupported"]
    assert text[mark["start"] : mark["end"]] == mark["text"] and "24" in mark["text"]


async def test_on_fail_quote_replaces_the_answer_with_what_the_documents_say(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    runtime = await app_with(tmp_path, gate_dir, llm, encoder, grounding={"min_score": 0.9, "on_fail": "quote"})
    try:
        async with admin_with_msa(runtime) as c:
            llm.script(Reply(WRONG))
            r = await c.post("/v1/chat/completions", json=ASK)
        text = r.json()["choices"][0]["message"]["content"]
        assert text.startswith("From the documents:") and "12 months" in text and "24" not in text
        assert r.json()["expertgate"]["grounding"]["action"] == "quote"
        assert r.json()["expertgate"]["grounding"]["unsupported"] == []
    finally:
        await runtime.close()


async def test_a_summary_of_pasted_material_is_checked_against_it_too(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    """Asked to summarise a pasted e-mail, the expert answers from the e-mail: the
    documents retrieval found beside it do not hold its facts, so without the paste as a
    source the summary failed its check and was replaced by unrelated quotes."""
    runtime = await app_with(tmp_path, gate_dir, llm, encoder, grounding={"min_score": 0.9, "on_fail": "quote"})
    email = (
        "From: facilities@example.com\nSubject: Office move\n"
        "Our Leeds office moves to the fourth floor on 3 March. Desks will be packed by Harlow Removals."
    )
    summary = "The Leeds office moves to the fourth floor on 3 March, and Harlow Removals packs the desks."
    pasted_ask = {"model": "legal", "messages": [{"role": "user", "content": f"Summarise this e-mail:\n{email}"}]}
    bare_ask = {"model": "legal", "messages": [{"role": "user", "content": "Summarise the office move e-mail."}]}
    try:
        async with admin_with_msa(runtime) as c:
            llm.script(Reply(summary))
            r = await c.post("/v1/chat/completions", json=pasted_ask)
            llm.script(Reply(summary))
            bare = await c.post("/v1/chat/completions", json=bare_ask)
        grounding = r.json()["expertgate"]["grounding"]
        assert grounding["checked"] >= 1 and grounding["pasted"] is True
        assert grounding["score"] == 1.0 and grounding["action"] == "none"
        assert r.json()["choices"][0]["message"]["content"] == summary
        # the same answer with nothing pasted: the MSA's passages do not support it
        assert bare.json()["expertgate"]["grounding"]["pasted"] is False
        assert bare.json()["expertgate"]["grounding"]["action"] == "quote"
    finally:
        await runtime.close()


async def test_on_fail_refuse_says_so_and_shows_the_closest_passages(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    runtime = await app_with(tmp_path, gate_dir, llm, encoder, grounding={"min_score": 0.9, "on_fail": "refuse"})
    try:
        async with admin_with_msa(runtime) as c:
            llm.script(Reply(WRONG))
            r = await c.post("/v1/chat/completions", json=ASK)
            text = r.json()["choices"][0]["message"]["content"]
            assert text.startswith("The documents I can search do not clearly answer this")
            assert r.json()["expertgate"]["grounding"]["action"] == "refuse"
            # A stream was already sent: the correction is appended, the marks stay.
            llm.script(Reply(WRONG))
            r = await c.post("/v1/chat/completions", json={**ASK, "stream": True})
        events = [e for e in sse_events(r.text) if isinstance(e, dict)]
        streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
        assert streamed.startswith(WRONG) and "not supported by the documents it cites" in streamed
        assert events[-1]["expertgate"]["grounding"]["unsupported"][0]["reason"] == "number_mismatch"
    finally:
        await runtime.close()


async def test_quote_first_puts_the_documents_before_the_draft(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    runtime = await app_with(tmp_path, gate_dir, llm, encoder, grounding={"quote_first": True})
    try:
        async with admin_with_msa(runtime) as c:
            llm.script(Reply(WRONG))
            r = await c.post("/v1/chat/completions", json=ASK)
            text = r.json()["choices"][0]["message"]["content"]
            quotes, draft = text.split("The model's answer (a draft, not checked by a person):")
            assert quotes.startswith("From the documents:") and "12 months" in quotes
            assert draft.strip() == WRONG
            # The wrong number in the draft is still marked, at its place in the whole text.
            (mark,) = r.json()["expertgate"]["grounding"]["unsupported"]
            assert text[mark["start"] : mark["end"]] == mark["text"] and mark["start"] > len(quotes)
            llm.script(Reply(WRONG))
            r = await c.post("/v1/chat/completions", json={**ASK, "stream": True})
        events = [e for e in sse_events(r.text) if isinstance(e, dict)]
        deltas = [e["choices"][0]["delta"].get("content", "") for e in events]
        first_text = next(d for d in deltas if d)
        assert first_text.startswith("From the documents:")  # before the model's first token
        # A question about pasted material gets no quotes before it: the documents are not its subject.
        async with admin_with_msa(runtime) as c:
            llm.script(Reply("The e-mail says the office moves on 3 March."))
            mail = "Our office moves to floor 4 on 3 March; the liability for moving damage is the mover's."
            pasted_ask = {"role": "user", "content": f"Summarise this e-mail:\n{mail}"}
            r = await c.post("/v1/chat/completions", json={**ASK, "messages": [pasted_ask]})
        assert r.json()["choices"][0]["message"]["content"] == "The e-mail says the office moves on 3 March."
    finally:
        await runtime.close()


async def test_the_generalist_and_an_answer_without_passages_are_not_checked(
    flagging: Runtime, llm: FakeOpenAI
) -> None:
    key = await make_key(flagging, "ana@example.com")
    async with client_as(flagging, key) as c:
        llm.script(Reply("Lisbon is the capital of Portugal."))
        ask = {"model": "general", "messages": [{"role": "user", "content": "capital of Portugal?"}]}
        r = await c.post("/v1/chat/completions", json=ask)
    assert r.json()["expertgate"]["grounding"] is None
