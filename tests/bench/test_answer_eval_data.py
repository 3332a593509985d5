"""The answer-quality evaluation set (bench/data/answers/) is well formed and honest.

Every question names public sample documents that exist, every key fact is written in
one of them (so a correct answer can state it), ids and questions are unique, and no
question is a document sentence copied out (which would make retrieval trivial).
"""

from __future__ import annotations

import html
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "bench" / "data" / "answers"
SAMPLES = ROOT / "retrieval" / "samples"
EXPERTS = ("code", "legal", "support")
MIN_ROWS = 50
COPY_WORDS = 12  # a run of this many words shared with a document counts as copied


def rows(expert: str) -> list[dict[str, Any]]:
    lines = (DATA / f"{expert}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def literal(text: str) -> str:
    """Lower case, markup (HTML tags and entities, Markdown emphasis and code ticks)
    dropped, runs of whitespace made one space: how a fact is looked for in a document."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    text = text.replace("**", "").replace("`", "")
    return " ".join(text.lower().split())


@cache
def document(expert: str, name: str) -> str:
    return literal((SAMPLES / expert / name).read_text(encoding="utf-8"))


def alternatives(fact: object) -> list[str]:
    if isinstance(fact, str):
        return [fact]
    assert isinstance(fact, dict) and set(fact) == {"any"}, fact
    spellings = fact["any"]
    assert isinstance(spellings, list) and spellings and all(isinstance(s, str) and s.strip() for s in spellings)
    return spellings


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", literal(text))


@pytest.mark.parametrize("expert", EXPERTS)
def test_each_expert_has_enough_well_formed_rows(expert: str) -> None:
    data = rows(expert)
    assert len(data) >= MIN_ROWS
    for row in data:
        assert set(row) == {"id", "expert", "question", "gold_sources", "key_facts"}, row
        assert row["expert"] == expert
        assert isinstance(row["id"], str) and row["id"].startswith(f"{expert}-")
        assert isinstance(row["question"], str) and len(row["question"].split()) >= 3
        assert isinstance(row["gold_sources"], list) and row["gold_sources"]
        assert isinstance(row["key_facts"], list) and row["key_facts"]


def test_ids_and_questions_are_unique() -> None:
    data = [row for expert in EXPERTS for row in rows(expert)]
    ids = [row["id"] for row in data]
    questions = [literal(str(row["question"])) for row in data]
    assert len(set(ids)) == len(ids)
    assert len(set(questions)) == len(questions)


@pytest.mark.parametrize("expert", EXPERTS)
def test_gold_sources_are_public_sample_documents(expert: str) -> None:
    public = {p.name for p in (SAMPLES / expert).iterdir() if p.is_file()}
    for row in rows(expert):
        for name in row["gold_sources"]:
            assert isinstance(name, str) and "/" not in name, (row["id"], name)
            assert name in public, f"{row['id']}: {name} is not a public {expert} sample"


@pytest.mark.parametrize("expert", EXPERTS)
def test_every_key_fact_is_written_in_a_gold_source(expert: str) -> None:
    for row in rows(expert):
        texts = [document(expert, str(name)) for name in row["gold_sources"]]
        for fact in row["key_facts"]:
            spelled = [literal(s) for s in alternatives(fact)]
            assert any(s in text for s in spelled for text in texts), f"{row['id']}: {fact!r} is in no gold source"


@pytest.mark.parametrize("expert", EXPERTS)
def test_no_question_copies_a_document_sentence(expert: str) -> None:
    runs: set[tuple[str, ...]] = set()
    for path in (SAMPLES / expert).rglob("*"):
        if path.is_file():
            doc = words(path.read_text(encoding="utf-8"))
            runs.update(tuple(doc[i : i + COPY_WORDS]) for i in range(len(doc) - COPY_WORDS + 1))
    for row in rows(expert):
        q = words(str(row["question"]))
        copied = [run for i in range(len(q) - COPY_WORDS + 1) if (run := tuple(q[i : i + COPY_WORDS])) in runs]
        assert not copied, f"{row['id']} copies {' '.join(copied[0])!r}"
