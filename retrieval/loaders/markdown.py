"""Markdown (CommonMark subset) -> blocks, with 1-based line numbers.

Handled: ATX and setext headings, fenced code (``` and ~~~, kept verbatim), pipe
tables, lists (with indented continuation lines), paragraphs, YAML front matter
(skipped) and HTML comments (skipped). Inline markup is reduced to its text: links
keep their label, emphasis markers go; inline code keeps its backticks.
"""

from __future__ import annotations

import re

from retrieval.loaders.text import clean_line, is_list_item
from retrieval.types import Block, BlockKind, Location

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_THEMATIC = re.compile(r"^ {0,3}([-*_])(?:\s*\1){2,}\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")


def inline_text(text: str) -> str:
    """Markdown inline markup -> readable text (labels kept, URLs and markers dropped)."""
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    return _EMPHASIS.sub(r"\2", text)


def markdown_blocks(text: str) -> list[Block]:
    lines = text.split("\n")
    blocks: list[Block] = []
    i, n = 0, len(lines)

    def add(kind: BlockKind, body: str, start: int, end: int, level: int = 0) -> None:
        if body.strip():
            blocks.append(Block(kind, body, Location(start_line=start + 1, end_line=end + 1), level))

    # YAML front matter is metadata, not content.
    if lines and lines[0].strip() == "---":
        for j in range(1, n):
            if lines[j].strip() in ("---", "..."):
                i = j + 1
                break

    while i < n:
        line = lines[i]
        if not line.strip() or _THEMATIC.match(line):
            i += 1
            continue
        if line.lstrip().startswith("<!--"):
            while i < n and "-->" not in lines[i]:
                i += 1
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            marker = fence.group(1)
            start = i
            i += 1
            body: list[str] = []
            while i < n and not (
                lines[i].lstrip().startswith(marker[0] * len(marker)) and not lines[i].strip().strip(marker[0])
            ):
                body.append(lines[i])
                i += 1
            end = min(i, n - 1)
            i += 1  # the closing fence (or past the end when unclosed)
            info = fence.group(2).strip()
            code = "\n".join(body).rstrip()
            add(BlockKind.CODE, f"```{info}\n{code}\n```" if code else "", start, end)
            continue
        atx = _ATX.match(line)
        if atx:
            level = len(atx.group(1))
            add(BlockKind.HEADING, inline_text(clean_line(atx.group(2) or "")), i, i, level)
            i += 1
            continue
        if line.lstrip().startswith("|"):
            start = i
            rows = []
            while i < n and lines[i].lstrip().startswith("|"):
                if not _TABLE_RULE.match(lines[i]):
                    cells = [inline_text(clean_line(c)) for c in lines[i].strip().strip("|").split("|")]
                    rows.append(" | ".join(c for c in cells))
                i += 1
            add(BlockKind.TABLE, "\n".join(rows), start, i - 1)
            continue
        if is_list_item(line):
            start = i
            items = [line]
            i += 1
            while (
                i < n
                and lines[i].strip()
                and (is_list_item(lines[i]) or lines[i][:1].isspace())
                and not _FENCE.match(lines[i])
            ):
                items.append(lines[i])
                i += 1
            body_text = "\n".join(
                ("  " if item[:1].isspace() else "") + inline_text(clean_line(item)) for item in items
            )
            add(BlockKind.LIST, body_text, start, i - 1)
            continue
        # A paragraph runs to a blank line or to the start of another block kind.
        start = i
        para = [line]
        i += 1
        while i < n and lines[i].strip():
            if _SETEXT.match(lines[i]) and len(para) == 1:
                level = 1 if lines[i].strip().startswith("=") else 2
                add(BlockKind.HEADING, inline_text(clean_line(para[0])), start, i, level)
                para = []
                i += 1
                break
            if (
                _ATX.match(lines[i])
                or _FENCE.match(lines[i])
                or lines[i].lstrip().startswith("|")
                or is_list_item(lines[i])
            ):
                break
            para.append(lines[i])
            i += 1
        if para:
            add(
                BlockKind.PARAGRAPH,
                inline_text(" ".join(clean_line(p) for p in para)),
                start,
                start + len(para) - 1,
            )
    return blocks
