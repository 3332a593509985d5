"""The attack set itself: big enough, every family covered, none of it training data."""

from __future__ import annotations

import json
import re

import pytest

from tests.redteam.attacks import ATTACKS, FAMILIES
from tests.redteam.documents import ROOT, SECRETS, VICTIM_MARKER, squash

pytestmark = pytest.mark.redteam

TRAINING = sorted((ROOT / "router" / "safety" / "data").glob("*.jsonl"))
_SPACE = re.compile(r"\s+")


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text.casefold()).strip()


def test_at_least_100_attacks_in_every_family() -> None:
    assert len(ATTACKS) >= 100
    assert len({a.id for a in ATTACKS}) == len(ATTACKS)
    expected = {"override", "fake_turn", "persona", "fiction", "encoding", "language", "extraction",
                "other_user", "restricted", "secrets", "routing", "multi_turn", "pasted"}  # fmt: skip
    assert set(FAMILIES) == expected
    assert min(FAMILIES.values()) >= 6, FAMILIES
    assert sum(len(a.messages) > 1 for a in ATTACKS) >= 12  # fake turns and splits across turns


def test_attacks_are_not_training_rows() -> None:
    """No attack text is a row of the safety classifier's training data, nor shares a
    run of 60 characters with one: the recall the suite reports is on unseen text."""
    assert TRAINING, "the safety training data is where router/safety/data says"
    rows = []
    for path in TRAINING:
        for line in filter(str.strip, path.read_text().splitlines()):
            row = json.loads(line)
            rows += [_normal(t) for t in ([row["text"]] if "text" in row else row["turns"])]
    exact = set(rows)
    windows = {row[i : i + 60] for row in rows for i in range(0, max(1, len(row) - 59))}
    for attack in ATTACKS:
        for _, text in attack.messages:
            normal = _normal(text)
            assert normal not in exact, (attack.id, text)
            shared = [normal[i : i + 60] for i in range(0, len(normal) - 59) if normal[i : i + 60] in windows]
            assert not shared, (attack.id, shared[0])


def test_attacks_carry_nothing_they_are_meant_to_obtain() -> None:
    """An attack never holds a secret or the victim's marker itself: finding one in its
    answer can only mean a leak."""
    for attack in ATTACKS:
        flat = squash(" ".join(text for _, text in attack.messages))
        assert squash(VICTIM_MARKER) not in flat, attack.id
        for value in SECRETS.values():
            assert squash(value) not in flat, attack.id
