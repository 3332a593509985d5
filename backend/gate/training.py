"""Retraining the gate from the seed set plus what SQL holds (feedback, relabels).

One service method, called inline by the CLI and the admin API in the embedded
default (and by a worker task when one runs). The embedding cache under the router
directory makes a retrain after a few new examples re-encode only those.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import numpy as np

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.session import Database
from backend.gate.feedback import FeedbackService
from experts.registry import ExpertRegistry
from router.artifacts import ArtifactStore
from router.dataset import SEED_FILES, Example, load_examples, load_jsonl
from router.encoder import Encoder
from router.finetune import FinetuneConfig
from router.gate import GateManifest
from router.train import TrainConfig, train_gate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    manifest: GateManifest
    n_seed: int
    n_stored: int
    n_files: int
    promoted: bool


class EmbeddingCache:
    """text -> vector, persisted as one .npz keyed by SHA-1 of the text."""

    def __init__(self, path: Path, encoder_name: str) -> None:
        self._path = path
        self._encoder = encoder_name
        self.vectors: dict[str, np.ndarray] = {}

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def load(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        if self._path.is_file():
            with np.load(self._path, allow_pickle=False) as data:
                if str(data["__encoder__"]) == self._encoder:
                    stored = {k: data[k] for k in data.files if k != "__encoder__"}
                    for text in texts:
                        vec = stored.get(self._key(text))
                        if vec is not None:
                            self.vectors[text] = vec
        return self.vectors

    def save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp.npz")
        arrays = {self._key(t): v for t, v in self.vectors.items()}
        np.savez(tmp, __encoder__=np.array(self._encoder), **arrays)  # type: ignore[arg-type]
        tmp.replace(self._path)


def train_config(finetune: bool, architecture: str = "knn", seed: int = 7) -> TrainConfig:
    """The training recipe of a retrain: the shipped gate's (encoder tuned, nearest
    examples per expert; docs/router.md says why), or the head alone over the base
    encoder when ``finetune`` is false. Raises ValueError for an unknown architecture.

    A tenth of the examples is held out for the temperature and the thresholds: with
    ten thousand examples that is plenty, and the rest all serve as neighbours."""
    if architecture not in ("mlp", "linear", "knn"):
        raise ValueError(f"unknown architecture {architecture!r}")
    return TrainConfig(
        architecture=architecture,
        seed=seed,
        val_fraction=0.1,
        finetune=FinetuneConfig(seed=seed) if finetune else None,
    )


TRAINED = "router.trained"


async def train_from_all(
    db: Database,
    audit: AuditTrail,
    actor: Actor,
    registry: ExpertRegistry,
    encoder: Encoder,
    store: ArtifactStore,
    *,
    extra_files: Sequence[Path] = (),
    use_seed: bool = True,
    promote: bool = False,
    config: TrainConfig | None = None,
    version: str | None = None,
) -> TrainOutcome:
    """Train a new gate version on seed + SQL + files, save it, optionally promote it,
    and audit it (``router.trained``, by ``actor``): the API, the CLI and a worker all
    train through here, so all three write the same event.

    Raises ValueError when an expert of the registry has no examples at all (give it
    a few in experts.yaml ``examples`` or via relabels).
    """
    seed = [e for e in load_examples(SEED_FILES) if e.domain in registry] if use_seed else []
    async with db.session() as session:
        stored = await FeedbackService(session, registry, audit).examples()
    files = [e for path in extra_files for e in load_jsonl(path) if e.domain in registry]
    # Experts added after the seed set was written learn from their experts.yaml examples.
    described = [Example(t, s.name) for s in registry for t in (s.description, *s.examples)]
    examples = [*seed, *stored, *files, *described]
    config = config or TrainConfig()
    cache = EmbeddingCache(store.root / "embedding-cache.npz", encoder.name)
    # A tuned encoder makes new vectors every time: the cache holds the base model's only.
    vectors = cache.load([e.text for e in examples]) if config.finetune is None else None
    # Minutes of CPU with a tuned encoder: off the event loop of an API process.
    result = await anyio.to_thread.run_sync(
        functools.partial(
            train_gate,
            examples,
            encoder,
            registry.names,
            config,
            version=version,
            parent=store.active(),
            vectors_by_text=vectors,
        )
    )
    if vectors is not None:
        cache.save()
    store.save(result.scorer)
    if promote:
        store.promote(result.scorer.version)
    log.info("trained gate %s on %d examples", result.scorer.version, len(examples))
    async with db.transaction() as session:
        await audit.append(
            session,
            AuditEntry(
                action=TRAINED, outcome=Outcome.OK, actor=actor, status=200,
                payload={"version": result.scorer.version, "promoted": promote},
            ),
        )  # fmt: skip
    return TrainOutcome(result.scorer.manifest, len(seed), len(stored), len(files), promote)
