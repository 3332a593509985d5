"""Versioned index directories with a manifest, and the atomic CURRENT pointer.

Layout under the store root, per domain::

    <root>/<domain>/CURRENT                  one line: the live version's name
    <root>/<domain>/versions/<version>/      manifest.json + the index files
    <root>/<domain>/.lock                    serialises publishers (flock)

Publishing writes a complete version into a temporary directory, fsyncs it, renames
it into ``versions/`` and only then replaces CURRENT with ``os.replace`` (atomic on
POSIX). A reader therefore sees the old version or the new one, never a mixture, and
a crash leaves at worst an unreferenced temporary directory (removed on the next
publish). Loading checks every file against the manifest's SHA-256 and the embedder
against the caller's, so corruption and model changes surface as
:class:`~retrieval.errors.IndexUnavailable` for the owner to rebuild.

With ``pointers`` given (scale-out: a SQL table every replica polls) the live version
is read from there instead of CURRENT; :meth:`IndexStore.publish` sets it after the
version and CURRENT are on disk, with the SHA-256 of the version's manifest, and
:meth:`IndexStore.load` checks that checksum before reading anything else.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from retrieval.errors import IndexCorrupt, IndexMismatch, IndexMissing
from retrieval.index import DomainIndex, IndexConfig, IndexKind

FORMAT = 1
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
_VERSION = re.compile(r"^v(\d{6,})-[0-9TZ]+$")
_DOMAIN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class VersionPointers(Protocol):
    """Per-domain pointers to the live version, kept outside the files (e.g. in SQL)."""

    def get(self, name: str) -> tuple[str, str | None] | None:
        """(version, SHA-256 of its manifest or None) that ``name`` points at, or None."""
        ...

    def set(self, name: str, version: str | None, path: Path | None, checksum: str | None) -> None:
        """Point ``name`` at ``version``; called after the version is complete on disk."""
        ...


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a version directory holds and how it was made.

    ``source_fingerprint`` identifies the SQL state the index was built from (see the
    backend's indexer); ``files`` maps each file to its SHA-256.
    """

    format: int
    domain: str
    version: str
    created_at: float
    embedder: str
    dim: int
    kind: IndexKind
    count: int
    source_fingerprint: str
    build_seconds: float
    files: Mapping[str, str]
    params: Mapping[str, object] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError(f"unknown manifest format {raw.get('format')!r}")
        return cls(**raw)


@dataclass(frozen=True, slots=True)
class LoadedIndex:
    manifest: Manifest
    index: DomainIndex


class IndexStore:
    """Versions of per-domain indexes under one root directory."""

    def __init__(self, root: Path, *, keep_versions: int = 3, pointers: VersionPointers | None = None) -> None:
        if keep_versions < 1:
            raise ValueError("keep_versions must be >= 1")
        self.root = root
        self.keep_versions = keep_versions
        self.pointers = pointers

    def _domain_dir(self, domain: str) -> Path:
        if not _DOMAIN.match(domain):
            raise ValueError(f"invalid index domain name {domain!r}")
        return self.root / domain

    @contextlib.contextmanager
    def lock(self, domain: str) -> Iterator[None]:
        """An exclusive, cross-process lock on ``domain`` (blocking)."""
        directory = self._domain_dir(domain)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def current_version(self, domain: str) -> str | None:
        """The version the pointer (or CURRENT) names, or None when there is none yet."""
        if self.pointers is not None:
            self._domain_dir(domain)  # validates the name
            published = self.pointers.get(domain)
            return published[0] if published else None
        try:
            text = (self._domain_dir(domain) / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def versions(self, domain: str) -> list[str]:
        """Complete versions on disk, oldest first."""
        directory = self._domain_dir(domain) / "versions"
        if not directory.is_dir():
            return []
        names = [p.name for p in directory.iterdir() if _VERSION.match(p.name)]
        return sorted(names, key=_serial)

    def publish(
        self,
        domain: str,
        index: DomainIndex,
        *,
        embedder: str,
        source_fingerprint: str,
        build_seconds: float = 0.0,
        params: Mapping[str, object] | None = None,
    ) -> Manifest:
        """Write ``index`` as a new version and make it current. Returns its manifest.

        Callers that build from a shared source of truth hold :meth:`lock` across
        reading that source and publishing, so versions go live in source order.
        """
        domain_dir = self._domain_dir(domain)
        versions_dir = domain_dir / "versions"
        versions_dir.mkdir(parents=True, exist_ok=True)
        self._sweep_temporaries(versions_dir)
        existing = self.versions(domain)
        serial = _serial(existing[-1]) + 1 if existing else 1
        version = f"v{serial:06d}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        staging = versions_dir / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            files = index.save(staging)
            manifest = Manifest(
                format=FORMAT,
                domain=domain,
                version=version,
                created_at=time.time(),
                embedder=embedder,
                dim=index.dim,
                kind=index.kind,
                count=len(index),
                source_fingerprint=source_fingerprint,
                build_seconds=round(build_seconds, 3),
                files={name: _sha256(staging / name) for name in files},
                params=dict(params or {}),
            )
            (staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
            _fsync_tree(staging)
            os.rename(staging, versions_dir / version)
            _fsync_dir(versions_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        pointer = domain_dir / f".{CURRENT}.{uuid.uuid4().hex}"
        with open(pointer, "w", encoding="utf-8") as handle:
            handle.write(version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(pointer, domain_dir / CURRENT)
        _fsync_dir(domain_dir)
        if self.pointers is not None:
            final = versions_dir / version
            self.pointers.set(domain, version, final, _sha256(final / MANIFEST))
        self._collect(domain, keep=version)
        return manifest

    def load(
        self,
        domain: str,
        *,
        embedder: str,
        dim: int,
        config: IndexConfig | None = None,
        version: str | None = None,
    ) -> LoadedIndex:
        """Load ``version`` (default: CURRENT) after checking it. Raises IndexUnavailable.

        IndexMissing: no pointer or no such version. IndexCorrupt: unreadable manifest,
        a missing file or a checksum mismatch. IndexMismatch: built with another
        embedder or dimension than ``embedder`` / ``dim``.
        """
        version = version or self.current_version(domain)
        if version is None:
            raise IndexMissing(f"no index has been published for domain {domain!r}")
        directory = self._domain_dir(domain) / "versions" / version
        if not directory.is_dir():
            raise IndexMissing(f"index version {version!r} of {domain!r} is not on disk")
        self._verify_published(domain, version, directory)
        try:
            manifest = Manifest.from_json((directory / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError) as exc:
            raise IndexCorrupt(f"{directory / MANIFEST}: {exc}") from exc
        if manifest.embedder != embedder or manifest.dim != dim:
            raise IndexMismatch(
                f"index {domain}/{version} was built with {manifest.embedder} ({manifest.dim}-d); "
                f"the current embedder is {embedder} ({dim}-d)"
            )
        for name, digest in manifest.files.items():
            path = directory / name
            try:
                actual = _sha256(path)
            except OSError as exc:
                raise IndexCorrupt(f"{path}: {exc.strerror or exc}") from exc
            if actual != digest:
                raise IndexCorrupt(f"{path}: checksum mismatch")
        index = DomainIndex.load(directory, kind=manifest.kind, dim=manifest.dim, config=config or IndexConfig())
        if len(index) != manifest.count:
            raise IndexCorrupt(f"{directory}: {len(index)} rows, manifest says {manifest.count}")
        return LoadedIndex(manifest, index)

    def _verify_published(self, domain: str, version: str, directory: Path) -> None:
        """IndexCorrupt when the pointer names ``version`` with another manifest checksum."""
        published = self.pointers.get(domain) if self.pointers is not None else None
        if published is None or published[0] != version or published[1] is None:
            return
        try:
            actual = _sha256(directory / MANIFEST)
        except OSError as exc:
            raise IndexCorrupt(f"{directory / MANIFEST}: {exc.strerror or exc}") from exc
        if actual != published[1]:
            raise IndexCorrupt(f"{directory / MANIFEST}: does not match the published checksum")

    def _collect(self, domain: str, *, keep: str) -> None:
        """Remove versions beyond the newest ``keep_versions`` (never ``keep``)."""
        old = self.versions(domain)[: -self.keep_versions]
        for name in old:
            if name != keep:
                shutil.rmtree(self._domain_dir(domain) / "versions" / name, ignore_errors=True)

    @staticmethod
    def _sweep_temporaries(versions_dir: Path) -> None:
        for path in versions_dir.glob(".tmp-*"):
            # Leftovers of crashed publishers; a young one may still be being written.
            if time.time() - path.stat().st_mtime > 3600:
                shutil.rmtree(path, ignore_errors=True)


def _serial(version: str) -> int:
    match = _VERSION.match(version)
    return int(match.group(1)) if match else 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for sub in [directory, *(p for p in directory.rglob("*") if p.is_dir())]:
        _fsync_dir(sub)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
