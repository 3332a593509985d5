"""Chunking follows headings, keeps blocks whole, bounds sizes and keeps locations."""

from __future__ import annotations

import pytest

from retrieval.chunking import ChunkConfig, chunk_document
from retrieval.loaders import load_document
from retrieval.sources import SAMPLES_DIR
from retrieval.types import Block, BlockKind, Location, ParsedDocument


def para(text: str, line: int) -> Block:
    return Block(BlockKind.PARAGRAPH, text, Location(start_line=line, end_line=line))


def heading(text: str, level: int, line: int) -> Block:
    return Block(BlockKind.HEADING, text, Location(start_line=line, end_line=line), level)


def test_title_paths_follow_heading_nesting() -> None:
    doc = ParsedDocument(
        "Guide",
        "text/markdown",
        (
            heading("Guide", 1, 1),
            para("Intro " * 50, 3),
            heading("Install", 2, 5),
            para("Install text " * 30, 7),
            heading("Linux", 3, 9),
            para("Linux text " * 30, 11),
            heading("Usage", 2, 13),
            para("Usage text " * 30, 15),
        ),
    )
    chunks = chunk_document(doc, ChunkConfig(max_chars=400, min_chars=50))
    assert [c.title_path for c in chunks] == [
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "Linux"),
        ("Guide", "Usage"),
    ]
    assert [c.ordinal for c in chunks] == [0, 1, 2, 3]
    assert chunks[2].location == Location(start_line=11, end_line=11)
    assert chunks[2].embed_text.startswith("Guide > Install > Linux\nLinux text")


def test_blocks_are_packed_whole_and_sizes_bounded() -> None:
    blocks = [heading("Doc", 1, 1)] + [para(f"Sentence {i}. " * 12, 2 + i) for i in range(20)]
    config = ChunkConfig(max_chars=500, min_chars=100)
    chunks = chunk_document(ParsedDocument("Doc", "text/plain", tuple(blocks)), config)
    assert all(len(c.text) <= config.max_chars for c in chunks)
    texts = {b.text for b in blocks[1:]}
    for chunk in chunks:  # every paragraph appears whole in exactly one chunk
        assert all(part in texts for part in chunk.text.split("\n\n"))
    assert sum(len(c.text.split("\n\n")) for c in chunks) == 20
    # Locations span the packed blocks.
    assert chunks[0].location.start_line == 2
    assert chunks[-1].location.end_line == 21


def test_long_paragraph_splits_at_sentence_ends() -> None:
    text = " ".join(f"This is sentence number {i}." for i in range(60))
    doc = ParsedDocument("D", "text/plain", (para(text, 1),))
    chunks = chunk_document(doc, ChunkConfig(max_chars=300, min_chars=50))
    assert len(chunks) > 1
    assert all(len(c.text) <= 300 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)
    assert " ".join(c.text for c in chunks) == text


def test_fenced_code_is_kept_whole_or_split_on_lines_and_refenced() -> None:
    small = "```sh\nmake run\nmake test\n```"
    md = f"# Dev\n\nRun these:\n\n{small}\n"
    chunks = chunk_document(load_document(md.encode(), "dev.md"))
    assert small in chunks[0].text
    big = "```python\n" + "\n".join(f"x_{i} = compute({i})" for i in range(80)) + "\n```"
    chunks = chunk_document(
        load_document(f"# Code\n\n{big}\n".encode(), "c.md"),
        ChunkConfig(max_chars=400, min_chars=50),
    )
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.text.startswith("```python\n") and chunk.text.endswith("\n```")
        assert len(chunk.text) <= 400
    lines = [ln for c in chunks for ln in c.text.split("\n") if not ln.startswith("```")]
    assert lines == [f"x_{i} = compute({i})" for i in range(80)]


def test_small_sections_merge_with_siblings_keeping_their_heading() -> None:
    doc = ParsedDocument(
        "Policy",
        "text/markdown",
        (
            heading("Policy", 1, 1),
            heading("Scope", 2, 2),
            para("Everyone.", 3),
            heading("Owner", 2, 4),
            para("Legal team.", 5),
        ),
    )
    chunks = chunk_document(doc, ChunkConfig(max_chars=500, min_chars=100))
    assert len(chunks) == 1
    assert chunks[0].title_path == ("Policy",)
    assert chunks[0].text == "Scope\n\nEveryone.\n\nOwner\n\nLegal team."
    assert chunks[0].location == Location(start_line=3, end_line=5)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        ChunkConfig(max_chars=100, min_chars=100)


def test_every_sample_document_chunks_within_bounds() -> None:
    config = ChunkConfig()
    files = [p for p in SAMPLES_DIR.rglob("*") if p.is_file()]
    assert len(files) >= 90
    for path in files:
        chunks = chunk_document(load_document(path.read_bytes(), path.name), config)
        assert chunks, path
        for chunk in chunks:
            assert 0 < len(chunk.text) <= config.max_chars, path
            assert chunk.title_path[0], path
            assert chunk.location.start_line is not None, path
