"""Documents API and retrieval through the real app (SQLite), the real encoder and indexes.

The LLM is the fake OpenAI server: we check what reached it (the numbered passages)
and what the caller got back (citations), per caller group.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from backend.chat.pipeline import ChatInput, Routed
from backend.db.models import Document, DocumentChunk, IngestJob, Message
from backend.knowledge.jobs import _claim, holder_gone, this_process
from backend.principal import Principal
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from experts.types import ChatMessage
from router.encoder import Encoder
from router.types import Reason, RoutingDecision
from tests.conftest import client_as, gone_holder, make_key, write_experts_yaml
from tests.fakes.documents import make_pdf
from tests.fakes.openai_server import FakeOpenAI

PUBLIC_MSA = b"""# Master Services Agreement: Key Terms

## Liability cap

Each party's total liability under the MSA is capped at the fees paid in the twelve
months before the claim. The cap does not apply to breaches of confidentiality.

## Governing law

The MSA is governed by the laws of England and Wales.
"""

RESTRICTED_FALLBACKS = b"""# MSA Negotiation Fallbacks (Confidential)

## Liability cap fallback

For enterprise deals the liability cap may be raised to 24 months of fees, or
USD 1,000,000 if greater, without a new Legal review. The secret codename is OSPREY.
"""

SUPPORT_DOC = b"""# Password reset

The reset link is valid for 30 minutes and can only be used once.
"""


@pytest.fixture
async def kb(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder) -> AsyncIterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
        ingest_max_file_bytes=100_000,
        upload_max_bytes=300_000,
    )
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


async def upload(
    client: httpx.AsyncClient, domain: str, files: list[tuple[str, bytes]], groups: str = ""
) -> httpx.Response:
    return await client.post(
        "/api/v1/documents",
        data={"domain": domain, "groups": groups},
        files=[("files", (name, data)) for name, data in files],
    )


async def ask(client: httpx.AsyncClient, text: str, model: str = "legal") -> dict[str, Any]:
    r = await client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}]},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def job_of(client: httpx.AsyncClient, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    r = await client.get(f"/api/v1/ingest-jobs/{job_id}")
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


async def test_acl_filtered_citations_and_document_lifecycle(kb: Runtime, llm: FakeOpenAI) -> None:
    admin_key = await make_key(kb, "root@example.com", roles={"admin"})
    user_key = await make_key(kb, "sam@example.com")
    lawyer_key = await make_key(kb, "lee@example.com", groups={"legal-team"})
    async with (
        client_as(kb, admin_key) as admin,
        client_as(kb, user_key) as user,
        client_as(kb, lawyer_key) as lawyer,
    ):
        # One batch with good and bad files: the good ones go in, each bad one says why.
        job = await job_of(
            admin,
            await upload(
                admin,
                "legal",
                [
                    ("msa-key-terms.md", PUBLIC_MSA),
                    ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf"),
                    ("notes.xyz", b"whatever"),
                    ("latin1.txt", "Caf\u00e9 policy\n\nna\u00efve text".encode("latin-1")),
                    ("empty.md", b""),
                    ("huge.txt", b"word " * 30_000),
                    ("scan.pdf", make_pdf([["Signed contract page"]])),
                ],
            ),
        )
        assert job["status"] == "partial"
        outcome = {r["source"]: (r["status"], r["error_code"]) for r in job["results"]}
        assert outcome == {
            "upload/msa-key-terms.md": ("added", None),
            "upload/broken.pdf": ("failed", "corrupt_document"),
            "upload/notes.xyz": ("failed", "unsupported_type"),
            "upload/latin1.txt": ("failed", "bad_encoding"),
            "upload/empty.md": ("failed", "empty_document"),
            "upload/huge.txt": ("failed", "file_too_large"),
            "upload/scan.pdf": ("added", None),
        }
        assert job["index_version"] and job["done_files"] == job["total_files"] == 7
        restricted = await job_of(
            admin,
            await upload(admin, "legal", [("fallbacks.md", RESTRICTED_FALLBACKS)], "legal-team"),
        )
        assert restricted["status"] == "succeeded" and restricted["groups"] == ["legal-team"]

        question = "what is the liability cap for enterprise deals in the MSA?"
        # A caller outside legal-team never sees the restricted chunks anywhere.
        body = await ask(user, question)
        citations = body["expertgate"]["citations"]
        assert citations, body
        assert {c["source"] for c in citations} <= {"upload/msa-key-terms.md", "upload/scan.pdf"}
        assert [c["number"] for c in citations] == list(range(1, len(citations) + 1))
        assert "OSPREY" not in json.dumps(body)
        system = llm.requests[-1]["messages"][0]["content"]
        assert "[1] Master Services Agreement: Key Terms" in system
        assert "OSPREY" not in system and "24 months" not in system
        # A member of legal-team gets them, cited and sent to the expert.
        body = await ask(lawyer, question)
        sources = [c["source"] for c in body["expertgate"]["citations"]]
        assert "upload/fallbacks.md" in sources
        assert "OSPREY" in llm.requests[-1]["messages"][0]["content"]
        top = body["expertgate"]["citations"][0]
        assert 0 < top["score"] <= 1 and top["location"].startswith("line")
        assert top["title"].startswith(("MSA Negotiation Fallbacks", "Master Services Agreement"))

        # Streaming: citations on the first and the last chunk.
        r = await lawyer.post(
            "/v1/chat/completions",
            json={
                "model": "legal",
                "stream": True,
                "messages": [{"role": "user", "content": question}],
            },
        )
        events = [json.loads(b[6:]) for b in r.text.strip().split("\n\n") if b != "data: [DONE]"]
        first, last = events[0]["expertgate"]["citations"], events[-1]["expertgate"]["citations"]
        assert first == last and "upload/fallbacks.md" in {c["source"] for c in first}

        # The stored route record names the retrieved chunk ids (and only visible ones).
        async with kb.db.session() as s:
            routes = [m.route for m in await s.scalars(select(Message).where(Message.role == "assistant"))]
            restricted_ids = set(await s.scalars(select(DocumentChunk.id).where(DocumentChunk.text.contains("OSPREY"))))
        assert routes[0] is not None and routes[0]["retrieval"]["domains"] == ["legal"]
        assert routes[0]["retrieval"]["index_versions"]["legal"].startswith("v0000")
        assert "OSPREY" not in json.dumps(routes[0])
        assert not restricted_ids & set(routes[0]["retrieval"]["chunk_ids"])
        assert restricted_ids & set(routes[1]["retrieval"]["chunk_ids"])

        # Listing shows each caller only what their groups may see.
        def listed(r: httpx.Response) -> set[str]:
            assert r.status_code == 200, r.text
            return {d["source"] for d in r.json()["data"]}

        assert "upload/fallbacks.md" not in listed(await user.get("/api/v1/documents"))
        assert "upload/fallbacks.md" in listed(await lawyer.get("/api/v1/documents?domain=legal"))
        everything = (await admin.get("/api/v1/documents")).json()
        assert everything["total"] == 3
        assert everything["next_cursor"] is None

        # One at a time by id: every document once, in order; a caller outside a
        # document's groups pages past it without seeing it, and counts only their own.
        async def walk(client: httpx.AsyncClient) -> tuple[list[int], set[int]]:
            ids: list[int] = []
            totals: set[int] = set()
            params: dict[str, str | int] = {"limit": 1}
            while True:
                page = (await client.get("/api/v1/documents", params=params)).json()
                ids += [d["id"] for d in page["data"]]
                totals.add(page["total"])
                if page["next_cursor"] is None:
                    return ids, totals
                params["cursor"] = page["next_cursor"]

        all_ids = [d["id"] for d in everything["data"]]
        assert all_ids == sorted(all_ids) and await walk(admin) == (all_ids, {3})
        user_ids = [d["id"] for d in (await user.get("/api/v1/documents")).json()["data"]]
        assert len(user_ids) == 2 and await walk(user) == (user_ids, {2})
        r = await admin.get("/api/v1/documents", params={"offset": 1, "cursor": "MQ"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"
        doc_id = next(d["id"] for d in everything["data"] if d["source"] == "upload/fallbacks.md")

        # Re-uploading the same bytes is a no-op; deleting removes it from retrieval.
        again = await job_of(
            admin,
            await upload(admin, "legal", [("fallbacks.md", RESTRICTED_FALLBACKS)], "legal-team"),
        )
        assert again["results"][0]["status"] == "unchanged"
        r = await admin.delete(f"/api/v1/documents/{doc_id}")
        assert r.status_code == 200 and r.json()["deleted"] is True
        body = await ask(lawyer, question)
        assert "upload/fallbacks.md" not in {c["source"] for c in body["expertgate"]["citations"]}
        assert (await admin.delete(f"/api/v1/documents/{doc_id}")).json()["error"]["code"] == "document_not_found"
        async with kb.db.session() as s:
            left = await s.scalar(
                select(func.count()).select_from(DocumentChunk).where(DocumentChunk.document_id == doc_id)
            )
        assert left == 0


async def test_writes_need_admin_and_inputs_are_checked(kb: Runtime) -> None:
    admin_key = await make_key(kb, "root@example.com", roles={"admin"})
    user_key = await make_key(kb, "sam@example.com")
    async with client_as(kb, admin_key) as admin, client_as(kb, user_key) as user:
        r = await upload(user, "support", [("reset.md", SUPPORT_DOC)])
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"
        assert (await user.delete("/api/v1/documents/1")).status_code == 403
        assert (await user.get("/api/v1/ingest-jobs/x")).status_code == 403
        r = await upload(admin, "general", [("reset.md", SUPPORT_DOC)])
        assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_domain"
        r = await upload(admin, "support", [("a.md", SUPPORT_DOC), ("a.md", SUPPORT_DOC)])
        assert r.json()["error"]["code"] == "duplicate_upload"
        r = await upload(admin, "support", [("big.txt", b"x" * 400_000)])
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        assert (await admin.get("/api/v1/ingest-jobs/nope")).json()["error"]["code"] == "ingest_job_not_found"
        # A changed file replaces its chunks.
        await job_of(admin, await upload(admin, "support", [("reset.md", SUPPORT_DOC)]))
        async with kb.db.session() as s:
            before = set(await s.scalars(select(DocumentChunk.id)))
        job = await job_of(
            admin,
            await upload(admin, "support", [("reset.md", SUPPORT_DOC + b"\nLinks expire after use.\n")]),
        )
        assert job["results"][0]["status"] == "updated"
        async with kb.db.session() as s:
            after = set(await s.scalars(select(DocumentChunk.id)))
            texts = list(await s.scalars(select(DocumentChunk.text)))
        assert before.isdisjoint(after) and any("expire after use" in t for t in texts)
        # The generalist has no index: no retrieval, no citations.
        body = await ask(user, "hello there, how are you?", model="general")
        assert body["expertgate"]["citations"] == []


async def test_stage_4_merges_a_close_second_experts_index(kb: Runtime) -> None:
    admin_key = await make_key(kb, "root@example.com", roles={"admin"})
    async with client_as(kb, admin_key) as admin:
        await job_of(admin, await upload(admin, "legal", [("msa.md", PUBLIC_MSA)]))
        await job_of(admin, await upload(admin, "support", [("reset.md", SUPPORT_DOC)]))
    caller = Principal(user_id=1, email="x@example.com", team=None, groups=frozenset(), roles=frozenset())
    chat = ChatInput(caller, "auto", (ChatMessage("user", "liability cap and the password reset link"),))

    def routed(expert: str, top_k: tuple[str, ...], probabilities: dict[str, float]) -> Routed:
        decision = RoutingDecision(
            expert, probabilities.get(expert, 0.0), Reason.ROUTED, probabilities, top_k, "test", 0.5
        )
        return Routed(chat, decision, 0.0)

    both = await kb.pipeline.retrieve(routed("legal", ("legal", "support"), {"legal": 0.5, "support": 0.4}))
    assert both.domains == ("legal", "support")
    assert {p.domain for p in both.passages} == {"legal", "support"}
    assert [p.number for p in both.passages] == list(range(1, len(both.passages) + 1))
    scores = [p.score for p in both.passages]
    assert scores == sorted(scores, reverse=True)
    alone = await kb.pipeline.retrieve(routed("legal", ("legal",), {"legal": 0.9, "support": 0.1}))
    assert alone.domains == ("legal",) and {p.domain for p in alone.passages} == {"legal"}
    # The second expert's scores are weighted by its probability relative to the first.
    weak = await kb.pipeline.retrieve(routed("legal", ("legal", "support"), {"legal": 0.8, "support": 0.01}))
    support_scores = [p.score for p in weak.passages if p.domain == "support"]
    assert all(s <= 0.02 for s in support_scores)
    general = await kb.pipeline.retrieve(routed("general", ("general", "legal"), {"general": 0.6, "legal": 0.4}))
    assert general.passages == () and general.domains == ()


async def _queued_job(kb: Runtime, name: str, data: bytes, **values: object) -> str:
    async with kb.db.transaction() as session:
        job_id = await kb.knowledge.jobs.submit_uploads(
            session, "legal", [(name, data)], groups=frozenset(), user_id=None
        )
        if values:
            await session.execute(update(IngestJob).where(IngestJob.id == job_id).values(**values))
    return job_id


async def test_jobs_a_stopped_process_left_are_resumed_and_live_ones_left_alone(kb: Runtime) -> None:
    gone = gone_holder()
    # Queued by a process that stopped before its background task ran; running when its
    # process stopped (SQLite rolled its ingest back); running in a live process; and
    # queued just now by this process, whose own background task will run it.
    queued = await _queued_job(kb, "msa-key-terms.md", PUBLIC_MSA, holder=gone)
    running = await _queued_job(kb, "fallbacks.md", RESTRICTED_FALLBACKS, status="running", holder=gone)
    live = await _queued_job(kb, "reset.md", SUPPORT_DOC, status="running", holder=this_process())
    fresh = await _queued_job(kb, "reset-2.md", SUPPORT_DOC + b"Twice.\n")

    assert await kb.knowledge.jobs.resume_orphans() == [queued, running]

    async with kb.db.session() as session:
        jobs = {j.id: j for j in await session.scalars(select(IngestJob))}
        sources = set(await session.scalars(select(Document.source)))
    assert {i: j.status for i, j in jobs.items()} == {
        queued: "succeeded", running: "succeeded", live: "running", fresh: "queued",
    }  # fmt: skip
    assert jobs[running].holder == this_process()  # taken over
    assert {"upload/msa-key-terms.md", "upload/fallbacks.md"} <= sources
    assert "upload/reset.md" not in sources


async def test_a_job_claimed_by_another_runner_since_it_was_read_is_left_to_it(kb: Runtime) -> None:
    job_id = await _queued_job(kb, "msa-key-terms.md", PUBLIC_MSA)
    other = f"{socket.gethostname()}:1:1"
    async with kb.db.transaction() as session:
        job = await session.get(IngestJob, job_id)  # read queued, as two runners may both do on SQLite
        assert job is not None
        async with kb.db.transaction() as meanwhile:  # the other runner claims it first
            await meanwhile.execute(
                update(IngestJob).where(IngestJob.id == job_id).values(status="running", holder=other)
            )
        assert not await _claim(session, job)
    async with kb.db.transaction() as session:
        job = await session.get(IngestJob, job_id)
        assert job is not None and job.holder == other
        assert await _claim(session, job)  # read afresh, it can be claimed (as a taker-over would)
    async with kb.db.session() as session:
        assert (await session.get(IngestJob, job_id)).holder == this_process()  # type: ignore[union-attr]


def test_a_holder_whose_pid_was_given_to_another_process_is_gone() -> None:
    me = this_process()
    host, pid, start = me.split(":")
    assert not holder_gone(me)
    assert holder_gone(f"{host}:{pid}:{int(start) - 1}")  # this pid, an earlier process
    assert not holder_gone(f"other-host:{pid}:{start}")  # another host: not known
    assert not holder_gone(None)  # a job from before holders were recorded


async def test_a_run_cancelled_mid_ingest_keeps_its_uploads_for_the_resume(kb: Runtime) -> None:
    job_id = await _queued_job(kb, "msa-key-terms.md", PUBLIC_MSA)
    staged = kb.settings.data_dir / "uploads" / job_id
    assert staged.is_dir()

    def shutdown_arrives(phase: str, done: int, total: int, detail: str) -> None:
        raise asyncio.CancelledError  # as the lifespan's cancellation would, mid-ingest

    with pytest.raises(asyncio.CancelledError):
        await kb.knowledge.jobs.run(job_id, shutdown_arrives)
    assert staged.is_dir()  # still there for whoever resumes the job
    async with kb.db.transaction() as session:  # as if its process had stopped
        await session.execute(update(IngestJob).where(IngestJob.id == job_id).values(holder=gone_holder()))
    assert await kb.knowledge.jobs.resume_orphans() == [job_id]
    assert not staged.exists()  # removed once the results are recorded
