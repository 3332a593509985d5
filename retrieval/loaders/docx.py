"""Word .docx -> blocks with zipfile and ElementTree only (no python-docx/lxml).

Reads ``word/document.xml``: paragraphs styled ``Title``/``Heading N`` become headings,
numbered or bulleted paragraphs become list items, tables become one row per line.
"""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

from retrieval.errors import CorruptDocument
from retrieval.loaders.text import clean_line
from retrieval.types import Block, BlockKind, Location

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING_STYLE = re.compile(r"^(?:heading|berschrift|titre)\s*(\d)$", re.IGNORECASE)
_MAX_XML_BYTES = 50_000_000  # a zip bomb guard: document.xml uncompressed


def _paragraph_text(p: ElementTree.Element) -> str:
    parts: list[str] = []
    for node in p.iter():
        if node.tag == f"{_W}t" and node.text:
            parts.append(node.text)
        elif node.tag in (f"{_W}tab", f"{_W}br", f"{_W}cr"):
            parts.append(" ")
    return clean_line("".join(parts))


def _style(p: ElementTree.Element) -> str:
    node = p.find(f"{_W}pPr/{_W}pStyle")
    return (node.get(f"{_W}val") or "") if node is not None else ""


def docx_blocks(data: bytes) -> list[Block]:
    """Blocks in document order. Raises CorruptDocument."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("word/document.xml")
            if info.file_size > _MAX_XML_BYTES:
                raise CorruptDocument("word/document.xml is implausibly large")
            root = ElementTree.fromstring(archive.read(info))
    except CorruptDocument:
        raise
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError) as exc:
        raise CorruptDocument(f"cannot read the .docx file: {exc}") from None
    body = root.find(f"{_W}body")
    if body is None:
        raise CorruptDocument("the .docx file has no document body")
    blocks: list[Block] = []
    items: list[str] = []
    no_location = Location()

    def flush_list() -> None:
        if items:
            blocks.append(Block(BlockKind.LIST, "\n".join(f"- {i}" for i in items), no_location))
            items.clear()

    for element in body:
        if element.tag == f"{_W}p":
            text = _paragraph_text(element)
            if not text:
                continue
            style = _style(element)
            heading = _HEADING_STYLE.match(style.replace("-", " "))
            if style.lower() == "title":
                flush_list()
                blocks.append(Block(BlockKind.HEADING, text, no_location, 1))
            elif heading:
                flush_list()
                level = min(6, int(heading.group(1)) + 1)
                blocks.append(Block(BlockKind.HEADING, text, no_location, level))
            elif element.find(f"{_W}pPr/{_W}numPr") is not None or "list" in style.lower():
                items.append(text)
            else:
                flush_list()
                blocks.append(Block(BlockKind.PARAGRAPH, text, no_location))
        elif element.tag == f"{_W}tbl":
            flush_list()
            rows = []
            for tr in element.iter(f"{_W}tr"):
                cells = [" ".join(_paragraph_text(p) for p in tc.iter(f"{_W}p")).strip() for tc in tr.iter(f"{_W}tc")]
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                blocks.append(Block(BlockKind.TABLE, "\n".join(rows), no_location))
    flush_list()
    return blocks
