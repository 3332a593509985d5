"""A promoted version reaches a running router without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.gate.reload import GateReloader
from backend.gate.wiring import expert_texts, make_policy
from experts.registry import ExpertRegistry
from router.artifacts import BUNDLED, ArtifactStore, bundled_default
from router.dataset import SEED_DIR, load_jsonl, stratified_split
from router.encoder import Encoder
from router.loading import load_active
from router.service import Router
from router.train import TrainConfig, train_gate

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def registry() -> ExpertRegistry:
    return ExpertRegistry.from_yaml(ROOT / "experts" / "experts.yaml")


def test_reloader_swaps_in_a_promoted_version_and_survives_a_broken_one(
    encoder: Encoder, registry: ExpertRegistry, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path / "router", bundled=BUNDLED)
    scorer, config = load_active(store, encoder, expert_texts(registry))
    router = Router(encoder, scorer, make_policy(registry, config))
    reloader = GateReloader(router, store, registry, interval_s=60)
    assert router.version == bundled_default()
    assert reloader.check() is False

    _, subset = stratified_split(load_jsonl(SEED_DIR / "train.jsonl"), 0.1, seed=3)
    new = train_gate(
        subset, encoder, registry.names, TrainConfig(epochs=60, lexical_buckets=1 << 12), version="gate-next"
    ).scorer
    store.save(new)
    store.promote("gate-next")
    assert reloader.check() is True
    assert router.version == "gate-next"
    assert router.route_many([]) == []

    # A promoted version whose files got corrupted afterwards: the old gate keeps serving.
    broken = train_gate(
        subset, encoder, registry.names, TrainConfig(epochs=30, lexical_buckets=0), version="gate-broken"
    ).scorer
    store.save(broken)
    store.promote("gate-broken")
    (tmp_path / "router" / "versions" / "gate-broken" / "gate.safetensors").write_bytes(b"not a tensor file")
    assert reloader.check() is False
    assert router.version == "gate-next"
