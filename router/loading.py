"""Choosing what serves: the active trained gate (plus prototypes for experts it does
not know yet), or the prototype gate when no trained version exists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from router.artifacts import ArtifactStore
from router.composite import GateWithPrototypes
from router.encoder import Encoder, TunableEncoder
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
    if gate.manifest.encoder_tuning is not None:
        encoder = tuned_encoder(gate, encoder)
        gate = gate.with_encoder(encoder)
    new = {name: texts for name, texts in expert_texts.items() if name not in gate.experts}
    return GateWithPrototypes(gate, PrototypeScorer(encoder, new)) if new else gate


def tuned_encoder(gate: TrainedScorer, base: Encoder) -> Encoder:
    """The encoder a gate with ``encoder_tuning`` scores: ``base`` with the gate's tuned
    layers (a second model in memory). Raises ArtifactError when ``base`` cannot be tuned
    or the layers do not fit it."""
    name = gate.manifest.tuned_encoder_name
    if not isinstance(base, TunableEncoder) or name is None:
        raise ArtifactError(f"gate {gate.version} needs its tuned encoder, and {base.name} cannot be tuned")
    try:
        return base.tuned(gate.encoder_tensors, name)
    except ValueError as exc:
        raise ArtifactError(f"gate {gate.version}: {exc}") from exc


def load_active(
    store: ArtifactStore, encoder: Encoder, expert_texts: Mapping[str, Sequence[str]]
) -> tuple[Scorer, PolicyConfig]:
    """The scorer and tuned policy to serve. Raises ArtifactError for a broken active version."""
    version = store.active()
    if version is None:
        return PrototypeScorer(encoder, expert_texts), PolicyConfig()
    gate = store.load(version)
    return scorer_for(gate, encoder, expert_texts), gate.manifest.policy
