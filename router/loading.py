"""Choosing what serves: the active trained gate (plus prototypes for experts it does
not know yet), or the prototype gate when no trained version exists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from router.artifacts import ArtifactStore
from router.composite import GateWithPrototypes
from router.encoder import Encoder
from router.errors import ArtifactError
from router.gate import TrainedScorer
from router.policy import PolicyConfig
from router.prototype import PrototypeScorer
from router.service import Scorer


def scorer_for(gate: TrainedScorer, encoder: Encoder, expert_texts: Mapping[str, Sequence[str]]) -> Scorer:
    """``gate``, extended with prototypes for experts in ``expert_texts`` it lacks."""
    if gate.manifest.encoder != encoder.name or gate.manifest.dim != encoder.dim:
        raise ArtifactError(
            f"gate {gate.version} was trained on {gate.manifest.encoder} ({gate.manifest.dim}-d), "
            f"not {encoder.name} ({encoder.dim}-d)"
        )
    new = {name: texts for name, texts in expert_texts.items() if name not in gate.experts}
    return GateWithPrototypes(gate, PrototypeScorer(encoder, new)) if new else gate


def load_active(
    store: ArtifactStore, encoder: Encoder, expert_texts: Mapping[str, Sequence[str]]
) -> tuple[Scorer, PolicyConfig]:
    """The scorer and tuned policy to serve. Raises ArtifactError for a broken active version."""
    version = store.active()
    if version is None:
        return PrototypeScorer(encoder, expert_texts), PolicyConfig()
    gate = store.load(version)
    return scorer_for(gate, encoder, expert_texts), gate.manifest.policy
