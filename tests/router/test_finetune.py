"""A gate with a routing-tuned encoder: tuning, artifact, loading, serving, shadow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from router.artifacts import ArtifactStore
from router.dataset import SEED_DIR, Example, load_jsonl, stratified_split
from router.encoder import Encoder, SentenceTransformerEncoder, Vectors
from router.errors import ArtifactError
from router.finetune import FinetuneConfig, apply_tensors, finetune_encoder
from router.gate import ENCODER_WEIGHTS, TrainedScorer
from router.loading import scorer_for
from router.policy import DecisionPolicy
from router.service import Router
from router.train import TrainConfig, train_gate
from router.types import RouteRequest

EXPERTS = ("code", "legal", "support", "general")
TUNE = FinetuneConfig(batch_size=16, lr=1e-4)
FAST = TrainConfig(epochs=60, lexical_buckets=0, finetune=TUNE)


@pytest.fixture(scope="module")
def tiny_set() -> list[Example]:
    """About 30 seed examples per expert: a few tuning steps."""
    _, subset = stratified_split(load_jsonl(SEED_DIR / "train.jsonl"), 0.08, seed=3)
    return subset


@pytest.fixture(scope="module")
def tuned_gate(tiny_set: list[Example], encoder: Encoder) -> TrainedScorer:
    return train_gate(tiny_set, encoder, EXPERTS, FAST, version="gate-tuned-test").scorer


def test_tuning_changes_the_transformer_layers_only(tiny_set: list[Example], encoder: Encoder) -> None:
    assert isinstance(encoder, SentenceTransformerEncoder)
    tensors = finetune_encoder(encoder.path, tiny_set[:32], EXPERTS, TUNE)
    assert tensors and not any(n.startswith(("embeddings.", "pooler.")) for n in tensors)
    assert any(".attention." in n for n in tensors) and all(t.dtype == np.float32 for t in tensors.values())
    tuned = encoder.tuned(tensors, "tuned-test")
    texts = ["git rebase onto main", "can my landlord keep the deposit"]
    base, new = encoder.encode(texts), tuned.encode(texts)
    assert np.allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-5)
    assert float((base * new).sum(axis=1).min()) < 0.9999  # the layers moved


def test_tensors_for_another_model_are_refused(encoder: Encoder) -> None:
    assert isinstance(encoder, SentenceTransformerEncoder)
    with pytest.raises(ValueError, match="do not fit"):
        encoder.tuned({"embeddings.word_embeddings.weight": np.zeros((2, 2), np.float32)}, "bad")
    with pytest.raises(ValueError, match="other shapes"):
        encoder.tuned({"encoder.layer.0.attention.self.query.bias": np.zeros(7, np.float32)}, "bad")
    with pytest.raises(ValueError, match="do not fit"):
        apply_tensors(object.__new__(type("M", (), {"state_dict": lambda self: {}})), {"x": np.zeros(1)})


def test_the_tuned_gate_is_saved_as_float16_and_loads_to_the_same_scores(
    tuned_gate: TrainedScorer, encoder: Encoder, tmp_path: Path
) -> None:
    m = tuned_gate.manifest
    assert m.encoder == encoder.name and m.encoder_tuning is not None and m.encoder_tuning["lr"] == TUNE.lr
    assert m.tuned_encoder_name == f"{encoder.name}+gate-tuned-test"
    store = ArtifactStore(tmp_path / "store", bundled=tmp_path / "none")
    path = store.save(tuned_gate)
    stored = load_file(str(path / ENCODER_WEIGHTS))
    assert stored and all(t.dtype == np.float16 for t in stored.values())
    loaded = scorer_for(store.load("gate-tuned-test"), encoder, {})
    assert loaded.encoder is not None and loaded.encoder.name == m.tuned_encoder_name
    texts = ["kubectl pod stuck in CrashLoopBackOff", "is a verbal contract binding", "hi there"]
    assert tuned_gate.encoder is not None  # the gate training made, with the same float16 layers
    expected = tuned_gate.probabilities(texts, tuned_gate.encoder.encode(texts))
    got = loaded.score(texts, loaded.encoder.encode(texts))
    assert np.allclose([[s.probabilities[e] for e in EXPERTS] for s in got], expected, atol=1e-4)


def test_the_router_encodes_with_the_gates_encoder_and_names_it(tuned_gate: TrainedScorer, encoder: Encoder) -> None:
    gate = scorer_for(tuned_gate, encoder, {})
    router = Router(encoder, gate, DecisionPolicy(tuned_gate.manifest.policy, {}))
    routed = router.route_encoded(RouteRequest("segfault when freeing a linked list node in C"))
    assert routed.model == tuned_gate.manifest.tuned_encoder_name != encoder.name
    assert routed.vector is not None and gate.encoder is not None
    assert np.allclose(routed.vector, gate.encoder.encode(["segfault when freeing a linked list node in C"])[0], atol=1e-5)
    named = router.route_encoded(RouteRequest("anything", requested="legal"))
    assert named.vector is None and named.model is None


class Spy:
    """An encoder that records what it was asked to encode."""

    def __init__(self, inner: Encoder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.seen.extend(texts)
        return self.inner.encode(texts)


def test_a_shadow_gate_on_another_encoder_scores_its_own_vectors(
    tuned_gate: TrainedScorer, tiny_set: list[Example], encoder: Encoder
) -> None:
    plain = train_gate(tiny_set, encoder, EXPERTS, TrainConfig(epochs=60, lexical_buckets=0), version="plain").scorer
    tuned = scorer_for(tuned_gate, encoder, {})
    assert isinstance(tuned, TrainedScorer) and tuned.encoder is not None
    base_spy, tuned_spy = Spy(encoder), Spy(tuned.encoder)
    router = Router(base_spy, plain, DecisionPolicy(plain.manifest.policy, {}))
    router.set_shadow(tuned.with_encoder(tuned_spy))
    decision = router.route(RouteRequest("my card was declined at the shop"))
    assert decision.shadow_version == "gate-tuned-test" and decision.shadow_expert in EXPERTS
    assert base_spy.seen == tuned_spy.seen == ["my card was declined at the shop"]
    assert router.shadow_stats().compared == 1


def test_a_gate_with_a_tuned_encoder_needs_a_tunable_base(tuned_gate: TrainedScorer, encoder: Encoder) -> None:
    class Plain:
        name, dim = encoder.name, encoder.dim

        def encode(self, texts: list[str]) -> Vectors:
            return encoder.encode(texts)

    with pytest.raises(ArtifactError, match="cannot be tuned"):
        scorer_for(tuned_gate, Plain(), {})
