"""Index versions: manifest, atomic CURRENT swap, corruption/mismatch detection, cleanup."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import IndexCorrupt, IndexMismatch, IndexMissing
from retrieval.index import DomainIndex
from retrieval.store import IndexStore
from retrieval.types import IndexEntry


def make_index(n: int, seed: int = 0) -> DomainIndex:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    entries = [IndexEntry(i + 1, f"text number {i}", frozenset()) for i in range(n)]
    return DomainIndex.build(entries, vectors)


def publish(store: IndexStore, n: int, fingerprint: str = "fp") -> str:
    return store.publish("legal", make_index(n), embedder="test-embedder", source_fingerprint=fingerprint).version


def test_publish_writes_manifest_and_swaps_current(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    assert store.current_version("legal") is None
    with pytest.raises(IndexMissing):
        store.load("legal", embedder="test-embedder", dim=16)
    first = publish(store, 10, "one")
    second = publish(store, 12, "two")
    assert first.startswith("v000001-") and second.startswith("v000002-")
    assert store.current_version("legal") == second
    assert (tmp_path / "legal" / "CURRENT").read_text().strip() == second
    loaded = store.load("legal", embedder="test-embedder", dim=16)
    assert loaded.manifest.version == second
    assert loaded.manifest.count == 12 == len(loaded.index)
    assert loaded.manifest.source_fingerprint == "two"
    manifest = json.loads((tmp_path / "legal" / "versions" / second / "manifest.json").read_text())
    assert set(manifest["files"]) >= {"dense.faiss", "rows.npy", "acl_codes.npy", "acl_sets.json"}
    assert loaded.index.chunk_ids.tolist() == list(range(1, 13))
    # An older version stays loadable by name until it is collected.
    assert len(store.load("legal", embedder="test-embedder", dim=16, version=first).index) == 10
    # No temporary files are left behind.
    assert not [p for p in (tmp_path / "legal").rglob(".*") if p.name != ".lock"]


def test_old_versions_are_collected(tmp_path: Path) -> None:
    store = IndexStore(tmp_path, keep_versions=2)
    versions = [publish(store, 5) for _ in range(4)]
    assert store.versions("legal") == versions[-2:]
    assert store.current_version("legal") == versions[-1]


def test_corruption_is_detected(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    version = publish(store, 20)
    dense = tmp_path / "legal" / "versions" / version / "dense.faiss"
    data = bytearray(dense.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dense.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="checksum"):
        store.load("legal", embedder="test-embedder", dim=16)
    dense.unlink()
    with pytest.raises(IndexCorrupt):
        store.load("legal", embedder="test-embedder", dim=16)
    (tmp_path / "legal" / "versions" / version / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt):
        store.load("legal", embedder="test-embedder", dim=16)
    (tmp_path / "legal" / "CURRENT").write_text("v999999-20260101T000000Z\n")
    with pytest.raises(IndexMissing):
        store.load("legal", embedder="test-embedder", dim=16)


def test_other_embedder_is_a_mismatch(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    publish(store, 5)
    with pytest.raises(IndexMismatch):
        store.load("legal", embedder="another-model", dim=16)
    with pytest.raises(IndexMismatch):
        store.load("legal", embedder="test-embedder", dim=384)


def test_readers_never_see_a_half_published_version(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    publish(store, 50)
    errors: list[Exception] = []
    counts: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                counts.add(len(store.load("legal", embedder="test-embedder", dim=16).index))
            except IndexMissing:
                pass  # a reader raced the collection of the version it had just resolved
            except Exception as exc:
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in (60, 70, 80, 90):
            publish(store, n)
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert counts <= {50, 60, 70, 80, 90}


def test_invalid_domain_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        IndexStore(tmp_path).current_version("../etc")
