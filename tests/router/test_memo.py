"""The text memo: a repeated text skips the encoder and the gate, and gets the very same
vector and scores; the policy still decides each request."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from router.artifacts import BUNDLED
from router.encoder import Encoder, Vectors
from router.gate import TrainedScorer
from router.memo import MAX_TEXT_CHARS, TextMemo
from router.policy import DecisionPolicy
from router.service import Router
from router.types import RouteRequest, Scores
from tests.fakes.embedder import CountingEncoder, HashEmbedder


def test_a_repeated_text_is_not_encoded_again_and_gets_the_same_vector() -> None:
    inner = HashEmbedder()
    recording = CountingEncoder(inner)
    memo = TextMemo(16)
    encoder = memo.wrap(recording)
    first = encoder.encode(["reset my password", "where is the VPN guide"])
    again = encoder.encode(["where is the VPN guide", "reset my password", "a new question"])
    assert recording.texts == ["reset my password", "where is the VPN guide", "a new question"]
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[1], first[0])
    assert np.array_equal(again, inner.encode(["where is the VPN guide", "reset my password", "a new question"]))
    assert (memo.hits, memo.misses) == (2, 3)
    # A text twice in one call is encoded once; an empty call is an empty array.
    assert encoder.encode(["twice", "twice"]).shape == (2, inner.dim)
    assert recording.texts[-1:] == ["twice"]
    assert encoder.encode([]).shape == (0, inner.dim)


def test_the_least_recently_used_text_goes_first() -> None:
    recording = CountingEncoder(HashEmbedder())
    memo = TextMemo(2)
    encoder = memo.wrap(recording)
    encoder.encode(["a", "b"])
    encoder.encode(["a"])  # a is now the most recent
    encoder.encode(["c"])  # b goes
    recording.texts.clear()
    encoder.encode(["a", "b", "c"])
    assert recording.texts == ["b"]
    assert len(memo) == 2


def test_two_models_vectors_are_never_confused_and_long_texts_are_not_kept() -> None:
    memo = TextMemo(16)
    small, large = CountingEncoder(HashEmbedder(32, "model-a")), CountingEncoder(HashEmbedder(64, "model-b"))
    assert memo.wrap(small).encode(["same text"]).shape == (1, 32)
    assert memo.wrap(large).encode(["same text"]).shape == (1, 64)
    assert small.texts == large.texts == ["same text"]
    pasted = "x " * MAX_TEXT_CHARS
    memo.wrap(small).encode([pasted])
    memo.wrap(small).encode([pasted])
    assert small.texts.count(pasted) == 2
    # Wrapping a wrapped encoder reads the same memo once, not through itself.
    assert memo.wrap(memo.wrap(small)).inner is small
    with pytest.raises(ValueError):
        TextMemo(0)


class CountingGate:
    """A gate that counts the texts it scores."""

    def __init__(self, inner: TrainedScorer) -> None:
        self._inner = inner
        self.version, self.experts, self.encoder = inner.version, inner.experts, inner.encoder
        self.scored: list[str] = []

    def score(self, texts: Sequence[str], vectors: Vectors) -> list[Scores]:
        self.scored += texts
        return self._inner.score(texts, vectors)


def test_the_router_routes_a_repeated_request_alike_without_the_encoder_or_the_gate(encoder: Encoder) -> None:
    seed = TrainedScorer.load(BUNDLED / "gate-seed-v1")
    gate, recording = CountingGate(seed), CountingEncoder(encoder)
    policy = DecisionPolicy(seed.manifest.policy, {})
    router = Router(recording, gate, policy, memo=TextMemo(64))
    plain = Router(encoder, seed, policy)
    request = RouteRequest("my laptop will not connect to the office wifi")
    first = router.route_encoded(request)
    again = router.route_encoded(request)
    assert recording.texts == gate.scored == [request.text]
    assert again.decision == first.decision == plain.route(request)
    assert again.vector is not None and first.vector is not None
    assert np.array_equal(again.vector, first.vector)
    # The policy still runs per request: a caller who may not use that expert is not
    # given the remembered decision.
    barred = RouteRequest(request.text, allowed=frozenset({"general", "legal"} - {first.decision.expert}))
    assert router.route(barred).expert != first.decision.expert
    assert gate.scored == [request.text]
    # A gate swapped in (even the same one) scores again: its scores are its own.
    router.swap(gate)
    router.route(request)
    assert gate.scored == [request.text, request.text]


def test_recall_makes_only_what_it_lacks_and_checks_the_count() -> None:
    memo = TextMemo(8)
    made: list[list[str]] = []

    def upper(texts: list[str]) -> list[str]:
        made.append(texts)
        return [t.upper() for t in texts]

    assert memo.recall("upper", ["a", "b"], upper) == ["A", "B"]
    assert memo.recall("upper", ["b", "c", "c"], upper) == ["B", "C", "C"]
    assert memo.recall("lower", ["A"], lambda ts: [t.lower() for t in ts]) == ["a"]  # another maker
    assert made == [["a", "b"], ["c"]]
    with pytest.raises(ValueError, match="made 0 values for 1 texts"):
        memo.recall("broken", ["x"], lambda ts: [])
