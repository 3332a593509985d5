"""A second reading for the texts the safety model is unsure of (docs/safety.md).

The safety model (:mod:`router.safety.model`) reads a frozen sentence embedding, n-grams
and patterns: cheap, and blind to what a frozen embedding does not keep. The reader is
the same MiniLM with its six transformer layers tuned on our attacks and hard benign
rows, and a three-way sigmoid head (injection, jailbreak, extraction): it reads the
words in their order, which is where "how do I stop 'ignore your instructions'" and
"ignore your instructions" differ. It costs one more transformer pass, so it reads only
a text whose highest score from the safety model lies in the reader's band (at or over
``band``, under the safety model's threshold): most traffic scores far below it and
never pays for the reader. In the band, the reader's probability for each category is
blended with the safety model's highest score (:func:`blend`, weighted by the manifest's
``model_weight``), and a category whose blend is at or over the reader's threshold is
raised to the safety model's threshold and flagged (:func:`second_reading`); the reader
never lowers a score.

    python -m router.safety.reader --version reader-vN [--pending]   # router/safety/artifacts/reader-vN/

Training: the safety split's training rows (router/safety/data.py) less the rows the
safety model was calibrated on (its validation rows: the band and the threshold are
chosen on them, which neither model fitted), a third of the attacks again with an
ordinary request before or after them, and a sample of the router's examples as
ordinary traffic. Deterministic for the same rows, seed and torch build.

Artifact layout (one directory per version)::

    encoder.safetensors   the tuned transformer layers (float16; router.finetune's names)
    head.safetensors      w [C, D] b [C]
    manifest.json         ReaderManifest
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from router.encoder import Encoder, SentenceTransformerEncoder, TunableEncoder, Vectors, bundled_minilm_path
from router.errors import ArtifactError
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
from router.safety.model import CATEGORIES, SafetyScores, checked_text, sigmoid

log = logging.getLogger(__name__)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SHIPPED_READER = ARTIFACTS / "reader-v1"
ENCODER_FILE, HEAD_FILE, MANIFEST = "encoder.safetensors", "head.safetensors", "manifest.json"
SCALE = 10.0  # the unit sentence vector is scaled before the linear head


@dataclass(frozen=True)
class ReaderConfig:
    epochs: int = 2
    batch_size: int = 32
    lr: float = 5e-5  # the transformer's layers
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    max_length: int = 128  # word pieces per training text
    traffic: int = 1500  # router examples sampled as ordinary traffic
    padded_share: float = 1 / 3
    attack_weight: float = 2.0
    val_share: int = VAL_SHARE  # the safety model's validation rows, left out here too
    seed: int = 7


@dataclass(frozen=True)
class ReaderManifest:
    version: str
    base_encoder: str  # the base model whose layers were tuned
    categories: tuple[str, ...]
    temperatures: Mapping[str, float]
    band: float  # the safety model's top score from which the reader is asked
    threshold: float  # a category whose blended score (blend()) is at or over this is flagged
    safety_model: str  # the safety model version the band, weight and threshold were chosen with
    data_hash: str
    seed: int
    created_at: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    # The weight of the safety model's own top score in blend(): 0 reads the reader alone.
    model_weight: float = 0.0

    def to_json(self) -> str:
        raw = asdict(self)
        raw["categories"] = list(self.categories)
        return json.dumps(raw, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReaderManifest:
        raw = json.loads(text)
        raw["categories"] = tuple(raw["categories"])
        return cls(**raw)


class SafetyReader:
    """The tuned encoder and its head. Thread-safe as its encoder is."""

    def __init__(self, manifest: ReaderManifest, encoder: Encoder, w: np.ndarray, b: np.ndarray) -> None:
        if w.shape != (len(manifest.categories), getattr(encoder, "dim", w.shape[1])) or b.shape != w.shape[:1]:
            raise ArtifactError(f"safety reader {manifest.version}: head does not match the manifest")
        if manifest.model_weight < 0:
            raise ArtifactError(f"safety reader {manifest.version}: model_weight must be 0 or more")
        self.manifest = manifest
        self.version = manifest.version
        self.encoder = encoder  # the runtime that runs the tuned layers
        self._w, self._b = w.astype(np.float32), b.astype(np.float32)
        self._temps = np.array([manifest.temperatures[c] for c in manifest.categories], dtype=np.float32)

    def logits(self, texts: Sequence[str]) -> Vectors:
        out: Vectors = ((SCALE * self.encoder.encode(list(texts))) @ self._w.T + self._b).astype(np.float32)
        return out

    def probabilities(self, texts: Sequence[str]) -> Vectors:
        """Calibrated probabilities, shape (len(texts), categories)."""
        return sigmoid(self.logits(texts) / self._temps)

    def read(self, text: str, history: Sequence[str] = ()) -> Vectors:
        """The probabilities for the last user message ``text`` in its conversation, as
        :meth:`SafetyModel.score_turns` scores it: each category the higher reading of
        the message and of the last turns joined (one batch of one or two texts)."""
        texts = [text, checked_text([*history, text])] if history else [text]
        out: Vectors = self.probabilities(texts).max(axis=0)
        return out

    def wanted(self, scores: SafetyScores, threshold: float) -> bool:
        """Whether the safety model's ``scores`` are in the band (unsure, not flagged)."""
        return self.manifest.band <= max(scores.scores.values()) < threshold

    @classmethod
    def load(cls, directory: Path, base: Encoder | None = None) -> SafetyReader:
        """Load a version directory; ``base``: the base encoder, whose runtime then runs
        the tuned layers too (its ``tuned``: torch, or ONNX Runtime with the build `make
        setup` made, router/onnx_export.py). Raises ArtifactError."""
        try:
            manifest = ReaderManifest.from_json((directory / MANIFEST).read_text())
            tensors = load_file(str(directory / ENCODER_FILE))
            head = load_file(str(directory / HEAD_FILE))
            # Named apart from the gate versions that share the base encoder's cache of tuned copies.
            name = f"safety-reader/{manifest.version}"
            if isinstance(base, TunableEncoder):
                encoder: Encoder = base.tuned(tensors, name)
            else:
                encoder = _torch_copy(directory, name, tensors)
        except Exception as exc:  # OSError, JSON, safetensors', ValueError from a misfit
            raise ArtifactError(f"cannot load the safety reader from {directory}: {exc}") from exc
        return cls(manifest, encoder, head["w"], head["b"])


_COPIES: dict[tuple[str, str], Encoder] = {}
_COPIES_LOCK = threading.Lock()


def _torch_copy(directory: Path, name: str, tensors: Mapping[str, np.ndarray]) -> Encoder:
    """A torch copy of the bundled MiniLM with ``tensors``, for a base encoder that cannot
    run tuned layers (a wrapper): made once per reader directory and process, as
    :meth:`SentenceTransformerEncoder.tuned` keeps its copies."""
    key = (str(directory.resolve()), name)
    with _COPIES_LOCK:
        made = _COPIES.get(key)
        if made is None:
            log.warning("safety reader: the base encoder cannot run tuned layers; loading a torch copy once")
            made = _COPIES[key] = SentenceTransformerEncoder(bundled_minilm_path(), name, tuned=tensors)
        return made


def blend(reader: Any, model_top: Any, model_weight: float) -> Any:
    """The reader's probability with the safety model's highest score weighed in: the
    weighted mean of their logits, ``model_weight`` to the model's and 1 to the
    reader's, as a probability (the reader's own at weight 0). A message the model
    already found suspect needs less from the reader. Elementwise on arrays."""
    if model_weight == 0:
        return reader
    r = np.clip(reader, 1e-6, 1 - 1e-6)
    m = np.clip(model_top, 1e-6, 1 - 1e-6)
    return sigmoid((np.log(r / (1 - r)) + model_weight * np.log(m / (1 - m))) / (1 + model_weight))


def second_reading(
    scores: SafetyScores, probabilities: Sequence[float] | Vectors, manifest: ReaderManifest, threshold: float
) -> SafetyScores:
    """``scores`` after the reader's probabilities (one per category, in the manifest's
    order): a category whose blend with the model's top score (:func:`blend`) is at or
    over the reader's threshold is raised to at least the safety model's ``threshold``,
    by where the blend lies between the reader's threshold and 1; nothing is lowered."""
    out = dict(scores.scores)
    raised = False
    top = max(scores.scores.values())
    for category, read in zip(manifest.categories, probabilities, strict=True):
        p = float(blend(read, top, manifest.model_weight))
        if p >= manifest.threshold:
            lifted = threshold + (1.0 - threshold) * (p - manifest.threshold) / max(1e-6, 1.0 - manifest.threshold)
            if lifted > out[category]:
                out[category], raised = float(min(lifted, 0.999)), True
    return SafetyScores(out, (*scores.rules, "second_reading") if raised else scores.rules)


# --- training ---------------------------------------------------------------------------


def training_rows(split: SafetySplit, config: ReaderConfig) -> list[SafetyExample]:
    from router.safety.train import padded

    rng = random.Random(config.seed)
    rows = [r for r in split.train if not is_validation(r.text, config.val_share)]
    attacks = [r for r in rows if r.label != BENIGN]
    hard = [r for r in rows if r.label == BENIGN and r.cell != "router"]
    traffic = rng.sample([r for r in rows if r.cell == "router"], config.traffic)
    extra = padded(rng.sample(attacks, int(len(attacks) * config.padded_share)), hard + traffic, config.seed)
    return attacks + hard + traffic + extra


def _batches(lengths: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of rows of like length (less padding, the same rows each epoch)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    out = []
    pool = size * 50
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        out += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(out)
    return out


def fit(rows: Sequence[SafetyExample], config: ReaderConfig) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Tune the bundled MiniLM's layers and a head on ``rows``: (tensors, w, b)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from torch import nn

    from router.finetune import FROZEN_PREFIX, mean_pool, tuned_tensors

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    transformer = SentenceTransformer(str(bundled_minilm_path()), device="cpu")[0]
    model: Any = transformer.auto_model
    tokenizer: Any = transformer.tokenizer
    model.float().train()
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith(FROZEN_PREFIX)
    head = nn.Linear(model.config.hidden_size, len(CATEGORIES))
    opt = torch.optim.AdamW(
        [
            {
                "params": [p for p in model.parameters() if p.requires_grad],
                "lr": config.lr,
                "weight_decay": config.weight_decay,
            },
            {"params": head.parameters(), "lr": config.head_lr, "weight_decay": 0.0},
        ]
    )
    lengths = [len(tokenizer(r.text, truncation=True, max_length=config.max_length)["input_ids"]) for r in rows]
    steps = config.epochs * math.ceil(len(rows) / config.batch_size)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup))
    )
    y = torch.from_numpy(targets(rows))
    weights = torch.where(y.sum(1) > 0, config.attack_weight, 1.0)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    step, started = 0, time.perf_counter()
    for _ in range(config.epochs):
        for picked in _batches(lengths, config.batch_size, rng):
            features = tokenizer(
                [rows[i].text for i in picked], padding=True, truncation=True, max_length=config.max_length,
                return_tensors="pt",
            )  # fmt: skip
            vectors = mean_pool(model(**features).last_hidden_state, features["attention_mask"])
            logits = head(vectors * SCALE)
            loss = (loss_fn(logits, y[picked]).mean(1) * weights[picked]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 20 == 0:
                log.info("step %d/%d loss %.4f (%.0f s)", step, steps, loss.item(), time.perf_counter() - started)
    model.eval()
    return (
        tuned_tensors(model),
        head.weight.detach().numpy().copy(),
        head.bias.detach().numpy().copy(),
    )


def save(
    directory: Path, manifest: ReaderManifest, tensors: Mapping[str, np.ndarray], w: np.ndarray, b: np.ndarray
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: np.asarray(v, np.float16) for k, v in tensors.items()}, str(directory / ENCODER_FILE))
    save_file({"w": w.astype(np.float32), "b": b.astype(np.float32)}, str(directory / HEAD_FILE))
    (directory / MANIFEST).write_text(manifest.to_json() + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="a new version directory's name (reader-vN)")
    parser.add_argument("--out", type=Path, default=ARTIFACTS)
    parser.add_argument("--epochs", type=int, default=ReaderConfig.epochs)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--pending", action="store_true", help="train on the training side of the pending/ rows too (data/PLAN.md)"
    )
    args = parser.parse_args(argv)
    if (args.out / args.version).exists():
        parser.error(f"{args.out / args.version} exists: name a new version (the shipped reader stays as it is)")
    import torch

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    config = ReaderConfig(epochs=args.epochs)
    split = load_split(args.data, pending=args.pending)
    rows = training_rows(split, config)
    log.info("training on %d rows", len(rows))
    started = time.perf_counter()
    tensors, w, b = fit(rows, config)
    manifest = ReaderManifest(
        version=args.version,
        base_encoder="all-MiniLM-L6-v2",
        categories=CATEGORIES,
        temperatures={c: 1.0 for c in CATEGORIES},  # set with the band by bench/safety_reader.py
        band=1.0,
        threshold=1.0,
        safety_model="",
        data_hash=hashlib.sha256("\n".join(sorted(f"{r.label}\t{r.text}" for r in rows)).encode()).hexdigest(),
        seed=config.seed,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics={
            "train_rows": len(rows),
            "with_pending_rows": args.pending,
            "train_s": round(time.perf_counter() - started, 1),
        },
    )
    save(args.out / args.version, manifest, tensors, w, b)
    print(json.dumps(asdict(manifest)["metrics"]))


if __name__ == "__main__":
    main()
