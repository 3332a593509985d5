"""PDF -> blocks, one page at a time, with pypdf (pure Python).

PDF has no reliable structure: each page's text is split into paragraphs and
headings with the plain-text heuristics, and every block carries its page number.
Encrypted PDFs that need a password, and files pypdf cannot parse, are refused as
corrupt; a PDF whose pages hold no text (scans) is empty.
"""

from __future__ import annotations

import io
import logging
from dataclasses import replace

from retrieval.errors import CorruptDocument
from retrieval.loaders.text import text_blocks
from retrieval.types import Block, Location

# pypdf logs every recoverable oddity of real-world files at WARNING.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def pdf_blocks(data: bytes) -> tuple[str, list[Block]]:
    """(the document-info title or "", blocks). Raises CorruptDocument."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise CorruptDocument("not a PDF file (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorruptDocument("the PDF is encrypted with a password")
        meta = reader.metadata
        title = str(meta.title).strip() if meta is not None and meta.title else ""
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            # Line numbers of extracted PDF text mean little to a reader: keep the page.
            blocks.extend(
                replace(block, location=Location(page=number))
                for block in text_blocks(text, page=number, first_is_title=False)
            )
    except CorruptDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        # pypdf signals malformed input with a spread of exception types.
        raise CorruptDocument(f"cannot read the PDF: {type(exc).__name__}: {exc}") from None
    return title, blocks
