"""Labelled routing examples: loading, hashing, deterministic stratified splits."""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from router.errors import RouterError

SEED_DIR = Path(__file__).resolve().parent / "data"
# The shipped training set: the first seed file and the coverage set written to
# data/TAXONOMY.md (one file per slice).
SEED_FILES = (SEED_DIR / "train.jsonl", *sorted((SEED_DIR / "broad").glob("*.jsonl")))


class DataError(RouterError):
    """A malformed examples file; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    domain: str


def load_jsonl(path: Path, label_key: str = "domain") -> list[Example]:
    """Read ``{"text": ..., "domain": ...}`` lines. Raises DataError naming the bad line."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, domain = row["text"], row[label_key]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{number}: expected {{'text', '{label_key}'}}: {exc}") from exc
            if not isinstance(text, str) or not isinstance(domain, str) or not text.strip():
                raise DataError(f"{path}:{number}: text and {label_key} must be non-empty strings")
            out.append(Example(text, domain))
    return out


def load_examples(paths: Iterable[Path]) -> list[Example]:
    """The examples of ``paths`` in order, without repeats: a text seen before (ignoring
    case and surrounding space) is dropped, whatever its label. Raises DataError."""
    seen: set[str] = set()
    out = []
    for path in paths:
        for ex in load_jsonl(path):
            key = ex.text.strip().lower()
            if key not in seen:
                seen.add(key)
                out.append(ex)
    return out


def data_hash(examples: Iterable[Example]) -> str:
    digest = hashlib.sha256()
    for ex in sorted(examples, key=lambda e: (e.domain, e.text)):
        digest.update(f"{ex.domain}\t{ex.text}\n".encode())
    return digest.hexdigest()


def stratified_split(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Split each label's examples ``1-fraction : fraction``, reproducibly for ``seed``."""
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.domain].append(ex)
    rng = random.Random(seed)
    train, held = [], []
    for label in sorted(by_label):
        items = sorted(by_label[label], key=lambda e: e.text)
        rng.shuffle(items)
        cut = max(1, round(len(items) * fraction)) if len(items) > 1 else 0
        held.extend(items[:cut])
        train.extend(items[cut:])
    return train, held
