"""Shared by the retrieval benchmarks: the sample corpus as chunks, and the question sets.

Works on the retrieval package alone (no database): each sample file is loaded,
chunked and given a synthetic chunk id, exactly as ingestion would chunk it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from retrieval.chunking import ChunkConfig, chunk_document
from retrieval.loaders import SUPPORTED_SUFFIXES, load_document
from retrieval.types import Chunk, IndexEntry

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "retrieval" / "samples"
QUESTIONS = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
DOMAINS = ("support", "legal", "code")
# The restricted/ folder of each sample domain is ingested for this group (see docs/retrieval.md).
RESTRICTED_GROUP = {"support": "support-leads", "legal": "legal-team", "code": "eng-oncall"}


@dataclass(frozen=True, slots=True)
class CorpusChunk:
    chunk_id: int
    source: str  # "legal/msa-key-terms.md", as in the question sets
    chunk: Chunk
    groups: frozenset[str]

    def entry(self) -> IndexEntry:
        return IndexEntry(self.chunk_id, self.chunk.embed_text, self.groups)


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    domain: str
    source: str
    answer: str


def load_corpus(domain: str, config: ChunkConfig | None = None, first_id: int = 1) -> list[CorpusChunk]:
    out: list[CorpusChunk] = []
    next_id = first_id
    for path in sorted((SAMPLES / domain).rglob("*")):
        if not path.is_file() or path.suffix.lower() not in SUPPORTED_SUFFIXES:
            continue
        rel = path.relative_to(SAMPLES).as_posix()
        groups = frozenset({RESTRICTED_GROUP[domain]}) if "/restricted/" in rel else frozenset()
        doc = load_document(path.read_bytes(), path.name)
        for chunk in chunk_document(doc, config):
            out.append(CorpusChunk(next_id, rel, chunk, groups))
            next_id += 1
    return out


def load_questions(domain: str) -> list[Question]:
    path = QUESTIONS / f"retrieval_questions_{domain}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [Question(r["question"], r["domain"], r["source"], r["answer"]) for r in rows]


_MARKUP = re.compile(r"[*_`]+")


def normalise(text: str) -> str:
    """Text compared for "does this chunk hold the answer": markup and spacing removed."""
    return " ".join(_MARKUP.sub("", text).lower().split())


def write_result(name: str, payload: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path
