"""The prototype gate: experts scored by similarity to their description and examples.

Serves until a trained gate exists (and, for a new expert, until it has one): each
expert's prototype is the normalised mean of its description and example embeddings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from router.encoder import Encoder, Vectors
from router.types import Scores


def _softmax(x: Vectors, temperature: float) -> Vectors:
    z = x / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Vectors = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


class PrototypeScorer:
    def __init__(self, encoder: Encoder, texts: Mapping[str, Sequence[str]], temperature: float = 0.05) -> None:
        if not texts:
            raise ValueError("at least one expert is needed")
        self.experts: tuple[str, ...] = tuple(texts)
        self.encoder: Encoder | None = None  # scores the router's own encoder's vectors
        self._temperature = temperature
        centroids = []
        examples = []
        for name in self.experts:
            vecs = encoder.encode(list(texts[name]))
            mean = vecs.mean(axis=0)
            centroids.append(mean / np.linalg.norm(mean))
            examples.append(vecs)
        self._centroids: Vectors = np.stack(centroids).astype(np.float32)
        self._examples: Vectors = np.concatenate(examples).astype(np.float32)
        digest = hashlib.sha256(repr(sorted((k, tuple(v)) for k, v in texts.items())).encode()).hexdigest()
        self.version = f"prototype-{digest[:10]}"

    def similarities(self, vectors: Vectors) -> Vectors:
        """Cosine similarity of each vector to each expert's prototype, (n, len(experts))."""
        out: Vectors = vectors @ self._centroids.T
        return out

    def score(self, texts: Sequence[str], vectors: Vectors) -> list[Scores]:
        sims = vectors @ self._centroids.T
        probs = _softmax(sims, self._temperature)
        in_domain = (vectors @ self._examples.T).max(axis=1)
        return [
            Scores(
                probabilities={n: float(p) for n, p in zip(self.experts, row, strict=True)},
                in_domain=float(d),
            )
            for row, d in zip(probs, in_domain, strict=True)
        ]
