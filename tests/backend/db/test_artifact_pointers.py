"""Version pointers in SQL: stores publish there, readers follow it and check checksums.

A migrated SQLite file stands in for the database here (the same SQLAlchemy code runs
on PostgreSQL in tests/backend/worker/test_scaleout.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from backend.db.pointers import INDEX, ROUTER, SqlPointers
from backend.db.session import migrate
from backend.gate.reload import GateReloader
from backend.gate.wiring import expert_texts, make_policy
from experts.registry import ExpertRegistry
from retrieval.errors import IndexCorrupt
from retrieval.index import DomainIndex
from retrieval.store import IndexStore
from retrieval.types import IndexEntry
from router.artifacts import BUNDLED, ArtifactStore, bundled_default, tree_checksum
from router.encoder import Encoder
from router.errors import ArtifactNotReady
from router.loading import load_active
from router.service import Router

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'eg.db'}"
    migrate(url)
    return url


def _rows(db_url: str) -> list[tuple[str, str, str | None, str | None, str]]:
    engine = sa.create_engine(db_url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT kind, name, version, checksum, published_by FROM artifact_pointers ORDER BY kind, name")
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _copy_bundled(root: Path, version: str) -> Path:
    """A second gate version on disk: the small bundled gate-seed-v1 under another name."""
    source = BUNDLED / "gate-seed-v1"
    target = root / "versions" / version
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = version
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_promotion_lands_in_sql_and_every_store_follows_it(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "router"
    publisher = ArtifactStore(root, pointers=SqlPointers(db_url, ROUTER, published_by="cli@test"))
    replica = ArtifactStore(root, pointers=SqlPointers(db_url, ROUTER))
    assert replica.active() == bundled_default()  # nothing published: the bundled default
    path = _copy_bundled(root, "gate-copy")

    publisher.promote("gate-copy")
    assert replica.active() == "gate-copy"
    assert not (root / "ACTIVE").exists()  # the SQL row is the pointer, not a file
    assert _rows(db_url) == [("router", "active", "gate-copy", tree_checksum(path), "cli@test")]
    assert replica.load("gate-copy").version == "gate-copy"

    publisher.set_shadow("gate-seed-v1")
    assert replica.shadow() == "gate-seed-v1"
    publisher.set_shadow(None)
    assert replica.shadow() is None
    assert publisher.rollback() == bundled_default()
    assert replica.active() == bundled_default()


def test_an_active_file_from_before_the_sql_pointer_still_counts(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "router"
    _copy_bundled(root, "gate-old")
    ArtifactStore(root).promote("gate-old")  # a deployment that used file pointers
    upgraded = ArtifactStore(root, pointers=SqlPointers(db_url, ROUTER))
    assert upgraded.active() == "gate-old"
    upgraded.promote("gate-seed-v1")
    assert upgraded.active() == "gate-seed-v1"  # from now on SQL decides


def test_a_version_whose_files_differ_from_the_published_checksum_is_not_loaded(
    db_url: str, tmp_path: Path, encoder: Encoder
) -> None:
    root = tmp_path / "router"
    store = ArtifactStore(root, pointers=SqlPointers(db_url, ROUTER))
    registry = ExpertRegistry.from_yaml(ROOT / "experts" / "experts.yaml")
    scorer, config = load_active(store, encoder, expert_texts(registry))
    router = Router(encoder, scorer, make_policy(registry, config))
    reloader = GateReloader(router, store, registry, interval_s=60)

    path = _copy_bundled(root, "gate-copy")
    store.promote("gate-copy")
    weights = path / "gate.safetensors"
    complete = weights.read_bytes()
    weights.write_bytes(complete[: len(complete) // 2])  # as if still being copied
    with pytest.raises(ArtifactNotReady):
        store.load("gate-copy")
    assert reloader.check() is False and router.version == bundled_default()

    weights.write_bytes(complete)  # the copy finished: the next poll swaps
    assert reloader.check() is True and router.version == "gate-copy"


def _index(n: int) -> DomainIndex:
    vectors = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return DomainIndex.build([IndexEntry(i + 1, f"text {i}", frozenset()) for i in range(n)], vectors)


def test_index_versions_are_published_to_sql_and_checked_on_load(db_url: str, tmp_path: Path) -> None:
    writer = IndexStore(tmp_path / "indexes", pointers=SqlPointers(db_url, INDEX, published_by="worker@test"))
    reader = IndexStore(tmp_path / "indexes", pointers=SqlPointers(db_url, INDEX))
    assert reader.current_version("legal") is None

    first = writer.publish("legal", _index(5), embedder="e", source_fingerprint="one").version
    assert reader.current_version("legal") == first
    [(kind, name, version, checksum, by)] = _rows(db_url)
    assert (kind, name, version, by) == ("index", "legal", first, "worker@test") and checksum

    # A CURRENT file naming something else does not matter: SQL is the source of truth.
    (tmp_path / "indexes" / "legal" / "CURRENT").write_text("v999999-20260101T000000Z\n")
    assert reader.load("legal", embedder="e", dim=8).manifest.version == first

    manifest = tmp_path / "indexes" / "legal" / "versions" / first / "manifest.json"
    manifest.write_text(manifest.read_text() + " ")
    with pytest.raises(IndexCorrupt, match="published checksum"):
        reader.load("legal", embedder="e", dim=8)
