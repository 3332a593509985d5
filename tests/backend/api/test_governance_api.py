"""Governance through the real app: audit events per request, PII policy per expert,
roles on the admin API, keys. SQLite, the real router, litellm against the fake server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from backend.audit.verify import verify_chain
from backend.db.models import AuditEvent, Message
from backend.runtime import Runtime
from backend.settings import Settings
from tests.conftest import audit_events, auth, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Fault, Reply

EMAIL_PROMPT = "my python script raises KeyError in the parser; mail the fix to bob.smith@example.com"


@pytest.fixture
def settings(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI) -> Settings:
    # code: on-prem (allow); legal: refuses PII (block); support, general: remote (redact).
    return Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(
            tmp_path / "experts.yaml", llm.api_base, code={"pii": "allow"}, legal={"pii": "block"}
        ),
        bootstrap_admin=False,
        secret_key="unit-test-secret-key-for-the-chain",
    )


async def keys(runtime: Runtime) -> dict[str, str]:
    return {
        "user": await make_key(runtime, "alice@example.com", team="legal"),
        "other": await make_key(runtime, "carol@example.com"),
        "auditor": await make_key(runtime, "audrey@example.com", roles={"auditor"}),
        "admin": await make_key(runtime, "root@example.com", roles={"admin"}),
    }


async def chain_ok(runtime: Runtime) -> bool:
    await runtime.chainer.drain()
    async with runtime.db.session() as s:
        report = await verify_chain(s, runtime.audit.key)
    assert report.ok and report.pending == 0, report
    return report.ok


def chat(content: str, model: str = "auto", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


# -- one event per chat request -------------------------------------------------------


async def test_chat_request_writes_one_full_audit_event(
    http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    k = await keys(runtime)
    llm.script(Reply("Section 9 caps liability at twelve months of fees."))
    r = await http.post(
        "/v1/chat/completions",
        headers=auth(k["user"]),
        json=chat("what does the liability cap clause in our master services agreement say?", "support"),
    )
    assert r.status_code == 200, r.text
    request_id = r.headers["x-request-id"]
    [event] = await audit_events(runtime, action="chat.completion")
    assert event.request_id == request_id
    assert (event.user_email, event.team, event.channel) == ("alice@example.com", "legal", "api")
    assert event.outcome == "ok" and event.status == 200 and event.expert == "support"
    assert event.reason == "requested"
    p = event.payload
    assert set(p["route"]["probabilities"]) == {"code", "legal", "support", "general"}
    assert p["route"]["router_version"] and p["route"]["reason"] == "requested"
    assert p["llm"]["model"] == "openai/fake-model" and p["llm"]["endpoint"] == llm.api_base
    assert p["usage"]["prompt_tokens"] == 11 and p["usage"]["completion_tokens"] > 0
    assert set(p["latency_ms"]) == {"guard", "route", "generate", "total"}
    assert p["latency_ms"]["total"] >= p["latency_ms"]["generate"] > 0
    assert p["conversation_id"] == r.json()["expertgate"]["conversation_id"]
    assert p["guard"] == {"pii": {}, "pii_policy": "redact", "pii_action": "none"}
    assert set(p["retrieval"]) == {"domains", "chunk_ids", "index_versions", "ms", "degraded", "safety"}
    assert p["retrieval"]["safety"] == {"dropped": 0, "fenced": []}  # no flagged passage among the sources
    assert p["safety"]["action"] == "none" and p["safety"]["flagged"] == {}  # the input check's verdict
    assert event.answer == "Section 9 caps liability at twelve months of fees."
    assert event.alg.startswith("hmac-sha256:")
    assert await chain_ok(runtime)


async def test_streamed_request_is_audited_too(http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI) -> None:
    k = await keys(runtime)
    llm.script(Reply("streamed answer here"))
    r = await http.post(
        "/v1/chat/completions", headers=auth(k["user"]), json=chat("hello there", "general", stream=True)
    )
    assert r.status_code == 200 and "[DONE]" in r.text
    [event] = await audit_events(runtime, action="chat.completion")
    assert event.payload["stream"] is True and event.answer == "streamed answer here"
    assert event.payload["finish_reason"] == "stop"


async def test_failed_generation_is_audited_with_its_route(
    http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    k = await keys(runtime)
    llm.script(Fault(503))
    r = await http.post("/v1/chat/completions", headers=auth(k["user"]), json=chat("hi", "general"))
    assert r.status_code == 503
    [event] = await audit_events(runtime, action="chat.completion")
    assert event.outcome == "error" and event.status == 503
    assert event.payload["error"]["code"] == "expert_unavailable"
    assert event.payload["route"]["expert"] == "general"
    # Recorded once: the HTTP layer did not add a second, trace-less event.
    assert await audit_events(runtime, action="http.refused") == []
    async with runtime.db.session() as s:
        assert (await s.scalars(select(Message))).all() == []


# -- PII policy per expert ------------------------------------------------------------


async def test_remote_expert_receives_redacted_text_and_audit_stores_it_redacted(
    http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    k = await keys(runtime)
    r = await http.post(
        "/v1/chat/completions", headers=auth(k["user"]),
        json=chat("call me on +44 20 7946 0958 or mail bob.smith@example.com about my refund", "support"),
    )  # fmt: skip
    assert r.status_code == 200, r.text
    sent = llm.requests[-1]["messages"][-1]["content"]
    assert "bob.smith@example.com" not in sent and "7946" not in sent
    assert "[EMAIL_1]" in sent and "[PHONE_1]" in sent
    [event] = await audit_events(runtime, action="chat.completion")
    assert event.prompt == "call me on [PHONE_1] or mail [EMAIL_1] about my refund"
    assert event.payload["guard"] == {
        "pii": {"EMAIL": 1, "PHONE": 1}, "pii_policy": "redact", "pii_action": "redacted",
    }  # fmt: skip


async def test_on_prem_expert_with_allow_receives_the_text_as_is(
    http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    k = await keys(runtime)
    r = await http.post("/v1/chat/completions", headers=auth(k["user"]), json=chat(EMAIL_PROMPT, "code"))
    assert r.status_code == 200
    assert "bob.smith@example.com" in llm.requests[-1]["messages"][-1]["content"]
    [event] = await audit_events(runtime, action="chat.completion")
    assert event.payload["guard"]["pii_action"] == "allowed"
    assert "bob.smith@example.com" not in (event.prompt or "")  # the audit still redacts


async def test_fallback_gets_its_own_policy(http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI) -> None:
    k = await keys(runtime)
    llm.script(Fault(503), Reply("generalist answer"))
    r = await http.post("/v1/chat/completions", headers=auth(k["user"]), json=chat(EMAIL_PROMPT))
    assert r.status_code == 200, r.text
    assert r.json()["expertgate"]["expert"] == "general"
    first, second = llm.requests[-2]["messages"][-1]["content"], llm.requests[-1]["messages"][-1]["content"]
    assert "bob.smith@example.com" in first  # code: allow
    assert "bob.smith@example.com" not in second and "[EMAIL_1]" in second  # general: redact
    [event] = await audit_events(runtime, action="chat.completion")
    assert event.payload["route"]["routed_to"] == "code"
    assert event.payload["fallbacks"][0]["expert"] == "code"
    assert event.payload["guard"]["pii_policy"] == "redact"


async def test_block_policy_refuses_with_a_stable_code_and_is_audited(
    http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    k = await keys(runtime)
    r = await http.post(
        "/v1/chat/completions", headers=auth(k["user"]),
        json=chat("review this NDA for jane@example.org, card 4111 1111 1111 1111", "legal"),
    )  # fmt: skip
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "pii_blocked" and "1 CARD, 1 EMAIL" in error["message"]
    assert "jane@example.org" not in error["message"]
    assert llm.requests == []  # nothing left for the endpoint
    [event] = await audit_events(runtime, action="chat.completion")
    assert event.outcome == "refused" and event.status == 400
    assert event.payload["error"]["code"] == "pii_blocked"
    assert event.payload["guard"]["pii_action"] == "blocked"
    # Without PII the same expert answers.
    r = await http.post("/v1/chat/completions", headers=auth(k["user"]), json=chat("review this NDA", "legal"))
    assert r.status_code == 200


async def test_block_policy_refuses_a_stream_before_it_opens(
    http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    k = await keys(runtime)
    body = chat("review this NDA for jane@example.org, card 4111 1111 1111 1111", "legal", stream=True)
    r = await http.post("/v1/chat/completions", headers=auth(k["user"]), json=body)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == "pii_blocked"
    assert llm.requests == []
    [event] = await audit_events(runtime, action="chat.completion")
    assert (event.outcome, event.status) == ("refused", 400)


# -- keys, 401s and roles -------------------------------------------------------------


async def test_forged_and_revoked_keys_get_401_and_are_audited(http: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await keys(runtime)
    r = await http.get("/v1/models", headers=auth("eg-forged0000000000000000000000000000000000000"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    me = (await http.get("/api/v1/me", headers=auth(k["other"]))).json()
    r = await http.post(f"/api/v1/admin/keys/{me['key']['id']}/revoke", headers=auth(k["admin"]))
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = await http.get("/v1/models", headers=auth(k["other"]))
    assert r.status_code == 401
    forged, revoked = await audit_events(runtime, action="auth.failed")
    assert forged.payload["reason"] == "unknown" and forged.payload["key_prefix"] == "eg-forged0"
    assert forged.outcome == "refused" and forged.status == 401 and forged.user_id is None
    assert revoked.payload["reason"] == "revoked"
    assert revoked.payload["key_owner"] == "carol@example.com"
    [revocation] = await audit_events(runtime, action="key.revoked")
    assert revocation.user_email == "root@example.com" and revocation.payload["key_id"] == me["key"]["id"]
    # No key at all is a plain 401, not an audit event (health checks, scanners).
    assert (await http.get("/v1/models")).status_code == 401
    assert len(await audit_events(runtime, action="auth.failed")) == 2


async def test_me_shows_the_caller_and_the_key_last_use(http: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await keys(runtime)
    r = await http.get("/api/v1/me", headers=auth(k["user"]))
    assert r.status_code == 200
    body = r.json()
    assert body["email"] == "alice@example.com" and body["team"] == "legal"
    assert body["roles"] == ["user"] and body["key"]["prefix"] == k["user"][:10]
    assert body["key"]["last_used_at"] is not None and body["key"]["revoked_at"] is None


async def test_user_cannot_read_the_audit_log(http: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await keys(runtime)
    for path in ("/api/v1/admin/audit", "/api/v1/admin/audit/1", "/api/v1/admin/audit/export",
                 "/api/v1/admin/keys"):  # fmt: skip
        r = await http.get(path, headers=auth(k["user"]))
        assert r.status_code == 403, path
        assert r.json()["error"]["code"] == "auditor_required"
    refused = await audit_events(runtime, action="http.refused")
    assert len(refused) == 4 and {e.user_email for e in refused} == {"alice@example.com"}
    assert refused[0].payload["path"] == "/api/v1/admin/audit" and refused[0].status == 403


async def test_auditor_reads_but_cannot_do_admin_writes(http: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await keys(runtime)
    assert (await http.get("/api/v1/admin/audit", headers=auth(k["auditor"]))).status_code == 200
    assert (await http.get("/api/v1/admin/keys", headers=auth(k["auditor"]))).status_code == 200
    writes = [
        ("POST", "/api/v1/admin/keys", {"email": "eve@example.com", "role": "admin"}),
        ("POST", "/api/v1/admin/keys/1/revoke", None),
        ("POST", "/api/v1/admin/audit/retention", {"days": 1}),
    ]
    for method, path, body in writes:
        r = await http.request(method, path, headers=auth(k["auditor"]), json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required", path
    refused = await audit_events(runtime, action="http.refused", user_email="audrey@example.com")
    assert [e.payload["path"] for e in refused] == [w[1] for w in writes]
    assert await audit_events(runtime, action="key.created") == []  # nothing was created
    async with runtime.db.session() as s:
        from backend.db.models import ApiKey

        assert all(row.revoked_at is None for row in (await s.scalars(select(ApiKey))).all())


async def test_admin_creates_a_key_that_works_and_the_creation_is_audited(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    k = await keys(runtime)
    r = await http.post(
        "/api/v1/admin/keys", headers=auth(k["admin"]),
        json={"email": "Dev@Example.com", "role": "auditor", "groups": ["eng"], "team": "platform"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    assert r.json()["key"]["email"] == "dev@example.com" and r.json()["key"]["roles"] == ["auditor"]
    me = (await http.get("/api/v1/me", headers=auth(secret))).json()
    assert me["email"] == "dev@example.com" and me["groups"] == ["eng"]
    [created] = await audit_events(runtime, action="key.created")
    assert created.user_email == "root@example.com" and created.payload["for_user"] == "dev@example.com"
    assert secret not in json.dumps(created.payload)  # only the prefix
    assert await chain_ok(runtime)


async def test_user_reads_own_events_but_not_someone_elses(http: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await keys(runtime)
    await http.post("/v1/chat/completions", headers=auth(k["user"]), json=chat("hello", "general"))
    await http.post("/v1/chat/completions", headers=auth(k["other"]), json=chat("hello", "general"))
    mine = (await http.get("/api/v1/me/audit", headers=auth(k["user"]))).json()["data"]
    assert {e["user_email"] for e in mine} == {"alice@example.com"}
    [carols] = await audit_events(runtime, user_email="carol@example.com", action="chat.completion")
    r = await http.get(f"/api/v1/me/audit/{carols.seq}", headers=auth(k["user"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "audit_event_not_found"
    r = await http.get(f"/api/v1/me/audit/{carols.seq}", headers=auth(k["other"]))
    assert r.status_code == 200 and r.json()["seq"] == carols.seq
    # The probe is on record.
    [probe] = await audit_events(runtime, action="http.refused")
    assert probe.user_email == "alice@example.com" and probe.status == 404


# -- the admin audit API ----------------------------------------------------------------


async def test_filters_and_cursor_pages(http: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await keys(runtime)
    for text in ("first question", "second question", "third about refunds"):
        await http.post("/v1/chat/completions", headers=auth(k["user"]), json=chat(text, "general"))
    await http.post("/v1/chat/completions", headers=auth(k["other"]), json=chat("carol asks", "support"))
    h = auth(k["auditor"])
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "action": "chat.completion"}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/api/v1/admin/audit", headers=h, params=params)).json()
        seen += [e["seq"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4 and seen == sorted(seen, reverse=True)

    def q(**params: Any) -> Any:
        return http.get("/api/v1/admin/audit", headers=h, params=params)

    assert [e["user_email"] for e in (await q(user="carol@example.com")).json()["data"]] == ["carol@example.com"]
    assert [e["expert"] for e in (await q(expert="support")).json()["data"]] == ["support"]
    assert [e["prompt"] for e in (await q(q="REFUNDS")).json()["data"]] == ["third about refunds"]
    assert len((await q(team="legal", action="chat.completion")).json()["data"]) == 3
    assert (await q(outcome="refused")).json()["data"] == []
    assert len((await q(reason="requested")).json()["data"]) == 4
    assert (await q(since="2999-01-01T00:00:00")).json()["data"] == []
    bogus = await q(cursor="bogus!")
    assert bogus.status_code == 400 and bogus.json()["error"]["code"] == "invalid_cursor"
    # /me/audit pages the same way, over the caller's own events only.
    mine = await http.get("/api/v1/me/audit", headers=auth(k["user"]), params={"limit": 2})
    assert len(mine.json()["data"]) == 2 and mine.json()["next_cursor"]
    rest = await http.get(
        "/api/v1/me/audit", headers=auth(k["user"]), params={"limit": 50, "cursor": mine.json()["next_cursor"]}
    )
    both = [e["seq"] for e in mine.json()["data"] + rest.json()["data"]]
    assert both == sorted(set(both), reverse=True) and rest.json()["next_cursor"] is None


async def test_event_detail_shows_the_trace_and_its_integrity(http: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await keys(runtime)
    await http.post("/v1/chat/completions", headers=auth(k["user"]), json=chat("hello", "general"))
    [event] = await audit_events(runtime, action="chat.completion")
    r = await http.get(f"/api/v1/admin/audit/{event.seq}", headers=auth(k["auditor"]))
    body = r.json()
    assert body["payload"]["route"]["expert"] == "general"
    assert body["integrity"] == {"hash_ok": True, "content_ok": True, "links_to_previous": True, "problem": None}
    async with runtime.db.transaction() as s:
        await s.execute(update(AuditEvent).where(AuditEvent.seq == event.seq).values(expert="code"))
    body = (await http.get(f"/api/v1/admin/audit/{event.seq}", headers=auth(k["auditor"]))).json()
    assert body["integrity"]["hash_ok"] is False and "hash" in body["integrity"]["problem"]
    verify = (await http.get("/api/v1/admin/audit/verify", headers=auth(k["auditor"]))).json()
    assert verify["ok"] is False and verify["first_bad_seq"] == event.seq
    assert (await http.get("/api/v1/admin/audit/99999", headers=auth(k["auditor"]))).status_code == 404


async def test_export_streams_every_event_and_is_audited(http: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await keys(runtime)
    for i in range(3):
        await http.post("/v1/chat/completions", headers=auth(k["user"]), json=chat(f"q{i} x", "general"))
    total = len(await audit_events(runtime))
    r = await http.get("/api/v1/admin/audit/export", headers=auth(k["auditor"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    # Oldest first, every field; the export event itself was committed before streaming.
    assert [e["seq"] for e in lines] == list(range(1, total + 2))
    assert lines[-1]["action"] == "audit.exported" and lines[-1]["user_email"] == "audrey@example.com"
    assert all(lines[i]["prev_hash"] == lines[i - 1]["hash"] for i in range(1, len(lines)))
    r = await http.get(
        "/api/v1/admin/audit/export", headers=auth(k["auditor"]), params={"format": "csv", "action": "chat.completion"}
    )
    rows = r.text.splitlines()
    assert rows[0].startswith("seq,ts,request_id,action") and len(rows) == 4


async def test_retention_over_the_api(http: httpx.AsyncClient, runtime: Runtime) -> None:
    k = await keys(runtime)
    r = await http.post("/api/v1/admin/audit/retention", headers=auth(k["admin"]), json={})
    assert r.status_code == 400 and r.json()["error"]["param"] == "days"
    r = await http.post("/api/v1/admin/audit/retention", headers=auth(k["admin"]), json={"days": 30})
    assert r.status_code == 200 and r.json()["purged"] == 0
    assert [e.action for e in await audit_events(runtime)][-2:] == ["audit.retention", "audit.retention.finished"]
    assert await chain_ok(runtime)
