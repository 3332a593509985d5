"""Frozen values that cross the retrieval package boundary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class BlockKind(StrEnum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    LIST = "list"
    CODE = "code"
    TABLE = "table"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a piece of text sits in its source file.

    Lines are 1-based and inclusive (text formats); ``page`` is 1-based (PDF). A field
    is None when the format has no such notion.
    """

    start_line: int | None = None
    end_line: int | None = None
    page: int | None = None

    def merge(self, other: Location) -> Location:
        """The span covering both (the earlier start, the later end)."""
        return Location(
            start_line=_first(min, self.start_line, other.start_line),
            end_line=_first(max, self.end_line, other.end_line),
            page=_first(min, self.page, other.page),
        )

    def __str__(self) -> str:
        parts = []
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.start_line is not None:
            if self.end_line is not None and self.end_line != self.start_line:
                parts.append(f"lines {self.start_line}-{self.end_line}")
            else:
                parts.append(f"line {self.start_line}")
        return ", ".join(parts)


def _first(pick: Callable[[int, int], int], a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


@dataclass(frozen=True, slots=True)
class Block:
    """One structural unit of a parsed document.

    ``level`` is the heading depth (1 = title) for headings and 0 otherwise. Code
    blocks keep their text verbatim (including indentation); other kinds are whitespace-
    normalised per line.
    """

    kind: BlockKind
    text: str
    location: Location
    level: int = 0


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A loaded file: its title, format and blocks in reading order (never empty)."""

    title: str
    media_type: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable piece of a document.

    ``title_path`` runs from the document title down to the innermost heading the chunk
    sits under. ``ordinal`` is the chunk's position in its document (0-based).
    """

    ordinal: int
    title_path: tuple[str, ...]
    text: str
    location: Location

    @property
    def embed_text(self) -> str:
        """What is embedded and BM25-indexed: the heading path, then the text."""
        return f"{' > '.join(self.title_path)}\n{self.text}" if self.title_path else self.text


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One row to index: the SQL chunk id, its text (``Chunk.embed_text``) and ACL.

    ``groups`` empty means visible to everyone; otherwise a caller must belong to at
    least one of the groups.
    """

    chunk_id: int
    text: str
    groups: frozenset[str]


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result (an id; text and metadata are fetched from SQL by the caller).

    ``score`` is the fused score in [0, 1] (higher is better); ``dense_score`` the cosine
    similarity, ``bm25_score`` the raw BM25 score; a rank is None when that retriever did
    not return the chunk among its candidates.
    """

    chunk_id: int
    score: float
    dense_score: float | None
    bm25_score: float | None
    dense_rank: int | None
    bm25_rank: int | None
