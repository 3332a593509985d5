"""Training a gate: fit, calibrate, tune thresholds, package as a versioned artifact.

Deterministic for the same examples, encoder and seed. Uses torch for the fit only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import torch
from torch import nn

from router.dataset import Example, data_hash, stratified_split
from router.encoder import Encoder, TunableEncoder, Vectors
from router.features import HashedNgrams
from router.finetune import FinetuneConfig, finetune_encoder
from router.gate import GateManifest, TrainedScorer
from router.metrics import GENERALIST, classification_report, expected_calibration_error
from router.policy import DecisionPolicy, PolicyConfig
from router.types import RouteRequest, Scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    architecture: str = "mlp"  # "mlp", "linear" or "knn" (no fit: nearest examples per expert)
    hidden: int = 256
    dropout: float = 0.1
    epochs: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 30
    val_fraction: float = 0.15
    knn_k: int = 5
    lexical_buckets: int = 1 << 16  # 0 turns the hashed n-gram features off
    lexical_lr: float = 0.1  # each bucket sees a 1/n share of the gradient: it needs a larger step
    max_in_domain_abstain: float = 0.04  # threshold tuning keeps val abstain under this
    seed: int = 7
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    # Tune the encoder's layers on the training split first (router/finetune.py) and fit
    # the head on the tuned vectors; None: the head works on the base encoder's vectors.
    finetune: FinetuneConfig | None = None


@dataclass(frozen=True)
class TrainResult:
    scorer: TrainedScorer
    val_metrics: dict[str, object]


class _GateNet(nn.Module):
    """Dense head over the embedding, plus a hashed n-gram bag (fastText-style)."""

    def __init__(self, config: TrainConfig, dim: int, n_out: int) -> None:
        super().__init__()
        self.dense: nn.Module
        if config.architecture == "linear":
            self.dense = nn.Linear(dim, n_out)
        elif config.architecture == "mlp":
            self.dense = nn.Sequential(
                nn.Linear(dim, config.hidden),
                nn.ReLU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden, n_out),
            )
        else:
            raise ValueError(f"unknown architecture {config.architecture!r}")
        self.lex = nn.EmbeddingBag(config.lexical_buckets, n_out, mode="mean") if config.lexical_buckets else None
        if self.lex is not None:
            nn.init.zeros_(self.lex.weight)

    def forward(self, x: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.dense(x)
        if self.lex is not None:
            out = out + self.lex(ids, offsets)
        return out


_Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _batch(x: Vectors, texts: Sequence[str], ngrams: HashedNgrams | None) -> _Batch:
    if ngrams is None:
        ids, offsets = np.zeros(1, dtype=np.int64), np.zeros(len(texts), dtype=np.int64)
    else:
        ids, offsets = ngrams.batch(texts)
    return torch.from_numpy(x), torch.from_numpy(ids), torch.from_numpy(offsets)


def _fit(config: TrainConfig, train: _Batch, y: np.ndarray, val: _Batch, yv: np.ndarray, n_out: int) -> _GateNet:
    torch.manual_seed(config.seed)
    model = _GateNet(config, int(train[0].shape[1]), n_out)
    counts = np.bincount(y, minlength=n_out).astype(np.float32)
    weights = torch.tensor(counts.sum() / (n_out * np.maximum(counts, 1)))
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    groups: list[dict[str, object]] = [{"params": list(model.dense.parameters())}]
    if model.lex is not None:
        groups.append({"params": list(model.lex.parameters()), "lr": config.lexical_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)  # type: ignore[arg-type]
    yt, yvt = torch.from_numpy(y), torch.from_numpy(yv)
    best, best_state, waited = math.inf, None, 0
    for _ in range(config.epochs):
        model.train()
        opt.zero_grad()
        loss = loss_fn(model(*train), yt)
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(nn.functional.cross_entropy(model(*val), yvt))
        if val_loss < best - 1e-5:
            best, waited = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= config.patience:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return model


def _tensors(model: _GateNet, architecture: str) -> dict[str, np.ndarray]:
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    if architecture == "linear":
        out = {"w": state["dense.weight"], "b": state["dense.bias"]}
    else:
        out = {
            "w1": state["dense.0.weight"],
            "b1": state["dense.0.bias"],
            "w2": state["dense.3.weight"],
            "b2": state["dense.3.bias"],
        }
    if "lex.weight" in state:
        out["lex"] = state["lex.weight"]
    return out


def fit_temperature(logits: Vectors, truth: np.ndarray) -> float:
    """The temperature minimising validation NLL (log-spaced grid, then refined)."""

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(truth)), truth].mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 200))
    best = float(min(grid, key=nll))
    fine = np.linspace(best * 0.9, best * 1.1, 41)
    return float(min(fine, key=nll))


def _decide_all(scores: Sequence[Scores], policy: PolicyConfig) -> list[str]:
    decider = DecisionPolicy(policy, {})
    return [decider.decide(s, RouteRequest(text=""), "tuning").expert for s in scores]


def tune_thresholds(
    scorer: TrainedScorer,
    texts: Sequence[str],
    vectors: Vectors,
    truth: Sequence[str],
    base: PolicyConfig,
    max_abstain: float,
) -> PolicyConfig:
    """Pick ood_threshold and min_confidence maximising val macro-F1, abstain capped."""
    best_key: tuple[float, float, float] = (-1.0, 0.0, 0.0)
    best_policy = base
    dom = scorer.in_domain(vectors)
    scores = scorer.score(texts, vectors)  # once: only the thresholds vary below
    ood_grid = sorted({round(float(q), 3) for q in np.quantile(dom, np.linspace(0, 0.3, 16))} | {0.0})
    for ood in ood_grid:
        for conf in (0.3, 0.4, 0.5, 0.6, 0.7):
            policy = replace(base, ood_threshold=ood, min_confidence=conf)
            report = classification_report(truth, _decide_all(scores, policy), scorer.experts)
            # Over the abstain cap only counts if nothing under it exists (ranked last).
            within = report.in_domain_abstain_rate <= max_abstain
            key = (float(within), report.macro_f1, report.general_recall)
            if key > best_key:
                best_key, best_policy = key, policy
    return best_policy


def _log_progress(step: int, steps: int, loss: float) -> None:
    if step % 50 == 0 or step == steps:
        log.info("fine-tuning the encoder: step %d/%d, loss %.3f", step, steps, loss)


def train_gate(
    examples: Sequence[Example],
    encoder: Encoder,
    experts: Sequence[str],
    config: TrainConfig | None = None,
    *,
    version: str | None = None,
    parent: str | None = None,
    vectors_by_text: dict[str, np.ndarray] | None = None,
) -> TrainResult:
    """Train, calibrate and package a gate for ``experts`` (which must include general).

    ``vectors_by_text`` is an optional embedding cache (filled as a side effect), so
    retraining after adding a few examples re-encodes only the new ones.
    """
    config = config or TrainConfig()
    if GENERALIST not in experts:
        raise ValueError("the experts must include the generalist 'general'")
    labels = tuple(experts)
    unknown = sorted({e.domain for e in examples} - set(labels))
    if unknown:
        raise ValueError(f"examples use unknown experts: {', '.join(unknown)}")
    empty = [label for label in labels if not any(e.domain == label for e in examples)]
    if empty:
        raise ValueError(f"no examples for: {', '.join(empty)}")

    train, val = stratified_split(examples, config.val_fraction, config.seed)
    stamp = datetime.now(UTC)
    dhash = data_hash(examples)
    version = version or f"gate-{stamp:%Y%m%d-%H%M%S}-{dhash[:8]}"
    tuned: dict[str, np.ndarray] | None = None
    gate_encoder: Encoder | None = None
    if config.finetune is not None:
        if not isinstance(encoder, TunableEncoder):
            raise ValueError(f"encoder {encoder.name} cannot be fine-tuned")
        # The validation rows stay out of the tuning: they fit the temperature and the
        # thresholds, which must see the tuned encoder as new traffic would.
        layers = finetune_encoder(encoder.path, train, labels, config.finetune, progress=_log_progress)
        # Stored as float16 (gate.py): the head is fitted on exactly what will be served.
        tuned = {k: v.astype(np.float16).astype(np.float32) for k, v in layers.items()}
        gate_encoder = encoder.tuned(tuned, f"{encoder.name}+{version}")
        vectors = gate_encoder.encode([e.text for e in examples])
        cache = {e.text: v for e, v in zip(examples, vectors, strict=True)}
    else:
        cache = vectors_by_text if vectors_by_text is not None else {}
        missing = sorted({e.text for e in examples if e.text not in cache})
        if missing:
            for text, vec in zip(missing, encoder.encode(missing), strict=True):
                cache[text] = vec

    index = {label: i for i, label in enumerate(labels)}
    x = np.stack([cache[e.text] for e in train]).astype(np.float32)
    y = np.array([index[e.domain] for e in train], dtype=np.int64)
    xv = np.stack([cache[e.text] for e in val]).astype(np.float32)
    yv = np.array([index[e.domain] for e in val], dtype=np.int64)

    texts, vtexts = [e.text for e in train], [e.text for e in val]
    if config.architecture == "knn":
        # The bank is stored as float16 (gate.py): fit on exactly what will be served.
        tensors = {"bank": x.astype(np.float16).astype(np.float32), "bank_labels": y.astype(np.float32)}
        config = replace(config, lexical_buckets=0)
    else:
        ngrams = HashedNgrams(config.lexical_buckets) if config.lexical_buckets else None
        model = _fit(config, _batch(x, texts, ngrams), y, _batch(xv, vtexts, ngrams), yv, len(labels))
        tensors = _tensors(model, config.architecture)
        tensors["bank"] = x[y != index[GENERALIST]]
    manifest = GateManifest(
        version=version,
        encoder=encoder.name,
        dim=int(x.shape[1]),
        experts=labels,
        architecture=config.architecture,
        temperature=1.0,
        knn_k=config.knn_k,
        policy=config.policy,
        data_hash=dhash,
        seed=config.seed,
        created_at=stamp.isoformat(timespec="seconds"),
        parent=parent,
        lexical_buckets=config.lexical_buckets,
        encoder_tuning=asdict(config.finetune) if config.finetune is not None else None,
    )
    raw = TrainedScorer(manifest, tensors, tuned, gate_encoder)
    temperature = fit_temperature(raw.logits(vtexts, xv), yv)
    calibrated = TrainedScorer(replace(manifest, temperature=temperature), tensors, tuned, gate_encoder)
    truth = [e.domain for e in val]
    policy = tune_thresholds(calibrated, vtexts, xv, truth, config.policy, config.max_in_domain_abstain)
    val_probs = calibrated.probabilities(vtexts, xv)
    report = classification_report(truth, _decide_all(calibrated.score(vtexts, xv), policy), labels)
    metrics: dict[str, object] = {
        "split": "validation",
        "n_train": len(train),
        "n_val": len(val),
        **report.as_dict(),
        "ece": round(expected_calibration_error(val_probs, yv), 4),
        "ece_uncalibrated": round(expected_calibration_error(raw.probabilities(vtexts, xv), yv), 4),
    }
    final = TrainedScorer(
        replace(manifest, temperature=temperature, policy=policy, metrics=metrics), tensors, tuned, gate_encoder
    )
    return TrainResult(final, metrics)
