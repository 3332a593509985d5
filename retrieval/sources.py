"""Finding input files on disk, confined to allowed root directories.

Every path is resolved (symlinks followed) before it is checked, so a link that
points out of the roots is refused like a plain path outside them. A file's
``source`` — its stable name within a domain — is its path relative to the innermost
root that holds it, with forward slashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import DocumentError, MissingFile, OutsideAllowedRoots, UnsupportedType
from retrieval.loaders import SUPPORTED_SUFFIXES


@dataclass(frozen=True, slots=True)
class FoundFile:
    source: str
    path: Path  # resolved, inside a root


@dataclass(frozen=True, slots=True)
class RefusedPath:
    """A path that cannot be ingested; ``skipped`` marks files a folder walk passed over."""

    source: str
    error: DocumentError
    skipped: bool = False


def source_name(path: Path, roots: Sequence[Path]) -> str | None:
    """``path`` (resolved) relative to the innermost root holding it, or None if none does."""
    resolved = path.resolve()
    best: Path | None = None
    for root in roots:
        root = root.resolve()
        inside = resolved == root or root in resolved.parents
        if inside and (best is None or len(root.parts) > len(best.parts)):
            best = root
    if best is None or resolved == best:
        return None if best is None else resolved.name
    return resolved.relative_to(best).as_posix()


def discover(paths: Sequence[Path], roots: Sequence[Path]) -> list[FoundFile | RefusedPath]:
    """Files named by ``paths`` (folders walked recursively, hidden entries skipped).

    Explicitly named files of an unsupported type are refused with UnsupportedType;
    inside a folder they are reported as skipped. Each file appears once, in order.
    """
    out: list[FoundFile | RefusedPath] = []
    seen: set[Path] = set()
    for given in paths:
        label = str(given)
        if not given.exists():
            out.append(RefusedPath(label, MissingFile(f"{given} does not exist")))
            continue
        resolved = given.resolve()
        if source_name(resolved, roots) is None:
            out.append(RefusedPath(label, _outside(given, roots)))
            continue
        if resolved.is_dir():
            for path in sorted(resolved.rglob("*")):
                rel = path.relative_to(resolved)
                if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                    continue
                out.extend(_one(path, roots, seen, in_folder=True))
        else:
            out.extend(_one(resolved, roots, seen, in_folder=False))
    return out


def _one(path: Path, roots: Sequence[Path], seen: set[Path], *, in_folder: bool) -> list[FoundFile | RefusedPath]:
    real = path.resolve()
    source = source_name(real, roots)
    if source is None:  # a symlink inside a folder that leads out of the roots
        return [RefusedPath(str(path), _outside(path, roots))]
    if real in seen:
        return []
    seen.add(real)
    if real.suffix.lower() not in SUPPORTED_SUFFIXES:
        known = ", ".join(sorted(SUPPORTED_SUFFIXES))
        error = UnsupportedType(f"unsupported file type {real.suffix or '(none)'!r}; supported: {known}")
        return [RefusedPath(source, error, skipped=in_folder)]
    return [FoundFile(source, real)]


def _outside(path: Path, roots: Sequence[Path]) -> OutsideAllowedRoots:
    allowed = ", ".join(str(r) for r in roots) or "(none configured)"
    return OutsideAllowedRoots(f"{path} is outside the allowed roots ({allowed})")


# The sample corpora shipped with the package (a fictional company's support, legal and
# engineering knowledge), one folder per domain.
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
