"""Versioned gate artifacts on disk, with an atomically swapped ACTIVE pointer.

Layout under ``root`` (shared storage in scale-out; ./data/router by default)::

    versions/<version>/{gate.safetensors, manifest.json}
    ACTIVE        one line: the active version (replaced atomically with os.replace)
    SHADOW        one line: the version running in shadow ("" or absent: none)
    HISTORY       one line per promotion, oldest first (for rollback)

With ``pointers`` given (scale-out: a SQL table every replica polls), ACTIVE and SHADOW
live there instead of in files, together with a checksum of the version's files;
:meth:`ArtifactStore.load` refuses a published version whose files do not match it
(:class:`~router.errors.ArtifactNotReady`), so a reader never loads a half-copied
version from shared storage. Versions are always complete on disk before a pointer
names them. HISTORY stays a file on the shared storage: only publishers read it.

The package ships a trained default gate under router/artifacts/; it is active until
a version is promoted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from router.errors import ArtifactError, ArtifactNotReady
from router.gate import MANIFEST, GateManifest, TrainedScorer

BUNDLED = Path(__file__).resolve().parent / "artifacts"
ACTIVE = "active"
SHADOW = "shadow"


class VersionPointers(Protocol):
    """Named pointers to published versions, kept outside the files (e.g. in SQL)."""

    def get(self, name: str) -> tuple[str, str | None] | None:
        """(version, checksum of its files or None) that ``name`` points at, or None."""
        ...

    def set(self, name: str, version: str | None, path: Path | None, checksum: str | None) -> None:
        """Point ``name`` at ``version`` (None: at nothing); called after the files are complete."""
        ...


def tree_checksum(directory: Path) -> str:
    """SHA-256 over every file under ``directory``: relative name and content, in name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def bundled_default(bundled: Path = BUNDLED) -> str | None:
    """The newest gate version shipped in ``bundled`` (by creation time): the one that
    serves until a version is promoted."""
    found = []
    for child in sorted(bundled.iterdir()) if bundled.is_dir() else ():
        try:
            found.append(GateManifest.from_json((child / MANIFEST).read_text()))
        except (OSError, ValueError, KeyError, TypeError):  # not a version directory
            continue
    return max(found, key=lambda m: (m.created_at, m.version)).version if found else None


class ArtifactStore:
    def __init__(self, root: Path, bundled: Path = BUNDLED, pointers: VersionPointers | None = None) -> None:
        self.root = root
        self.bundled = bundled
        self.pointers = pointers
        self._versions = root / "versions"

    def _dirs(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for base in (self.bundled, self._versions):
            if base.is_dir():
                for child in sorted(base.iterdir()):
                    if (child / MANIFEST).is_file():
                        found[child.name] = child
        return found

    def manifests(self) -> list[GateManifest]:
        """Every loadable version's manifest, oldest first."""
        out = []
        for path in self._dirs().values():
            try:
                out.append(GateManifest.from_json((path / MANIFEST).read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(out, key=lambda m: (m.created_at, m.version))

    def path(self, version: str) -> Path:
        try:
            return self._dirs()[version]
        except KeyError:
            raise ArtifactError(f"no gate version {version!r}") from None

    def load(self, version: str) -> TrainedScorer:
        """Load ``version``. Raises ArtifactError; ArtifactNotReady when its files differ
        from what a pointer published (still being copied to this replica's storage)."""
        path = self.path(version)
        self._verify(version, path)
        return TrainedScorer.load(path)

    def _verify(self, version: str, path: Path) -> None:
        if self.pointers is None:
            return
        for name in (ACTIVE, SHADOW):
            published = self.pointers.get(name)
            if published is not None and published[0] == version and published[1] is not None:
                if tree_checksum(path) != published[1]:
                    raise ArtifactNotReady(f"gate version {version!r} at {path} does not match its published checksum")
                return

    def save(self, scorer: TrainedScorer) -> Path:
        """Write a new version; it appears complete or not at all (rename of a temp dir)."""
        self._versions.mkdir(parents=True, exist_ok=True)
        final = self._versions / scorer.version
        if final.exists():
            raise ArtifactError(f"gate version {scorer.version!r} already exists")
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self._versions))
        try:
            scorer.save(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def default_version(self) -> str | None:
        return bundled_default(self.bundled)

    def active(self) -> str | None:
        """The promoted version, else the bundled default, else None.

        With ``pointers`` but nothing promoted there yet, an ACTIVE file (left by a
        deployment that used file pointers) still counts: upgrading keeps its gate.
        """
        return self._read_pointer(ACTIVE) or self._read_file(ACTIVE) or self.default_version()

    def _read_pointer(self, name: str) -> str | None:
        if self.pointers is not None:
            published = self.pointers.get(name)
            return published[0] if published else None
        return self._read_file(name)

    def _read_file(self, name: str) -> str | None:
        pointer = self.root / name.upper()
        text = pointer.read_text().strip() if pointer.is_file() else ""
        return text or None

    def _write_pointer(self, name: str, version: str | None) -> None:
        """Point ``name`` at ``version`` (a complete version directory, or None)."""
        if self.pointers is not None:
            path = self.path(version) if version is not None else None
            self.pointers.set(name, version, path, tree_checksum(path) if path is not None else None)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=self.root)
        with os.fdopen(fd, "w") as fh:
            fh.write((version or "") + "\n")
        os.replace(tmp, self.root / name.upper())

    def history(self) -> list[str]:
        path = self.root / "HISTORY"
        return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []

    def promote(self, version: str) -> None:
        """Make ``version`` active after checking it loads. Raises ArtifactError."""
        self.load(version)
        current = self.active()
        history = self.history()
        if not history and current is not None and current != version:
            history.append(current)
        history.append(version)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "HISTORY").write_text("\n".join(history) + "\n")
        self._write_pointer(ACTIVE, version)

    def shadow(self) -> str | None:
        """The version running in shadow beside the active one, if any."""
        return self._read_pointer(SHADOW)

    def set_shadow(self, version: str | None) -> None:
        """Run ``version`` in shadow (None: stop). Raises ArtifactError if it does not load."""
        if version is not None:
            self.load(version)
        self._write_pointer(SHADOW, version)

    def rollback(self) -> str:
        """Re-activate the version promoted before the current one. Raises ArtifactError."""
        history = self.history()
        if len(history) < 2:
            raise ArtifactError("nothing to roll back to: fewer than two promotions recorded")
        history.pop()
        target = history[-1]
        self.load(target)
        (self.root / "HISTORY").write_text("\n".join(history) + "\n")
        self._write_pointer(ACTIVE, target)
        return target
