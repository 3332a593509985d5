"""The safety check's examples: loading, the checked text of a row, the fixed split.

Rows are ours, written to ``data/PLAN.md``: attacks (``attacks_*.jsonl``) and hard
benign texts (``benign_*.jsonl``). The router's own examples are benign traffic too:
its training files join the training side, its held-out split the test side.

The split is by a stable hash of the checked text (one row in five held out), so it
never changes when rows are added and is never chosen by hand.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router.dataset import SEED_DIR, SEED_FILES, DataError
from router.safety import rules
from router.safety.model import CATEGORIES, checked_text

DATA_DIR = Path(__file__).resolve().parent / "data"
PENDING = "pending"  # a plan folder's rows written but not yet in the safety model's split
BENIGN = "benign"
LABELS = (*CATEGORIES, BENIGN)
# One training row in this many (by a stable hash of its text) is held out of fitting
# for calibration and thresholds: the safety model's and its second reading's.
VAL_SHARE = 7


@dataclass(frozen=True, slots=True)
class SafetyExample:
    text: str  # the checked text: the message, or the last TURNS user turns joined
    label: str  # a category or "benign"
    cell: str = ""
    style: str = ""
    derived: str = ""  # a mechanical variant of another row (base64, benign_wrap, ...): never held out
    turns: tuple[str, ...] = ()  # a conversation's user turns, oldest first (``text`` joins the last TURNS)


def load_rows(path: Path) -> list[SafetyExample]:
    """Read a plan file. Raises DataError naming the bad line."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = checked_text(row["turns"]) if "turns" in row else row["text"]
                label = row["label"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{number}: expected text or turns, and label: {exc}") from exc
            if not isinstance(text, str) or not text.strip() or label not in LABELS:
                raise DataError(f"{path}:{number}: empty text or unknown label {label!r}")
            out.append(
                SafetyExample(
                    text,
                    label,
                    str(row.get("cell", "")),
                    str(row.get("style", "")),
                    str(row.get("derived", "")),
                    tuple(row.get("turns", ())),
                )
            )
    return out


def targets(rows: Sequence[SafetyExample]) -> np.ndarray:
    """Each row's label as a 0/1 vector over CATEGORIES (all zero: benign): what the
    classifiers fit, each category its own sigmoid."""
    y = np.zeros((len(rows), len(CATEGORIES)), dtype=np.float32)
    for i, row in enumerate(rows):
        if row.label != BENIGN:
            y[i, CATEGORIES.index(row.label)] = 1.0
    return y


def is_validation(text: str, val_share: int = VAL_SHARE) -> bool:
    """Whether a training row is held for calibration (router.safety.train) rather than fitted."""
    return hashlib.sha256(text.encode()).digest()[1] % val_share == 0


def held_out(text: str) -> bool:
    """Whether a row belongs to the test side (one in five, by a stable hash)."""
    return hashlib.sha256(text.strip().lower().encode()).digest()[0] % 5 == 0


def _unique(rows: Iterable[SafetyExample]) -> list[SafetyExample]:
    seen: set[str] = set()
    out = []
    for row in rows:
        key = row.text.strip().lower()
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


@dataclass(frozen=True)
class SafetySplit:
    train: list[SafetyExample]
    test: list[SafetyExample]  # our attacks and hard benign rows, never trained on
    router_test: list[SafetyExample]  # the router's held-out split: ordinary traffic


def plan_files(folder: Path) -> list[Path]:
    """A plan folder's data files (its top level only: ``pending/`` is read apart)."""
    return sorted([*folder.glob("attacks_*.jsonl"), *folder.glob("benign_*.jsonl")])


def load_split(data_dir: Path = DATA_DIR, pending: bool = False) -> SafetySplit:
    """The shipped examples, split; ``pending``: the ``pending/`` rows too, split by the
    same hash (the safety model trained on none of them). Raises DataError."""
    paths = plan_files(data_dir) + (plan_files(data_dir / PENDING) if pending else [])
    ours = _unique(row for path in paths for row in load_rows(path))
    traffic = _router_rows(SEED_FILES)
    router_test = _router_rows([SEED_DIR / "test.jsonl"])
    # A row marked as a variant of another trains; only written rows are held out.
    train = [r for r in ours if r.derived or not held_out(r.text)]
    return SafetySplit(
        train=train + traffic,
        test=_unseen([r for r in ours if held_out(r.text) and not r.derived], train),
        router_test=router_test,
    )


def _unseen(test: list[SafetyExample], train: Sequence[SafetyExample]) -> list[SafetyExample]:
    """``test`` without the rows that are another form of a training row: writers padded
    or encoded some of their own rows, and the hash split can part a row from its
    variant. A test row whose text (or decoded form) holds a training row's text, or is
    held in one, would not be unseen."""
    seen = [r.text.strip().lower() for r in train if len(r.text.strip()) >= 24]
    out = []
    for row in test:
        forms = [row.text.strip().lower(), *(v.strip().lower() for v in rules.variants(row.text))]
        if not any(s in f or (len(f) >= 24 and f in s) for f in forms for s in seen):
            out.append(row)
    return out


def _router_rows(paths: Iterable[Path]) -> list[SafetyExample]:
    rows = []
    for path in paths:
        with path.open(encoding="utf-8") as fh:
            rows += [SafetyExample(json.loads(line)["text"], BENIGN, "router") for line in fh if line.strip()]
    return _unique(rows)
