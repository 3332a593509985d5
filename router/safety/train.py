"""Training the safety classifier: fit, calibrate, pick the threshold, package.

Deterministic for the same examples, encoder and seed; torch for the fit only.

    python -m router.safety.train            # writes router/safety/artifacts/<version>/

Robustness to benign padding is trained for: a share of the attacks is also shown with
an ordinary request before or after it (an attack does not stop being one because a
real question comes with it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from router.encoder import Encoder, SentenceTransformerEncoder, Vectors, bundled_minilm_path
from router.features import HashedNgrams
from router.safety import rules
from router.safety.data import (
    BENIGN,
    DATA_DIR,
    VAL_SHARE,
    SafetyExample,
    SafetySplit,
    is_validation,
    load_split,
    targets,
)
from router.safety.model import CATEGORIES, SafetyManifest, SafetyModel, pieces

log = logging.getLogger(__name__)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ENCODER = "all-MiniLM-L6-v2"  # the base encoder's name, as the server calls it


@dataclass(frozen=True)
class SafetyTrainConfig:
    hidden: int = 128
    dropout: float = 0.3
    epochs: int = 20
    lr: float = 2e-3
    lexical_lr: float = 0.05
    weight_decay: float = 1e-4
    lexical_buckets: int = 1 << 16
    attack_weight: float = 3.0  # attacks are fewer than benign rows
    padded_share: float = 0.4  # of the attacks, how many are also shown with benign padding
    val_share: int = VAL_SHARE  # one training row in this many is held for calibration and threshold
    target_fpr: float = 0.005  # on the validation benign rows; the test budget is 1%
    whole_weight: float = 0.3  # of the loss on each whole text alone (documents are scored whole)
    seed: int = 11
    # Networks fitted on the same rows from different starting weights and batch orders,
    # their logits averaged (served as one network: see _merged). One net's flags on
    # hard benign rows move with its seed; the mean of several moves less.
    members: int = 1


def _pad(attack: str, benign: str, rng: random.Random) -> str:
    return f"{benign} {attack}" if rng.random() < 0.5 else f"{attack} {benign}"


def padded(attacks: Sequence[SafetyExample], benign: Sequence[SafetyExample], seed: int) -> list[SafetyExample]:
    """Each attack with an ordinary request before or after it (the robustness test's
    transformation; in training, a share of the attacks)."""
    rng = random.Random(seed)
    return [SafetyExample(_pad(a.text, rng.choice(benign).text, rng), a.label, a.cell, "padded") for a in attacks]


class _SafetyNet(nn.Module):
    def __init__(self, config: SafetyTrainConfig, width: int) -> None:
        super().__init__()
        n = len(CATEGORIES)
        self.hidden = nn.Linear(width, config.hidden)
        self.out = nn.Linear(config.hidden, n)
        self.dense = nn.Sequential(self.hidden, nn.ReLU(), nn.Dropout(config.dropout), self.out)
        self.lex = nn.EmbeddingBag(config.lexical_buckets, n, mode="mean")
        nn.init.zeros_(self.lex.weight)

    def forward(self, x: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.dense(x) + self.lex(ids, offsets)
        return out


def _inputs(texts: Sequence[str], vectors: Vectors) -> np.ndarray:
    feats = np.asarray(rules.features(texts), dtype=np.float32)
    return np.concatenate([vectors, feats], axis=1)


@dataclass(frozen=True)
class _Bags:
    """Each row's units, as the server scores them: the text and its pieces
    (:func:`router.safety.model.pieces`), laid end to end. Row i owns units
    ``starts[i]:starts[i + 1]``; its logit per category is the highest of its units'."""

    texts: list[str]
    starts: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[SafetyExample]) -> _Bags:
        texts: list[str] = []
        starts = [0]
        for row in rows:
            texts += [row.text, *pieces(row.text)]
            starts.append(len(texts))
        return cls(texts, np.asarray(starts))

    def owners(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.starts) - 1), np.diff(self.starts))

    def highest(self, unit_logits: np.ndarray) -> np.ndarray:
        """Per row, the highest of its units' logits."""
        return np.maximum.reduceat(unit_logits, self.starts[:-1], axis=0)


def _fit(
    config: SafetyTrainConfig, x: np.ndarray, bags: _Bags, y: np.ndarray, weights: np.ndarray, seed: int
) -> _SafetyNet:
    """Fit on bags: a row's logit is the highest of its units' (multiple-instance
    learning, the way the server scores requests), so every piece of a benign row is
    pushed down and an attack needs only its worst piece to score high. The whole text
    alone is fitted too (``whole_weight``): document chunks are scored whole."""
    torch.manual_seed(seed)
    net = _SafetyNet(config, x.shape[1])
    ngrams = HashedNgrams(config.lexical_buckets)
    ids_per_unit = [torch.from_numpy(ngrams.ids(t)) for t in bags.texts]
    optimiser = torch.optim.AdamW(
        [
            {"params": net.dense.parameters(), "lr": config.lr, "weight_decay": config.weight_decay},
            {"params": net.lex.parameters(), "lr": config.lexical_lr, "weight_decay": 0.0},
        ]
    )
    xt, yt, wt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(weights)
    starts = bags.starts.tolist()
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    generator = torch.Generator().manual_seed(seed)
    n = len(CATEGORIES)
    for epoch in range(config.epochs):
        net.train()
        order = torch.randperm(len(yt), generator=generator)
        total = 0.0
        for first in range(0, len(order), 256):
            batch = order[first : first + 256].tolist()
            units = [torch.arange(starts[i], starts[i + 1]) for i in batch]
            index = torch.cat(units)
            owner = torch.cat([torch.full((len(u),), j) for j, u in enumerate(units)])
            ids = [ids_per_unit[k] for k in index.tolist()]
            offsets = torch.tensor([0] + [len(a) for a in ids[:-1]]).cumsum(0)
            unit_logits = net(xt[index], torch.cat(ids), offsets)
            logits = torch.full((len(batch), n), -1e9).scatter_reduce(
                0, owner[:, None].expand(-1, n), unit_logits, reduce="amax", include_self=True
            )
            rows = torch.tensor(batch)
            whole = unit_logits[torch.tensor([0] + [len(u) for u in units[:-1]]).cumsum(0)]
            per_row = (1 - config.whole_weight) * loss_fn(logits, yt[rows]) + config.whole_weight * loss_fn(
                whole, yt[rows]
            )
            loss = (per_row.mean(dim=1) * wt[rows]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        if epoch % 10 == 0 or epoch == config.epochs - 1:
            log.info("epoch %d loss %.4f", epoch, total / len(yt))
    net.eval()
    return net


def _merged(nets: Sequence[_SafetyNet]) -> dict[str, np.ndarray]:
    """The members as one network whose logits are the mean of theirs: their hidden
    layers side by side, each one's output weights divided by their number, the output
    biases and n-gram tables averaged. The artifact has the single net's layout, a wider
    hidden layer, and the server scores it unchanged."""
    k = len(nets)
    return {
        "w1": np.concatenate([n.hidden.weight.detach().numpy() for n in nets]),
        "b1": np.concatenate([n.hidden.bias.detach().numpy() for n in nets]),
        "w2": np.concatenate([n.out.weight.detach().numpy() for n in nets], axis=1) / k,
        "b2": np.mean([n.out.bias.detach().numpy() for n in nets], axis=0),
        "lex": np.mean([n.lex.weight.detach().numpy() for n in nets], axis=0),
    }


def _temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the validation log loss of one category."""
    best, best_loss = 1.0, float("inf")
    for t in np.linspace(0.3, 4.0, 38):
        p = 1.0 / (1.0 + np.exp(-np.clip(logits / t, -40, 40)))
        loss = -float(np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best


def _threshold(benign_top: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold that flags at most ``target_fpr`` of the benign rows."""
    allowed = int(np.floor(target_fpr * len(benign_top)))
    ranked = np.sort(benign_top)[::-1]
    if allowed >= len(ranked):
        return 0.5
    return float(min(0.99, max(0.5, np.nextafter(ranked[allowed], 1.0))))


class VectorCache:
    """Embeddings by text, kept on disk between runs (training re-encodes nothing it
    has seen with the same encoder)."""

    def __init__(self, encoder: Encoder, path: Path | None) -> None:
        self._encoder, self._path = encoder, path
        self._known: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as saved:
                self._known = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> Vectors:
        missing = sorted({t for t in texts if self._key(t) not in self._known})
        if missing:
            log.info("encoding %d texts", len(missing))
            for start in range(0, len(missing), 512):
                chunk = missing[start : start + 512]
                for text, vector in zip(chunk, self._encoder.encode(chunk), strict=True):
                    self._known[self._key(text)] = vector
        return np.stack([self._known[self._key(t)] for t in texts]).astype(np.float32)

    def save(self) -> None:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            keys = np.array(list(self._known))
            np.savez(self._path, keys=keys, vectors=np.stack(list(self._known.values())))


def train(split: SafetySplit, cache: VectorCache, config: SafetyTrainConfig, version: str) -> SafetyModel:
    rng_rows = split.train
    attacks = [r for r in rng_rows if r.label != BENIGN]
    benign = [r for r in rng_rows if r.label == BENIGN]
    rng = random.Random(config.seed)
    extra = padded(rng.sample(attacks, int(len(attacks) * config.padded_share)), benign, config.seed)
    rows = rng_rows + extra
    is_val = [is_validation(r.text, config.val_share) for r in rows]
    fit_rows = [r for r, v in zip(rows, is_val, strict=True) if not v]
    val_rows = [r for r, v in zip(rows, is_val, strict=True) if v]
    bags, val_bags = _Bags.of(fit_rows), _Bags.of(val_rows)
    vectors = cache.encode(bags.texts)
    val_vectors = cache.encode(val_bags.texts)
    cache.save()  # the slow part is done: keep it even if the fit is interrupted
    y, val_y = targets(fit_rows), targets(val_rows)
    weights = np.where(y.sum(axis=1) > 0, config.attack_weight, 1.0).astype(np.float32)
    x = _inputs(bags.texts, vectors)
    # The first member's seed is the config's, so one member is the single net as before.
    nets = [_fit(config, x, bags, y, weights, config.seed + k) for k in range(config.members)]
    tensors = _merged(nets)
    draft = SafetyManifest(
        version=version,
        encoder=ENCODER,
        dim=vectors.shape[1],
        categories=CATEGORIES,
        rule_features=rules.FEATURES,
        lexical_buckets=config.lexical_buckets,
        temperatures={c: 1.0 for c in CATEGORIES},
        threshold=0.5,
        data_hash=hashlib.sha256("\n".join(sorted(f"{r.label}\t{r.text}" for r in split.train)).encode()).hexdigest(),
        seed=config.seed,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    model = SafetyModel(draft, tensors)
    val_logits = val_bags.highest(model.logits(val_bags.texts, val_vectors))
    temps = {c: _temperature(val_logits[:, i], val_y[:, i]) for i, c in enumerate(CATEGORIES)}
    # A row's score is its highest unit's calibrated probability, as SafetyModel.score
    # makes it (the sigmoid and a positive temperature keep the order).
    scaled = val_logits / np.array([temps[c] for c in CATEGORIES], dtype=np.float32)
    tops = (1.0 / (1.0 + np.exp(-np.clip(scaled, -40, 40)))).max(axis=1)
    val_benign = val_y.sum(axis=1) == 0
    threshold = _threshold(tops[val_benign], config.target_fpr)
    val_recall = float((tops[~val_benign] >= threshold).mean())
    log.info("temperatures %s threshold %.3f val recall %.3f", temps, threshold, val_recall)
    metrics = {
        "val_recall": round(val_recall, 4),
        "val_rows": len(val_rows),
        "train_rows": len(fit_rows),
        "members": config.members,
    }
    return SafetyModel(replace(draft, temperatures=temps, threshold=threshold, metrics=metrics), tensors)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="safety-v2")
    parser.add_argument("--out", type=Path, default=ARTIFACTS)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "expertgate" / "safety-vectors.npz")
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="the folder of attacks_*.jsonl and benign_*.jsonl")
    parser.add_argument("--members", type=int, default=SafetyTrainConfig.members, help="networks averaged")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # One thread: on a shared 2-core machine two intra-op threads stall each other
    # (router/encoder.py measured 10x); the fit's tensors are small anyway.
    torch.set_num_threads(1)
    encoder = SentenceTransformerEncoder(bundled_minilm_path(), name=ENCODER, threads=1)
    cache = VectorCache(encoder, args.cache)
    split = load_split(args.data)
    model = train(split, cache, SafetyTrainConfig(members=args.members), args.version)
    cache.save()
    model.save(args.out / args.version)
    print(json.dumps({"version": args.version, "threshold": model.manifest.threshold, **model.manifest.metrics}))


if __name__ == "__main__":
    main()
