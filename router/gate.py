"""The trained gate: a small network over sentence embeddings, calibrated, with an
in-domain score from nearest training neighbours.

Training uses torch (:mod:`router.train`); serving runs the same arithmetic in numpy on
weights loaded from safetensors, which keeps one request well under a millisecond after
the embedding and avoids torch's per-call overhead.

Artifact layout (one directory per version)::

    gate.safetensors   w1 [H,D] b1 [H] w2 [E,H] b2 [E]    (mlp)  or  w [E,D] b [E]  (linear)
                       bank [N,D] float32: embeddings of the in-domain training examples
                   or  bank [N,D] bank_labels [N]                               (knn)
                       bank: every training example (stored float16), bank_labels:
                       the index of its expert
    manifest.json      GateManifest: encoder, experts, temperature, thresholds, metrics,
                       data hash, seed, architecture
    encoder.safetensors  (only with ``encoder_tuning`` in the manifest) the routing-tuned
                       transformer layers, float16, applied over the base encoder named in
                       the manifest (:mod:`router.finetune`); the gate's vectors, and its
                       bank, come from that tuned encoder
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from router.encoder import Encoder, Vectors
from router.errors import ArtifactError
from router.features import HashedNgrams
from router.metrics import GENERALIST
from router.policy import PolicyConfig
from router.types import Scores

WEIGHTS = "gate.safetensors"
MANIFEST = "manifest.json"
ENCODER_WEIGHTS = "encoder.safetensors"


@dataclass(frozen=True)
class GateManifest:
    version: str
    encoder: str
    dim: int
    experts: tuple[str, ...]
    architecture: str  # "mlp", "linear" or "knn"
    temperature: float
    knn_k: int
    policy: PolicyConfig
    data_hash: str
    seed: int
    created_at: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    parent: str | None = None
    lexical_buckets: int = 0  # 0: no lexical features; else size of the "lex" table
    # How the encoder was tuned for routing (router.finetune.FinetuneConfig as a dict);
    # None: the gate runs on the base encoder's vectors.
    encoder_tuning: Mapping[str, Any] | None = None

    @property
    def tuned_encoder_name(self) -> str | None:
        """The name of the tuned encoder's vectors (never the base model's name)."""
        return f"{self.encoder}+{self.version}" if self.encoder_tuning is not None else None

    def to_json(self) -> str:
        raw = asdict(self)
        raw["experts"] = list(self.experts)
        return json.dumps(raw, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GateManifest:
        raw = json.loads(text)
        raw["experts"] = tuple(raw["experts"])
        raw["policy"] = PolicyConfig(**raw["policy"])
        return cls(**raw)


def _softmax(z: Vectors) -> Vectors:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Vectors = e / e.sum(axis=1, keepdims=True)
    return out


def _top_k_mean(sims: Vectors, k: int) -> Vectors:
    """Row-wise mean of the ``k`` largest values (all of them when a row is shorter)."""
    k = min(k, sims.shape[1])
    out: Vectors = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:].mean(axis=1)
    return out


class TrainedScorer:
    """Scores embeddings with a trained gate. Immutable; safe to share across threads.

    ``encoder_tensors``: the tuned encoder layers of a gate with ``encoder_tuning`` (its
    vectors must come from the base encoder with these applied). ``encoder``: that tuned
    encoder, once built (:meth:`with_encoder`); None: score the base encoder's vectors.
    """

    def __init__(
        self,
        manifest: GateManifest,
        tensors: Mapping[str, np.ndarray],
        encoder_tensors: Mapping[str, np.ndarray] | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        self.manifest = manifest
        self.version = manifest.version
        self.experts = manifest.experts
        self.encoder = encoder
        self._t = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
        if (manifest.encoder_tuning is not None) != bool(encoder_tensors):
            raise ArtifactError(f"gate {manifest.version}: tuned encoder tensors and manifest disagree")
        self.encoder_tensors = {k: np.asarray(v, dtype=np.float32) for k, v in (encoder_tensors or {}).items()}
        needed = {"mlp": ("w1", "b1", "w2", "b2", "bank"), "linear": ("w", "b", "bank"), "knn": ("bank", "bank_labels")}
        if manifest.architecture not in needed:
            raise ArtifactError(f"unknown gate architecture {manifest.architecture!r}")
        missing = [n for n in needed[manifest.architecture] if n not in self._t]
        if missing:
            raise ArtifactError(f"gate {manifest.version}: missing tensors {missing}")
        self._spans: list[tuple[int, int]] = []
        # The kNN gate's bank (its own copy, sorted by expert) is stored transposed, one
        # column per example: ``vectors @ bank.T`` on the row-major bank takes OpenBLAS's
        # slow path for two or more query rows (bench/results/hot_path_steps.json: a
        # batch of 2-16 queries about 1.5-2x the time of the same product on this layout,
        # the same scores). The other gates read only the in-domain score from their bank:
        # a view of it, no copy.
        self._bank_t: Vectors
        if manifest.architecture == "knn":
            bank, self._spans, self._in_domain_rows = self._split_bank(manifest)
            self._bank_t = np.ascontiguousarray(bank.T)
        else:
            self._bank_t, self._in_domain_rows = self._t["bank"].T, len(self._t["bank"])
            out_dim = self._t["w2" if manifest.architecture == "mlp" else "w"].shape[0]
            if out_dim != len(manifest.experts):
                raise ArtifactError(f"gate {manifest.version}: {out_dim} outputs for {len(manifest.experts)} experts")
        in_dim = self._t[{"mlp": "w1", "linear": "w", "knn": "bank"}[manifest.architecture]].shape[1]
        if in_dim != manifest.dim:
            raise ArtifactError(f"gate {manifest.version}: input size {in_dim} != manifest dim {manifest.dim}")
        self._ngrams: HashedNgrams | None = None
        if manifest.lexical_buckets:
            lex = self._t.get("lex")
            if lex is None or lex.shape != (manifest.lexical_buckets, len(manifest.experts)):
                raise ArtifactError(f"gate {manifest.version}: lexical table missing or misshapen")
            self._ngrams = HashedNgrams(manifest.lexical_buckets)

    def _split_bank(self, manifest: GateManifest) -> tuple[Vectors, list[tuple[int, int]], int]:
        """The kNN gate's bank with each expert's rows together (the generalist's last),
        each expert's (start, end) in it, and where the generalist's rows begin: one
        product with the whole bank then serves every expert and the in-domain score."""
        bank, labels = self._t["bank"], self._t["bank_labels"].astype(np.int64)
        n = len(manifest.experts)
        if labels.shape != (bank.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) >= n:
            raise ArtifactError(f"gate {manifest.version}: bank labels do not match the bank and experts")
        order = sorted(range(n), key=lambda i: manifest.experts[i] == GENERALIST)
        rows, spans, start = [], [(0, 0)] * n, 0
        for i in order:
            block = bank[labels == i]
            if len(block) == 0:
                raise ArtifactError(f"gate {manifest.version}: {manifest.experts[i]} has no examples in the bank")
            rows.append(block)
            spans[i] = (start, start + len(block))
            start += len(block)
        general = [spans[i][0] for i in range(n) if manifest.experts[i] == GENERALIST]
        return np.ascontiguousarray(np.concatenate(rows)), spans, general[0] if general else start

    def with_encoder(self, encoder: Encoder) -> TrainedScorer:
        """This gate, scoring the vectors of ``encoder`` (its tuned encoder)."""
        return TrainedScorer(self.manifest, self._t, self.encoder_tensors or None, encoder)

    def _check_encoder(self) -> None:
        if self.manifest.encoder_tuning is not None and self.encoder is None:
            raise ArtifactError(f"gate {self.version} scores its tuned encoder's vectors; load it with scorer_for")

    def logits(self, texts: Sequence[str], vectors: Vectors) -> Vectors:
        """Uncalibrated logits, shape (len(texts), len(experts)). Raises ArtifactError for a
        gate with a tuned encoder that has none attached (its vectors would be the base
        model's: see :func:`router.loading.scorer_for`)."""
        self._check_encoder()
        out: Vectors
        t = self._t
        if self.manifest.architecture == "knn":
            out = self._nearest(vectors)[0]
        elif self.manifest.architecture == "mlp":
            hidden = np.maximum(vectors @ t["w1"].T + t["b1"], 0.0)
            out = hidden @ t["w2"].T + t["b2"]
        else:
            out = vectors @ t["w"].T + t["b"]
        if self._ngrams is not None:
            lex = t["lex"]
            out = out + np.stack([lex[self._ngrams.ids(text)].mean(axis=0) for text in texts])
        return out

    def probabilities(self, texts: Sequence[str], vectors: Vectors) -> Vectors:
        return _softmax(self.logits(texts, vectors) / self.manifest.temperature)

    def in_domain(self, vectors: Vectors) -> Vectors:
        """Mean cosine similarity to the k nearest in-domain training examples."""
        return _top_k_mean(vectors @ self._bank_t[:, : self._in_domain_rows], self.manifest.knn_k)

    def _nearest(self, vectors: Vectors) -> tuple[Vectors, Vectors]:
        """The kNN gate's logits (each expert's mean cosine to its k nearest examples; the
        temperature makes probabilities of them) and the in-domain score, from one product."""
        sims = vectors @ self._bank_t
        k = self.manifest.knn_k
        per_expert = np.stack([_top_k_mean(sims[:, a:b], k) for a, b in self._spans], axis=1)
        return per_expert, _top_k_mean(sims[:, : self._in_domain_rows], k)

    def score(self, texts: Sequence[str], vectors: Vectors) -> list[Scores]:
        if self.manifest.architecture == "knn":
            self._check_encoder()
            logits, dom = self._nearest(vectors)
            probs = _softmax(logits / self.manifest.temperature)
        else:
            probs = self.probabilities(texts, vectors)
            dom = self.in_domain(vectors)
        return [
            Scores({n: float(p) for n, p in zip(self.experts, row, strict=True)}, float(d))
            for row, d in zip(probs, dom, strict=True)
        ]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tensors = dict(self._t)
        if self.manifest.architecture == "knn":  # every training example: half the size
            tensors["bank"] = tensors["bank"].astype(np.float16)
        save_file(tensors, str(directory / WEIGHTS))
        if self.encoder_tensors:
            half = {k: v.astype(np.float16) for k, v in self.encoder_tensors.items()}
            save_file(half, str(directory / ENCODER_WEIGHTS))
        (directory / MANIFEST).write_text(self.manifest.to_json() + "\n")

    @classmethod
    def load(cls, directory: Path) -> TrainedScorer:
        """Load a version directory. Raises ArtifactError if files are missing or corrupt."""
        try:
            manifest = GateManifest.from_json((directory / MANIFEST).read_text())
            tensors = load_file(str(directory / WEIGHTS))
            tuned = load_file(str(directory / ENCODER_WEIGHTS)) if manifest.encoder_tuning is not None else None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"cannot load gate from {directory}: {exc}") from exc
        except Exception as exc:  # safetensors raises its own error type for corrupt files
            raise ArtifactError(f"cannot load gate from {directory}: {exc}") from exc
        return cls(manifest, tensors, tuned)
