"""The safety check's training data: written to its plan, big enough, split cleanly."""

from __future__ import annotations

import re

import pytest

from router.safety.data import BENIGN, DATA_DIR, PENDING, SafetySplit, load_rows, load_split, plan_files

PLAN = (DATA_DIR / "PLAN.md").read_text()


def _rows():  # type: ignore[no-untyped-def]
    return [row for path in sorted(DATA_DIR.glob("*.jsonl")) for row in load_rows(path)]


def test_every_cell_of_the_plan_is_written_for() -> None:
    planned = set(re.findall(r"^- ([ab]\d+) ", PLAN, flags=re.MULTILINE))
    assert {f"a{i}" for i in range(1, 13)} | {f"b{i}" for i in range(1, 11)} <= planned
    written = {row.cell for row in _rows()}
    assert planned <= written, f"cells with no rows: {sorted(planned - written)}"


def test_attack_cells_hold_attacks_and_benign_cells_benign_rows() -> None:
    for row in _rows():
        assert (row.label == BENIGN) == row.cell.startswith("b"), row


@pytest.fixture(scope="module")
def split() -> SafetySplit:
    return load_split()


def test_the_issue_sizes_hold_on_the_training_side(split: SafetySplit) -> None:
    """At least 1,500 attacks and 3,000 hard benign examples to train on (the router's
    traffic comes on top)."""
    ours = [r for r in split.train if r.cell != "router"]
    assert sum(r.label != BENIGN for r in ours) >= 1_500
    assert sum(r.label == BENIGN for r in ours) + sum(r.cell == "router" for r in split.train) >= 3_000
    assert sum(r.label == BENIGN for r in ours) >= 1_500  # hard benign rows of our own


def test_held_out_rows_are_unseen(split: SafetySplit) -> None:
    train = {r.text.strip().lower() for r in split.train}
    assert not [r for r in split.test if r.text.strip().lower() in train]
    assert not [r for r in split.test if r.derived]
    assert sum(r.label != BENIGN for r in split.test) >= 300


def test_pending_rows_join_by_the_same_hash_and_stay_out_by_default(split: SafetySplit) -> None:
    """``pending=True`` adds the pending/ rows (data/PLAN.md) to both sides by the same
    stable hash: the shipped rows keep their side, and no pending row is in the default
    split."""
    wider = load_split(pending=True)
    pending = {r.text for path in plan_files(DATA_DIR / PENDING) for r in load_rows(path)}
    shipped = {r.text for r in split.train} | {r.text for r in split.test}
    assert pending and not pending & shipped
    wider_train = {r.text for r in wider.train}
    assert {r.text for r in split.train} <= wider_train
    # a shipped held-out row leaves only where a pending training row is another form of
    # it (one does today: a base64 reminder); a handful at most, or the split is not stable
    left = {r.text for r in split.test} - {r.text for r in wider.test}
    assert len(left) <= 5 and not left & wider_train
    added_train = wider_train & pending
    added_test = {r.text for r in wider.test} & pending
    assert added_train and added_test and not added_train & added_test
    # one in five held out, as for the shipped rows
    assert 0.1 < len(added_test) / (len(added_train) + len(added_test)) < 0.3
