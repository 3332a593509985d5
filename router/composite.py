"""A trained gate extended with prototype scores for experts it was not trained on.

When an expert is added to experts.yaml, it is routable at once: its description and
examples form a prototype; a request close enough to it (cosine similarity around
``threshold``, soft over ``width``) takes probability mass from the trained experts.
Retraining then folds the expert into the gate proper.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from router.encoder import Vectors
from router.prototype import PrototypeScorer
from router.service import Scorer
from router.types import Scores


class GateWithPrototypes:
    def __init__(
        self,
        gate: Scorer,
        prototypes: PrototypeScorer,
        threshold: float = 0.55,
        width: float = 0.04,
    ) -> None:
        overlap = set(gate.experts) & set(prototypes.experts)
        if overlap:
            raise ValueError(f"experts both trained and prototyped: {sorted(overlap)}")
        self.gate = gate
        self.encoder = gate.encoder  # the prototypes must be built with the same one
        self._prototypes = prototypes
        self._threshold = threshold
        self._width = width
        self.experts: tuple[str, ...] = (*gate.experts, *prototypes.experts)
        self.version = f"{gate.version}+prototypes({','.join(prototypes.experts)})"

    def score(self, texts: Sequence[str], vectors: Vectors) -> list[Scores]:
        base = self.gate.score(texts, vectors)
        sims = self._prototypes.similarities(vectors)
        raw = 1.0 / (1.0 + np.exp(-(sims - self._threshold) / self._width))
        out = []
        for scores, row_raw, row_sim in zip(base, raw, sims, strict=True):
            mass = float(min(0.95, row_raw.sum()))
            share = row_raw / row_raw.sum() * mass if row_raw.sum() > 0 else row_raw
            probs = {k: v * (1.0 - mass) for k, v in scores.probabilities.items()}
            probs.update({n: float(p) for n, p in zip(self._prototypes.experts, share, strict=True)})
            out.append(Scores(probs, max(scores.in_domain, float(row_sim.max()))))
        return out
