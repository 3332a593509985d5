"""File bytes -> ParsedDocument, by file extension.

=========  ====================  =============================================
suffix     media type            structure kept
=========  ====================  =============================================
.md        text/markdown         headings, paragraphs, lists, tables, fenced code
.txt       text/plain            inferred headings and paragraphs
.html/.htm text/html             headings, paragraphs, lists, tables, ``pre``
.pdf       application/pdf       per-page paragraphs (page numbers kept)
.docx      application/vnd...    styled headings, paragraphs, lists, tables
=========  ====================  =============================================

:func:`load_document` raises a :class:`~retrieval.errors.DocumentError` subclass for
every way a file can be unusable; it never returns a document without text.
"""

from __future__ import annotations

from pathlib import PurePath

from retrieval.errors import DocumentTooLarge, EmptyDocument, UnsupportedType
from retrieval.loaders.docx import docx_blocks
from retrieval.loaders.html import html_blocks
from retrieval.loaders.markdown import markdown_blocks
from retrieval.loaders.pdf import pdf_blocks
from retrieval.loaders.text import decode_text, text_blocks
from retrieval.types import Block, BlockKind, ParsedDocument

MEDIA_TYPES: dict[str, str] = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
SUPPORTED_SUFFIXES = frozenset(MEDIA_TYPES)


def media_type_for(filename: str) -> str:
    """The media type for ``filename``'s extension. Raises UnsupportedType."""
    suffix = PurePath(filename).suffix.lower()
    try:
        return MEDIA_TYPES[suffix]
    except KeyError:
        known = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnsupportedType(f"unsupported file type {suffix or '(no extension)'!r}; supported: {known}") from None


def load_document(data: bytes, filename: str, *, max_bytes: int | None = None) -> ParsedDocument:
    """Parse ``data`` as the format named by ``filename``'s extension.

    Raises UnsupportedType, DocumentTooLarge, BadEncoding, CorruptDocument, EmptyDocument.
    """
    media_type = media_type_for(filename)
    if max_bytes is not None and len(data) > max_bytes:
        raise DocumentTooLarge(f"{len(data)} bytes is over the limit of {max_bytes} bytes")
    if not data.strip():
        raise EmptyDocument("the file is empty")
    title = ""
    blocks: list[Block]
    if media_type == "application/pdf":
        title, blocks = pdf_blocks(data)
    elif media_type.startswith("application/vnd.openxml"):
        blocks = docx_blocks(data)
    elif media_type == "text/html":
        title, blocks = html_blocks(decode_text(data))
    elif media_type == "text/markdown":
        blocks = markdown_blocks(decode_text(data))
    else:
        blocks = text_blocks(decode_text(data))
    if not any(b.kind is not BlockKind.HEADING for b in blocks):
        raise EmptyDocument("no text found in the file")
    first_heading = next((b.text for b in blocks if b.kind is BlockKind.HEADING), "")
    top = next((b.text for b in blocks if b.kind is BlockKind.HEADING and b.level == 1), "")
    title = title or top or first_heading or _title_from_name(filename)
    return ParsedDocument(title=title, media_type=media_type, blocks=tuple(blocks))


def _title_from_name(filename: str) -> str:
    stem = PurePath(filename).stem.replace("-", " ").replace("_", " ").strip()
    return stem[:1].upper() + stem[1:] if stem else filename


__all__ = ["MEDIA_TYPES", "SUPPORTED_SUFFIXES", "load_document", "media_type_for"]
