"""Classification and calibration metrics (numpy only; no sklearn at serve time)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router.encoder import Vectors

GENERALIST = "general"


@dataclass(frozen=True)
class Report:
    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    precision: dict[str, float]
    recall: dict[str, float]
    f1: dict[str, float]
    confusion: list[list[int]]  # rows = true label, columns = predicted, in ``labels`` order
    general_recall: float
    in_domain_abstain_rate: float  # in-domain requests sent to the generalist
    n: int

    def as_dict(self) -> dict[str, object]:
        return {
            "labels": list(self.labels),
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "precision": {k: round(v, 4) for k, v in self.precision.items()},
            "recall": {k: round(v, 4) for k, v in self.recall.items()},
            "f1": {k: round(v, 4) for k, v in self.f1.items()},
            "confusion": self.confusion,
            "general_recall": round(self.general_recall, 4),
            "in_domain_abstain_rate": round(self.in_domain_abstain_rate, 4),
        }


def classification_report(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> Report:
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        confusion[index[t], index[p]] += 1
    tp = np.diag(confusion).astype(float)
    col = confusion.sum(axis=0).astype(float)
    row = confusion.sum(axis=1).astype(float)
    precision = np.divide(tp, col, out=np.zeros_like(tp), where=col > 0)
    recall = np.divide(tp, row, out=np.zeros_like(tp), where=row > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = row > 0
    in_domain = [i for i, label in enumerate(labels) if label != GENERALIST]
    in_domain_total = confusion[in_domain].sum()
    abstained = confusion[in_domain, index[GENERALIST]].sum() if GENERALIST in index else 0
    return Report(
        labels=tuple(labels),
        accuracy=float(tp.sum() / max(1, confusion.sum())),
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        precision={label: float(precision[i]) for i, label in enumerate(labels)},
        recall={label: float(recall[i]) for i, label in enumerate(labels)},
        f1={label: float(f1[i]) for i, label in enumerate(labels)},
        confusion=confusion.tolist(),
        general_recall=float(recall[index[GENERALIST]]) if GENERALIST in index else 0.0,
        in_domain_abstain_rate=float(abstained / in_domain_total) if in_domain_total else 0.0,
        n=int(confusion.sum()),
    )


def expected_calibration_error(probs: Vectors, truth_index: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 confidence, equal-width bins over (0, 1]."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == truth_index).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)
