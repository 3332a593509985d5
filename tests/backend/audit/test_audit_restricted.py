"""Restricted answers in the audit log (issue 25, item 12): the prompt and answer of an
event whose answer cited documents outside the reader's groups are withheld, on every
read path (list, detail, /me/audit, export, text search); admins read everything."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import delete, select

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.db.models import Document, DocumentChunk, User
from backend.runtime import Runtime
from tests.conftest import auth, make_key

SECRET_ANSWER = "the merger closes on March 3"
PUBLIC_ANSWER = "the office opens at nine"


async def _chunk(runtime: Runtime, source: str, groups: list[str]) -> int:
    async with runtime.db.transaction() as s:
        doc = Document(
            domain="legal", source=source, title=source, media_type="text/plain",
            content_hash="0" * 64, size_bytes=1, groups=groups, chunk_count=1,
        )  # fmt: skip
        s.add(doc)
        await s.flush()
        chunk = DocumentChunk(document_id=doc.id, domain="legal", ordinal=0, title_path=[], text="x")
        s.add(chunk)
        await s.flush()
        return chunk.id


async def _setup(runtime: Runtime) -> tuple[dict[str, str], dict[str, int]]:
    keys = {
        "alice": await make_key(runtime, "alice@example.com"),  # no groups
        "outsider": await make_key(runtime, "audrey@example.com", roles={"auditor"}),
        "insider": await make_key(runtime, "ian@example.com", roles={"auditor"}, groups={"mna"}),
        "admin": await make_key(runtime, "root@example.com", roles={"admin"}),
    }
    secret = await _chunk(runtime, "deal.md", ["mna", "board"])
    public = await _chunk(runtime, "hours.md", [])
    async with runtime.db.session() as s:
        uid = await s.scalar(select(User.id).where(User.email == "alice@example.com"))
    alice = Actor(channel="api", user_id=uid, email="alice@example.com")
    seqs = {}
    for name, chunk, answer in (("secret", secret, SECRET_ANSWER), ("public", public, PUBLIC_ANSWER)):
        await runtime.audit.record(
            runtime.db,
            AuditEntry(
                action="chat.completion", outcome=Outcome.OK, actor=alice, request_id=name,
                payload={"retrieval": {"chunk_ids": [chunk]}}, prompt=f"{name} question", answer=answer,
            ),
        )  # fmt: skip
    await runtime.chainer.drain()
    async with runtime.db.session() as s:
        from backend.db.models import AuditEvent

        for name in ("secret", "public"):
            seqs[name] = int(await s.scalar(select(AuditEvent.seq).where(AuditEvent.request_id == name)) or 0)
    seqs["secret_chunk"] = secret
    return keys, seqs


async def _listed(http: httpx.AsyncClient, key: str, path: str = "/api/v1/admin/audit") -> dict[str, dict[str, object]]:
    r = await http.get(path, headers=auth(key))
    assert r.status_code == 200, r.text
    return {e["request_id"]: e for e in r.json()["data"] if e["request_id"] in ("secret", "public")}


async def test_an_auditor_outside_the_groups_does_not_read_the_restricted_answer(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    keys, seqs = await _setup(runtime)
    events = await _listed(http, keys["outsider"])
    assert events["secret"]["answer"] is None and events["secret"]["prompt"] is None
    assert events["secret"]["text_withheld"] is True
    assert events["secret"]["payload"]["retrieval"]["chunk_ids"] == [seqs["secret_chunk"]]  # the record stays
    assert events["public"]["answer"] == PUBLIC_ANSWER and events["public"]["text_withheld"] is False

    detail = (await http.get(f"/api/v1/admin/audit/{seqs['secret']}", headers=auth(keys["outsider"]))).json()
    assert detail["answer"] is None and detail["text_withheld"] is True
    assert detail["integrity"]["hash_ok"] is True  # withheld from the reader, not altered

    r = await http.get("/api/v1/admin/audit/export", headers=auth(keys["outsider"]))
    exported = {rec["request_id"]: rec for rec in map(json.loads, r.text.splitlines())}
    assert SECRET_ANSWER not in r.text and exported["secret"]["answer"] is None
    assert exported["public"]["answer"] == PUBLIC_ANSWER

    # Text search is no oracle: the withheld event does not match, however it is asked.
    found = await http.get("/api/v1/admin/audit", headers=auth(keys["outsider"]), params={"q": "merger"})
    assert found.json()["data"] == []
    r = await http.get("/api/v1/admin/audit/export", headers=auth(keys["outsider"]), params={"q": "merger"})
    assert r.text == ""


async def test_a_reader_in_a_group_and_an_admin_read_it(http: httpx.AsyncClient, runtime: Runtime) -> None:
    keys, _ = await _setup(runtime)
    for reader in ("insider", "admin"):
        events = await _listed(http, keys[reader])
        assert events["secret"]["answer"] == SECRET_ANSWER and events["secret"]["text_withheld"] is False
        found = await http.get("/api/v1/admin/audit", headers=auth(keys[reader]), params={"q": "merger"})
        assert [e["request_id"] for e in found.json()["data"]] == ["secret"]


async def test_my_own_audit_follows_the_same_rule(http: httpx.AsyncClient, runtime: Runtime) -> None:
    keys, seqs = await _setup(runtime)
    events = await _listed(http, keys["alice"], "/api/v1/me/audit")
    assert events["secret"]["answer"] is None and events["secret"]["text_withheld"] is True
    assert events["public"]["answer"] == PUBLIC_ANSWER
    own = (await http.get(f"/api/v1/me/audit/{seqs['secret']}", headers=auth(keys["alice"]))).json()
    assert own["answer"] is None


async def test_a_cited_chunk_that_no_longer_exists_counts_as_restricted(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    keys, seqs = await _setup(runtime)
    async with runtime.db.transaction() as s:
        await s.execute(delete(DocumentChunk).where(DocumentChunk.id == seqs["secret_chunk"]))
    events = await _listed(http, keys["insider"])
    assert events["secret"]["answer"] is None and events["secret"]["text_withheld"] is True
    events = await _listed(http, keys["admin"])
    assert events["secret"]["answer"] == SECRET_ANSWER
