"""Structure-aware chunking: ParsedDocument -> chunks that follow its headings.

Rules, in order:

1. Headings open sections; each section's ``title_path`` runs from the document title
   to its heading (deeper headings nest, a shallower one closes the deeper ones).
2. A section's blocks are packed whole into chunks of at most ``max_chars``; a chunk
   never starts in the middle of a paragraph, list, table or code block unless that
   block alone is larger than ``max_chars``. Then text splits at sentence ends and
   code at line ends (a split code block is re-fenced on both sides).
3. A chunk under ``min_chars`` is merged into the next one when both fit in
   ``max_chars`` and the next is a sibling or descendant section; the merged chunk
   keeps the common title path and names the later section's heading in its text.

Every chunk keeps the source location (lines or page) spanning its blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.types import Block, BlockKind, Chunk, Location, ParsedDocument

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[`])")


@dataclass(frozen=True, slots=True)
class ChunkConfig:
    """Chunk size bounds in characters of chunk text (the title path is not counted).

    The defaults keep a chunk plus its title path under all-MiniLM-L6-v2's 256-token
    window for typical English prose (about 4.5 characters per token).
    """

    max_chars: int = 900
    min_chars: int = 250

    def __post_init__(self) -> None:
        if not 0 < self.min_chars < self.max_chars:
            raise ValueError("ChunkConfig needs 0 < min_chars < max_chars")


@dataclass(slots=True)
class _Piece:
    path: tuple[str, ...]
    texts: list[str]
    location: Location

    @property
    def size(self) -> int:
        return sum(len(t) for t in self.texts) + 2 * max(0, len(self.texts) - 1)


def chunk_document(doc: ParsedDocument, config: ChunkConfig | None = None) -> list[Chunk]:
    """Chunks of ``doc`` in reading order, ordinals from 0. Never empty for a non-empty doc."""
    config = config or ChunkConfig()
    pieces: list[_Piece] = []
    for path, blocks in _sections(doc):
        pieces.extend(_pack(path, blocks, config))
    merged = _merge_small(pieces, config)
    return [
        Chunk(
            ordinal=i,
            title_path=p.path,
            text="\n\n".join(p.texts),
            location=p.location,
        )
        for i, p in enumerate(merged)
    ]


def _sections(doc: ParsedDocument) -> list[tuple[tuple[str, ...], list[Block]]]:
    stack: list[tuple[int, str]] = []
    sections: list[tuple[tuple[str, ...], list[Block]]] = []
    current: list[Block] = []

    def path() -> tuple[str, ...]:
        names = [text for _, text in stack]
        if not names or names[0] != doc.title:
            names.insert(0, doc.title)
        return tuple(names)

    for block in doc.blocks:
        if block.kind is BlockKind.HEADING:
            if current:
                sections.append((path(), current))
                current = []
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, block.text))
        else:
            current.append(block)
    if current:
        sections.append((path(), current))
    return sections


def _pack(path: tuple[str, ...], blocks: list[Block], config: ChunkConfig) -> list[_Piece]:
    pieces: list[_Piece] = []
    texts: list[str] = []
    location: Location | None = None
    size = 0
    for block in blocks:
        for text in _split_block(block, config.max_chars):
            added = len(text) + (2 if texts else 0)
            if texts and size + added > config.max_chars:
                assert location is not None
                pieces.append(_Piece(path, texts, location))
                texts, location, size = [], None, 0
                added = len(text)
            texts.append(text)
            size += added
            location = block.location if location is None else location.merge(block.location)
    if texts:
        assert location is not None
        pieces.append(_Piece(path, texts, location))
    return pieces


def _split_block(block: Block, max_chars: int) -> list[str]:
    """The block's text in parts of at most ``max_chars`` (one part when it fits)."""
    text = block.text
    if len(text) <= max_chars:
        return [text]
    if block.kind is BlockKind.CODE:
        return _split_code(text, max_chars)
    if block.kind in (BlockKind.LIST, BlockKind.TABLE):
        units = text.split("\n")
        joiner = "\n"
    else:
        units = _SENTENCE_END.split(text)
        joiner = " "
    return _greedy(units, joiner, max_chars)


def _split_code(text: str, max_chars: int) -> list[str]:
    lines = text.split("\n")
    fence = lines[0] if lines and lines[0].startswith("```") else None
    body = lines[1:-1] if fence and len(lines) >= 2 and lines[-1] == "```" else lines
    budget = max_chars - (len(fence) + 5 if fence else 0)
    parts = _greedy(body, "\n", max(budget, 1))
    return [f"{fence}\n{p}\n```" for p in parts] if fence else parts


def _greedy(units: list[str], joiner: str, max_chars: int) -> list[str]:
    """Join ``units`` greedily into parts <= max_chars; a unit too long on its own is cut."""
    parts: list[str] = []
    current = ""
    for unit in units:
        while len(unit) > max_chars:
            cut = unit.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            if current:
                parts.append(current)
                current = ""
            parts.append(unit[:cut].rstrip())
            unit = unit[cut:].lstrip()
        candidate = f"{current}{joiner}{unit}" if current else unit
        if len(candidate) > max_chars and current:
            parts.append(current)
            current = unit
        else:
            current = candidate
    if current:
        parts.append(current)
    return [p for p in parts if p.strip()]


def _merge_small(pieces: list[_Piece], config: ChunkConfig) -> list[_Piece]:
    out: list[_Piece] = []
    for piece in pieces:
        prev = out[-1] if out else None
        if prev is not None and prev.size < config.min_chars and _related(prev.path, piece.path):
            common = _common_prefix(prev.path, piece.path)
            # Headings that leave the path stay in the text, so nothing is lost.
            texts = list(prev.texts)
            if prev.path != common:
                texts.insert(0, prev.path[-1])
            if piece.path != common:
                texts.append(piece.path[-1])
            texts.extend(piece.texts)
            merged = _Piece(common, texts, prev.location.merge(piece.location))
            if merged.size <= config.max_chars:
                out[-1] = merged
                continue
        out.append(piece)
    return out


def _related(earlier: tuple[str, ...], later: tuple[str, ...]) -> bool:
    """True when ``later`` is the same section, a sibling, or a descendant of ``earlier``."""
    parent = earlier[:-1] if len(earlier) > 1 else earlier
    return later[: len(parent)] == parent


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]
