"""Reading a public repository's git snapshot at a pinned commit; candidates and sources."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


class SnapshotError(RuntimeError):
    pass


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class Snapshot:
    """One repository's git directory under the mirror root, read at a pinned commit."""

    def __init__(self, mirror: Path, repo: str, commit: str) -> None:
        self.repo = repo
        self.commit = commit
        self.git_dir = self._find_git_dir(mirror, repo)
        probe = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "cat-file", "-e", f"{commit}^{{commit}}"],
            capture_output=True,
        )
        if probe.returncode != 0:
            raise SnapshotError(f"{repo}: commit {commit} is not in {self.git_dir} (fetch a newer snapshot)")

    @staticmethod
    def _find_git_dir(mirror: Path, repo: str) -> Path:
        base = mirror / repo.replace("/", "+")
        for candidate in (base / "repo" / ".git", base / "repo", base / ".git", base):
            if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
                return candidate
        raise SnapshotError(f"{repo}: no git snapshot under {base} (fetch github:{repo} first)")

    def blob(self, path: str) -> bytes:
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "show", f"{self.commit}:{path}"],
            capture_output=True,
        )
        if done.returncode != 0:
            raise SnapshotError(f"{self.repo}@{self.commit[:12]}: cannot read {path}: {done.stderr.decode().strip()}")
        return done.stdout

    def tree(self, prefix: str) -> list[str]:
        """Paths of the files under ``prefix`` at the pinned commit, sorted."""
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "ls-tree", "-r", "-z", "--name-only", self.commit, "--", prefix],
            capture_output=True,
        )
        if done.returncode != 0:
            raise SnapshotError(f"{self.repo}@{self.commit[:12]}: cannot list {prefix}: {done.stderr.decode().strip()}")
        return sorted(name for name in done.stdout.decode().split("\0") if name)

    def texts(self, paths: Iterable[str]) -> dict[str, str]:
        """Many files at once (one ``git cat-file --batch``), decoded like ``text``."""
        wanted = list(paths)
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "cat-file", "--batch"],
            input="".join(f"{self.commit}:{path}\n" for path in wanted).encode(),
            capture_output=True,
        )
        if done.returncode != 0:
            raise SnapshotError(f"{self.repo}@{self.commit[:12]}: cat-file failed: {done.stderr.decode().strip()}")
        out: dict[str, str] = {}
        data, pos = done.stdout, 0
        for path in wanted:
            end = data.index(b"\n", pos)
            header = data[pos:end].split()
            pos = end + 1
            if len(header) != 3 or header[1] != b"blob":
                raise SnapshotError(f"{self.repo}@{self.commit[:12]}: cannot read {path}")
            size = int(header[2])
            out[path] = _decode(data[pos : pos + size])
            pos += size + 1
        return out

    def text(self, path: str) -> str:
        return _decode(self.blob(path))

    def json(self, path: str) -> object:
        return json.loads(self.text(path))


# --- sources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    text: str
    stratum: str
    raw: str = ""  # the text before clean(), where a loader's filter needs it


Loader = Callable[[Snapshot], list[Candidate]]


@dataclass(frozen=True)
class Source:
    key: str
    domain: str
    repo: str  # owner/name of the snapshot that is read
    commit: str
    paths: tuple[str, ...]
    licence: str
    cap: int
    load: Loader
    names: bool = False  # apply the personal-name heuristic (free-text customer messages)
    cross_domain: re.Pattern[str] | None = None  # items matching it are dropped
