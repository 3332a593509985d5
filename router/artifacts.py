"""Versioned gate artifacts on disk, with an atomically swapped ACTIVE pointer.

Layout under ``root`` (shared storage in scale-out; ./data/router by default)::

    versions/<version>/{gate.safetensors, manifest.json}
    ACTIVE        one line: the active version (replaced atomically with os.replace)
    HISTORY       one line per promotion, oldest first (for rollback)

The package ships a trained default gate under router/artifacts/; it is active until
a version is promoted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from router.errors import ArtifactError
from router.gate import MANIFEST, GateManifest, TrainedScorer

BUNDLED = Path(__file__).resolve().parent / "artifacts"


class ArtifactStore:
    def __init__(self, root: Path, bundled: Path = BUNDLED) -> None:
        self.root = root
        self.bundled = bundled
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
        return TrainedScorer.load(self.path(version))

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
        bundled = [m for m in self.manifests() if (self.bundled / m.version).is_dir()]
        return bundled[-1].version if bundled else None

    def active(self) -> str | None:
        """The promoted version, else the bundled default, else None."""
        pointer = self.root / "ACTIVE"
        if pointer.is_file():
            name = pointer.read_text().strip()
            if name:
                return name
        return self.default_version()

    def _write_pointer(self, version: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".active-", dir=self.root)
        with os.fdopen(fd, "w") as fh:
            fh.write(version + "\n")
        os.replace(tmp, self.root / "ACTIVE")

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
        (self.root / "HISTORY").write_text("\n".join(history) + "\n")
        self._write_pointer(version)

    def shadow(self) -> str | None:
        """The version running in shadow beside the active one, if any."""
        pointer = self.root / "SHADOW"
        name = pointer.read_text().strip() if pointer.is_file() else ""
        return name or None

    def set_shadow(self, version: str | None) -> None:
        """Run ``version`` in shadow (None: stop). Raises ArtifactError if it does not load."""
        if version is not None:
            self.load(version)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".shadow-", dir=self.root)
        with os.fdopen(fd, "w") as fh:
            fh.write((version or "") + "\n")
        os.replace(tmp, self.root / "SHADOW")

    def rollback(self) -> str:
        """Re-activate the version promoted before the current one. Raises ArtifactError."""
        history = self.history()
        if len(history) < 2:
            raise ArtifactError("nothing to roll back to: fewer than two promotions recorded")
        history.pop()
        target = history[-1]
        self.load(target)
        (self.root / "HISTORY").write_text("\n".join(history) + "\n")
        self._write_pointer(target)
        return target
