"""Router: encode -> gate scores -> decision policy. The package's front door."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from router.encoder import Encoder, Vectors
from router.memo import TextMemo
from router.policy import DecisionPolicy
from router.types import RouteRequest, RoutingDecision, Scores

Vector = npt.NDArray[np.float32]  # one row of Vectors


class Scorer(Protocol):
    """A gate: scores encoded texts. ``version`` names the artifact it came from.

    ``encoder``: the encoder whose vectors it scores, when that is not the router's own
    (a gate with a routing-tuned encoder); None: the router's encoder.
    """

    version: str
    experts: tuple[str, ...]
    encoder: Encoder | None

    def score(self, texts: Sequence[str], vectors: Vectors) -> list[Scores]: ...


@dataclass(frozen=True)
class ShadowStats:
    version: str | None
    compared: int
    agreed: int

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


@dataclass(frozen=True, eq=False)
class EncodedRoute:
    """A decision and the encoder's vector of the request's text (None: not encoded).

    ``model`` names the encoder that made the vector: the router's own, or a gate's
    routing-tuned encoder, whose vectors only that gate can use.
    """

    decision: RoutingDecision
    vector: Vector | None
    model: str | None = None


_activations = itertools.count()


@dataclass(frozen=True)
class _Active:
    scorer: Scorer
    policy: DecisionPolicy
    # Names this activation's scores in the memo: a gate swapped in again, or another
    # scorer under the same version name (new prototypes), never reads older scores.
    key: str = field(default_factory=lambda: f"scores:{next(_activations)}")


class Router:
    """Routes requests. Thread-safe; gate and shadow can be swapped while serving."""

    def __init__(
        self, encoder: Encoder, scorer: Scorer, policy: DecisionPolicy, *, memo: TextMemo | None = None
    ) -> None:
        """``memo``: repeated texts take their vectors and the gate's scores from it
        instead of the encoder and the gate (router/memo.py); None: every text is
        encoded and scored."""
        self.encoder = encoder
        self._memo = memo
        self._active = _Active(scorer, policy)
        self._shadow: _Active | None = None
        self._lock = threading.Lock()
        self._compared = 0
        self._agreed = 0

    @property
    def scorer(self) -> Scorer:
        return self._active.scorer

    @property
    def policy(self) -> DecisionPolicy:
        return self._active.policy

    @property
    def version(self) -> str:
        return self._active.scorer.version

    @property
    def vector_model(self) -> str:
        """The name of the encoder whose vectors the active gate scores (and its routes
        carry): a gate's routing-tuned encoder, or the router's own."""
        return (self._active.scorer.encoder or self.encoder).name

    def swap(self, scorer: Scorer, policy: DecisionPolicy | None = None) -> None:
        """Replace the gate (and its policy) atomically; in-flight batches finish on the old."""
        with self._lock:
            self._active = _Active(scorer, policy or self._active.policy)

    def set_shadow(self, scorer: Scorer | None, policy: DecisionPolicy | None = None) -> None:
        """Run ``scorer`` beside the active gate on every request, recording agreement."""
        with self._lock:
            self._shadow = None if scorer is None else _Active(scorer, policy or self._active.policy)
            self._compared = self._agreed = 0

    def shadow_stats(self) -> ShadowStats:
        with self._lock:
            shadow = self._shadow
            return ShadowStats(shadow.scorer.version if shadow else None, self._compared, self._agreed)

    def route(self, request: RouteRequest) -> RoutingDecision:
        return self.route_many([request])[0]

    def route_encoded(self, request: RouteRequest) -> EncodedRoute:
        """Route one request and keep the query vector the encoder made for it.

        The caller may reuse the vector (retrieval embeds the same text with the same
        model); it is None when the request named its expert and no encoding ran.
        """
        return self.route_many_encoded([request])[0]

    def route_many_encoded(self, requests: Sequence[RouteRequest]) -> list[EncodedRoute]:
        """:meth:`route_many`, keeping each request's vector (see :meth:`route_encoded`)."""
        decisions, vectors, model = self._route(requests)
        return [EncodedRoute(d, v, model if v is not None else None) for d, v in zip(decisions, vectors, strict=True)]

    def route_many(self, requests: Sequence[RouteRequest]) -> list[RoutingDecision]:
        """Route a batch with one encoder call. Raises ExpertNotAllowed, UnknownExpertName."""
        return self._route(requests)[0]

    def _route(self, requests: Sequence[RouteRequest]) -> tuple[list[RoutingDecision], list[Vector | None], str]:
        """Decisions, each request's text vector (None where no encoding was needed) and
        the name of the encoder that made the vectors.

        A request that names its expert is decided by the policy's first rule alone: the
        gate's scores cannot change it, so it skips the encoder (the costliest step).
        """
        active, shadow = self._active, self._shadow  # one gate for the whole batch
        encoder = self._encoder_of(active)
        if not requests:
            return [], [], encoder.name
        requests = list(requests)
        decisions: list[RoutingDecision | None] = [
            None if r.requested is None else active.policy.requested(r, active.scorer.experts, active.scorer.version)
            for r in requests
        ]
        vectors: list[Vector | None] = [None] * len(requests)
        todo = [i for i, d in enumerate(decisions) if d is None]
        batch = [requests[i] for i in todo]  # _score notes inferred conversation experts here
        encoded: Vectors | None = None
        if todo:
            scored, encoded = self._score(batch, active)
            for j, i in enumerate(todo):
                decisions[i], vectors[i] = scored[j], encoded[j]
        out = [d for d in decisions if d is not None]
        if shadow is None:
            return out, vectors, encoder.name
        # A named expert: the shadow's first rule gives the same answer, no scoring needed.
        others = [d.expert for d in out]
        if encoded is not None:
            shadow_encoder = self._encoder_of(shadow)
            texts = [r.text for r in batch]
            shadow_vectors = encoded if shadow_encoder.name == encoder.name else shadow_encoder.encode(texts)
            shadow_scores = self._scores(shadow, texts, shadow_vectors)
            for i, r, s in zip(todo, batch, shadow_scores, strict=True):
                others[i] = shadow.policy.decide(s, r, shadow.scorer.version).expert
        agreed = sum(o == d.expert for o, d in zip(others, out, strict=True))
        out = [
            dataclasses.replace(d, shadow_expert=o, shadow_version=shadow.scorer.version)
            for d, o in zip(out, others, strict=True)
        ]
        with self._lock:
            if self._shadow is shadow:
                self._compared += len(out)
                self._agreed += agreed
        return out, vectors, encoder.name

    def _encoder_of(self, gate: _Active) -> Encoder:
        """The encoder whose vectors ``gate`` scores, through the memo when there is one."""
        encoder = gate.scorer.encoder or self.encoder
        return encoder if self._memo is None else self._memo.wrap(encoder)

    def _scores(self, gate: _Active, texts: list[str], vectors: Vectors) -> list[Scores]:
        """``gate``'s scores of ``texts`` (``vectors`` their vectors, one row each)."""
        if self._memo is None:
            return gate.scorer.score(texts, vectors)
        row = {text: i for i, text in enumerate(texts)}
        return self._memo.recall(
            gate.key, texts, lambda missing: gate.scorer.score(missing, vectors[[row[t] for t in missing]])
        )

    def _score(self, requests: list[RouteRequest], active: _Active) -> tuple[list[RoutingDecision], Vectors]:
        """Encode and score requests that name no expert, in one encoder call.

        A request whose conversation expert is inferred is replaced in ``requests`` by
        one that names it (``previous_expert``), for the shadow gate to decide alike.
        """
        texts = [r.text for r in requests]
        # A follow-up sent with its history but no known conversation expert: route the
        # previous user turn in the same encoder call and treat its expert as the
        # conversation's.
        infer = [i for i, r in enumerate(requests) if r.previous_expert is None and r.history]
        all_texts = texts + [requests[i].history[-1] for i in infer]
        all_vectors = self._encoder_of(active).encode(all_texts)
        all_scores = self._scores(active, all_texts, all_vectors)
        for j, i in enumerate(infer):
            earlier = RouteRequest(text=requests[i].history[-1], allowed=requests[i].allowed)
            previous = active.policy.decide(all_scores[len(texts) + j], earlier, active.scorer.version)
            requests[i] = dataclasses.replace(requests[i], previous_expert=previous.expert)
        scores = all_scores[: len(texts)]
        decisions = [active.policy.decide(s, r, active.scorer.version) for s, r in zip(scores, requests, strict=True)]
        return decisions, all_vectors[: len(texts)]
