"""The routing hot path: no encoder for a named expert, one encoder call for concurrent
requests (RouteBatcher), and the router's query vector reused by retrieval."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from backend.db.session import Database, migrate
from backend.gate.batcher import RouteBatcher
from backend.knowledge.service import QueryVector
from backend.knowledge.wiring import Knowledge, build_knowledge
from backend.runtime import build_runtime
from backend.settings import Settings
from experts.registry import ExpertRegistry
from router.artifacts import BUNDLED
from router.encoder import Encoder, Vectors
from router.errors import ExpertNotAllowed, UnknownExpertName
from router.gate import TrainedScorer
from router.policy import DecisionPolicy
from router.service import EncodedRoute, Router
from router.types import Reason, RouteRequest
from tests.backend.knowledge.test_knowledge_service import LEGAL, ingest
from tests.conftest import audit_events, client_as, make_key, write_experts_yaml
from tests.fakes.embedder import CountingEncoder, HashEmbedder
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def counting(encoder: Encoder) -> CountingEncoder:
    return CountingEncoder(encoder)


def make_router(encoder: Encoder) -> Router:
    gate = TrainedScorer.load(BUNDLED / "gate-seed-v1")
    return Router(encoder, gate, DecisionPolicy(gate.manifest.policy, {}))


def test_a_named_expert_is_decided_without_the_encoder(counting: CountingEncoder) -> None:
    router = make_router(counting)
    decision = router.route(RouteRequest("kubectl rollout undo", requested="legal"))
    assert (decision.expert, decision.reason, decision.confidence) == ("legal", Reason.REQUESTED, 1.0)
    assert decision.probabilities == {"code": 0.0, "legal": 1.0, "support": 0.0, "general": 0.0}
    assert counting.calls == []
    assert router.route_encoded(RouteRequest("hi", requested="general")).vector is None
    # ACL and unknown names are still checked.
    with pytest.raises(ExpertNotAllowed):
        router.route(RouteRequest("q", requested="legal", allowed=frozenset({"code"})))
    with pytest.raises(UnknownExpertName):
        router.route(RouteRequest("q", requested="finance"))
    assert counting.calls == []
    # A mixed batch encodes only the requests that name no expert.
    mixed = router.route_many_encoded(
        [RouteRequest("what is the liability cap in the MSA"), RouteRequest("x", requested="code")]
    )
    assert counting.calls == [1]
    assert mixed[0].decision.reason is not Reason.REQUESTED and mixed[0].vector is not None
    assert mixed[1].vector is None and mixed[1].decision.expert == "code"


def test_shadow_counts_named_requests_as_agreeing(counting: CountingEncoder) -> None:
    router = make_router(counting)
    gate = TrainedScorer.load(BUNDLED / "gate-seed-v1")
    router.set_shadow(gate)
    decisions = router.route_many([RouteRequest("kubectl rollout undo"), RouteRequest("x", requested="legal")])
    assert [d.shadow_expert for d in decisions][1] == "legal"
    stats = router.shadow_stats()
    assert stats.compared == 2 and stats.agreed == 2  # the same gate in shadow agrees with itself
    assert counting.calls == [1]


def test_the_kept_vector_is_the_encoders_vector(counting: CountingEncoder, encoder: Encoder) -> None:
    text = "my docker build fails with exit code 137"
    routed = make_router(counting).route_encoded(RouteRequest(text))
    assert routed.vector is not None
    assert np.allclose(routed.vector, encoder.encode([text])[0], atol=1e-6)


async def test_concurrent_requests_share_encoder_calls(counting: CountingEncoder) -> None:
    router = make_router(counting)
    batcher = RouteBatcher(router)
    texts = [f"question {i}: how do I reset my password in Beacon?" for i in range(12)]
    routes = await asyncio.gather(*(batcher.route(RouteRequest(t)) for t in texts))
    # The first request starts a call at once; the others queue behind it and go together.
    assert sum(counting.calls) == len(texts) and len(counting.calls) < len(texts)
    alone = [router.route(RouteRequest(t)) for t in texts]
    assert [r.decision.expert for r in routes] == [d.expert for d in alone]
    assert [r.decision.probabilities for r in routes] == [d.probabilities for d in alone]
    # A named expert is answered without queueing; its ACL error reaches its caller only.
    with pytest.raises(ExpertNotAllowed):
        await batcher.route(RouteRequest("q", requested="legal", allowed=frozenset({"code"})))


async def test_one_request_the_encoder_refuses_fails_alone(encoder: Encoder) -> None:
    class Picky(CountingEncoder):
        def encode(self, texts: Sequence[str]) -> Vectors:
            if any("\ud800" in t for t in texts):
                self.calls.append(len(texts))
                raise ValueError("tokenizer: lone surrogate")
            return super().encode(texts)

    picky = Picky(encoder)
    batcher = RouteBatcher(make_router(picky))
    texts = [f"q{i} how do I rotate an API key" for i in range(6)]
    texts[3] = "hi \ud800 there"
    results = await asyncio.gather(*(batcher.route(RouteRequest(t)) for t in texts), return_exceptions=True)
    assert isinstance(results[3], ValueError)
    assert all(isinstance(r, EncodedRoute) for i, r in enumerate(results) if i != 3), results
    assert max(picky.calls) > 1  # the bad request did share a batch, which then went one by one


async def test_an_encoder_failure_reaches_every_request_of_the_batch(encoder: Encoder) -> None:
    class Broken(CountingEncoder):
        def encode(self, texts: Sequence[str]) -> Vectors:
            raise RuntimeError("encoder down")

    batcher = RouteBatcher(make_router(Broken(encoder)))
    results = await asyncio.gather(*(batcher.route(RouteRequest(f"q{i}")) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


@pytest.fixture
async def kb(tmp_path: Path) -> AsyncIterator[Knowledge]:
    settings = Settings(data_dir=tmp_path / "data", knowledge_reload_s=0)
    settings.data_dir.mkdir()
    migrate(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    yield build_knowledge(settings, db, ExpertRegistry.from_yaml(settings.experts_file), HashEmbedder())
    await db.dispose()


async def test_retrieval_uses_the_routers_vector_of_the_same_model(kb: Knowledge, tmp_path: Path) -> None:
    await ingest(kb, tmp_path, {"msa.md": "# MSA\n\nLiability is capped at twelve months of fees.\n"})
    embedder = kb.service._embedder
    assert isinstance(embedder, HashEmbedder)
    query = "what is the liability cap"
    plain = await kb.service.retrieve(query, LEGAL, frozenset(), 3)
    calls = embedder.calls
    vector = QueryVector(embedder.name, embedder.encode([query])[0])
    reused = await kb.service.retrieve(query, LEGAL, frozenset(), 3, vector=vector)
    assert embedder.calls == calls + 1  # only the encode above: retrieval did not embed
    assert [(p.chunk_id, p.score) for p in reused.passages] == [(p.chunk_id, p.score) for p in plain.passages]
    assert reused.passages
    # A vector from another model is ignored: retrieval embeds the query itself.
    other = QueryVector("another-model", np.ones(embedder.dim, dtype=np.float32))
    again = await kb.service.retrieve(query, LEGAL, frozenset(), 3, vector=other)
    assert embedder.calls == calls + 2
    assert [p.chunk_id for p in again.passages] == [p.chunk_id for p in plain.passages]


async def test_small_indexes_are_searched_on_the_loop_large_ones_in_a_thread(
    kb: Knowledge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import backend.knowledge.service as service_module

    await ingest(kb, tmp_path, {"msa.md": "# MSA\n\nLiability is capped at twelve months of fees.\n"})
    embedder = kb.service._embedder
    query = "what is the liability cap"
    vector = QueryVector(embedder.name, embedder.encode([query])[0])
    searched_in: list[str] = []
    search = kb.service._search

    def spy(*args: object) -> object:
        searched_in.append(threading.current_thread().name)
        return search(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(kb.service, "_search", spy)
    small = await kb.service.retrieve(query, LEGAL, frozenset(), 3, vector=vector)
    monkeypatch.setattr(service_module, "INLINE_SEARCH_CHUNKS", 0)  # every index counts as large
    large = await kb.service.retrieve(query, LEGAL, frozenset(), 3, vector=vector)
    assert searched_in[0] == threading.main_thread().name and searched_in[1] != searched_in[0]
    assert small.passages and [(p.chunk_id, p.score) for p in large.passages] == [
        (p.chunk_id, p.score) for p in small.passages
    ]


async def test_routes_carry_the_base_models_vector_made_in_one_call(encoder: Encoder) -> None:
    """With a tuned gate, the batch's base-model vectors are made together and replace the
    tuned ones, which nothing after routing can use (backend/gate/batcher.py)."""
    from router.loading import scorer_for

    gate = TrainedScorer.load(BUNDLED / "gate-broad-v4")
    assert gate.manifest.encoder_tuning is not None
    router = Router(encoder, scorer_for(gate, encoder, {}), DecisionPolicy(gate.manifest.policy, {}))
    base = CountingEncoder(encoder)
    batcher = RouteBatcher(router, query_encoder=base)
    texts = [f"question {i}: what is the liability cap in the MSA?" for i in range(8)]
    routes = await asyncio.gather(*(batcher.route(RouteRequest(t)) for t in texts))
    assert {r.model for r in routes} == {encoder.name}
    assert sum(base.calls) == len(texts) and len(base.calls) < len(texts)  # batched like the gate's
    expected = encoder.encode(texts)
    for route, row in zip(routes, expected, strict=True):
        assert route.vector is not None and float(route.vector @ row) > 0.9999
    assert [r.decision.expert for r in routes] == [router.route(RouteRequest(t)).expert for t in texts]
    # Named experts never reach the encoders.
    named = await batcher.route(RouteRequest("x", requested="code"))
    assert named.vector is None and sum(base.calls) == len(texts)

    class Down(CountingEncoder):
        def encode(self, texts: Sequence[str]) -> Vectors:
            raise RuntimeError("encoder down")

    # A query encoder that fails leaves the routes as the gate made them.
    kept = await RouteBatcher(router, query_encoder=Down(encoder)).route(RouteRequest(texts[0]))
    assert kept.model == gate.manifest.tuned_encoder_name and kept.vector is not None


async def test_the_base_vectors_are_made_beside_the_gates_encode(encoder: Encoder) -> None:
    """The base model's call runs in a thread of its own while the gate's tuned encoder
    runs: each call waits at a barrier for the other, which passes only if both run at
    the same time (one after the other in one thread, the first would time out)."""
    from router.loading import scorer_for

    gate = TrainedScorer.load(BUNDLED / "gate-broad-v4")
    meet = threading.Barrier(2, timeout=5)
    meeting = [True]

    class Meeting(CountingEncoder):
        def encode(self, texts: Sequence[str]) -> Vectors:
            if meeting[0]:
                meet.wait()
            return super().encode(texts)

    scorer = scorer_for(gate, encoder, {})
    assert scorer.encoder is not None
    scorer.encoder = tuned = Meeting(scorer.encoder)
    router = Router(encoder, scorer, DecisionPolicy(gate.manifest.policy, {}))
    base = Meeting(encoder)
    batcher = RouteBatcher(router, query_encoder=base)
    try:
        text = "what is the liability cap in the MSA?"
        route = await batcher.route(RouteRequest(text))
    finally:
        batcher.close()
    assert not meet.broken and tuned.calls == [1] and base.calls == [1]
    assert route.model == encoder.name and route.vector is not None
    assert float(route.vector @ encoder.encode([text])[0]) > 0.9999
    assert route.decision.expert == "legal"
    # Closed (the runtime stopping), it still routes: the base vector made after routing.
    meeting[0] = False
    question = RouteRequest("what notice period applies to the supplier contract?")
    late = await asyncio.wait_for(batcher.route(question), 30)  # a batch that raised would never answer
    assert late.model == encoder.name and late.vector is not None
    assert base.calls == [1, 1] and tuned.calls == [1, 1]


async def test_named_experts_get_the_base_vector_batched_when_asked(encoder: Encoder) -> None:
    """With ``embed_named`` (the safety check on), requests that name their expert join the
    batches for the base model's vector: concurrent ones share encoder calls, each keeps
    its requested expert, and an ACL refusal reaches its own caller only."""
    from router.loading import scorer_for

    gate = TrainedScorer.load(BUNDLED / "gate-broad-v4")
    router = Router(encoder, scorer_for(gate, encoder, {}), DecisionPolicy(gate.manifest.policy, {}))
    base = CountingEncoder(encoder)
    batcher = RouteBatcher(router, query_encoder=base, embed_named=True)
    texts = [f"named {i}: how do I rotate the deploy key?" for i in range(8)]
    refused = RouteRequest("q", requested="legal", allowed=frozenset({"code"}))
    outcomes = await asyncio.gather(
        *(batcher.route(RouteRequest(t, requested="code")) for t in texts),
        batcher.route(refused),
        return_exceptions=True,
    )
    *routes, denied = outcomes
    assert isinstance(denied, ExpertNotAllowed)
    assert all(isinstance(r, EncodedRoute) for r in routes)
    assert [r.decision.expert for r in routes] == ["code"] * len(texts)  # type: ignore[union-attr]
    assert {r.model for r in routes} == {encoder.name}  # type: ignore[union-attr]
    assert sum(base.calls) == len(texts) and len(base.calls) < len(texts)  # one call for many
    for route, row in zip(routes, encoder.encode(texts), strict=True):
        assert route.vector is not None and float(route.vector @ row) > 0.9999  # type: ignore[union-attr]
    # Without it, a named expert reaches no encoder at all.
    plain = await RouteBatcher(router, query_encoder=base).route(RouteRequest("x", requested="code"))
    assert plain.vector is None and sum(base.calls) == len(texts)


@pytest.mark.parametrize(("memo_entries", "encodes"), [(4096, 1), (0, 2)])
async def test_a_repeated_question_is_encoded_once_through_the_app(
    tmp_path: Path, gate_dir: Path, fake_llm: FakeOpenAI, encoder: Encoder, memo_entries: int, encodes: int
) -> None:
    """Through the app (gate, safety check, retrieval): the second identical question takes
    its vectors from the process's memo (router/memo.py), and is routed and answered alike;
    with the memo off it is encoded again."""
    recording = CountingEncoder(encoder)
    settings = Settings(
        data_dir=tmp_path / "data", router_dir=gate_dir, text_memo_entries=memo_entries,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", fake_llm.api_base), bootstrap_admin=False,
    )  # fmt: skip
    runtime = build_runtime(settings, encoder=recording, environ={})
    question = "my laptop will not connect to the office wifi since this morning"
    body = {"model": "auto", "messages": [{"role": "user", "content": question}]}
    try:
        key = await make_key(runtime, "ana@example.com")
        async with client_as(runtime, key) as client:
            answers = []
            for _ in range(2):
                r = await client.post("/v1/chat/completions", json=body)
                assert r.status_code == 200, r.text
                answers.append(r.json()["expertgate"])
            metrics = (await client.get("/metrics")).text
        events = await audit_events(runtime, action="chat.completion")
    finally:
        await runtime.close()
    assert recording.texts.count(question) == encodes
    memo_hits = [line for line in metrics.splitlines() if line.startswith("expertgate_text_memo_hits_total ")]
    if memo_entries:  # the second request's vector (gate and safety check) came from memory
        assert len(memo_hits) == 1 and float(memo_hits[0].split()[1]) >= 1
    else:
        assert memo_hits == []
    first, second = answers
    assert (second["expert"], second["probabilities"]) == (first["expert"], first["probabilities"])
    verdicts = [e.payload["safety"]["scores"] for e in events]
    assert len(verdicts) == 2 and verdicts[0] == verdicts[1]
