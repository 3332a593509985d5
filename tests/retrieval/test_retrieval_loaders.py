"""Loaders: structure kept per format, and every kind of bad input refused clearly."""

from __future__ import annotations

import pytest

from retrieval.errors import (
    BadEncoding,
    CorruptDocument,
    DocumentTooLarge,
    EmptyDocument,
    UnsupportedType,
)
from retrieval.loaders import load_document, media_type_for
from retrieval.types import BlockKind, Location
from tests.fakes.documents import make_docx, make_pdf

MARKDOWN = """---
owner: legal
---
# Refund Policy

Customers on **annual** plans get a [pro-rated](https://x.example/r) refund.

## Exceptions

- item one
- item two
  continued

```python
def refund(amount):

    return amount
```

| Plan | Days |
|------|------|
| Pro  | 14   |

Setext heading
--------------
Last paragraph.
"""


def test_markdown_structure_and_lines() -> None:
    doc = load_document(MARKDOWN.encode(), "refunds.md")
    assert doc.title == "Refund Policy"
    assert doc.media_type == "text/markdown"
    kinds = [(b.kind, b.level) for b in doc.blocks]
    assert kinds == [
        (BlockKind.HEADING, 1),
        (BlockKind.PARAGRAPH, 0),
        (BlockKind.HEADING, 2),
        (BlockKind.LIST, 0),
        (BlockKind.CODE, 0),
        (BlockKind.TABLE, 0),
        (BlockKind.HEADING, 2),
        (BlockKind.PARAGRAPH, 0),
    ]
    para = doc.blocks[1]
    # Inline markup reduced to text; front matter skipped; 1-based line numbers.
    assert para.text == "Customers on annual plans get a pro-rated refund."
    assert para.location == Location(start_line=6, end_line=6)
    code = doc.blocks[4]
    assert code.text.startswith("```python\ndef refund(amount):\n\n    return amount")
    assert code.location == Location(start_line=14, end_line=18)
    assert doc.blocks[5].text == "Plan | Days\nPro | 14"
    assert doc.blocks[6].text == "Setext heading"


def test_html_keeps_headings_lists_tables_and_drops_scripts() -> None:
    html = b"""<html><head><title>Cookies</title><style>p{}</style></head><body>
<nav>Home | About</nav>
<h1>Cookie Policy</h1>
<p>We use <b>three</b> kinds&nbsp;of cookies.</p>
<script>alert("x")</script>
<h2>Kinds</h2>
<ul><li>Essential</li><li>Analytics</li></ul>
<table><tr><th>Name</th><th>Expiry</th></tr><tr><td>sid</td><td>1 day</td></tr></table>
<pre>  keep   spacing</pre>
</body></html>"""
    doc = load_document(html, "cookies.html")
    assert doc.title == "Cookies"
    texts = [(b.kind, b.text) for b in doc.blocks]
    assert texts == [
        (BlockKind.HEADING, "Cookie Policy"),
        (BlockKind.PARAGRAPH, "We use three kinds of cookies."),
        (BlockKind.HEADING, "Kinds"),
        (BlockKind.LIST, "- Essential\n- Analytics"),
        (BlockKind.TABLE, "Name | Expiry\nsid | 1 day"),
        (BlockKind.CODE, "  keep   spacing"),
    ]
    assert doc.blocks[0].location.start_line == 3


def test_plain_text_infers_title_and_headings() -> None:
    text = (
        "Litigation Hold Procedure\n\nOwner: Legal Ops\n\n1. WHAT A HOLD IS\n\n"
        "A hold suspends deletion.\n\nScope\nApplies to all staff.\n"
    )
    doc = load_document(text.encode(), "hold.txt")
    assert doc.title == "Litigation Hold Procedure"
    headings = [b.text for b in doc.blocks if b.kind is BlockKind.HEADING]
    assert headings == ["Litigation Hold Procedure", "1. WHAT A HOLD IS", "Scope"]
    # "Owner: Legal Ops" is a field line, not a heading.
    assert any(b.text == "Owner: Legal Ops" and b.kind is BlockKind.PARAGRAPH for b in doc.blocks)


def test_utf8_bom_and_utf16_are_read() -> None:
    assert load_document("\ufeffHello\n\nwörld text".encode(), "a.txt").title == "Hello"
    assert load_document("Title\n\nbody text".encode("utf-16"), "a.txt").title == "Title"


def test_pdf_pages_and_title() -> None:
    data = make_pdf([["Refund Policy", "Refunds take 14 days."], ["Page two text."]], title="Refunds")
    doc = load_document(data, "refunds.pdf")
    assert doc.title == "Refunds"
    assert [b.location.page for b in doc.blocks] == [1, 1, 2]
    assert doc.blocks[1].text == "Refunds take 14 days."


def test_docx_styles() -> None:
    data = make_docx([("Title", "Handbook"), ("Heading1", "Leave"), (None, "You get 25 days.")])
    doc = load_document(data, "handbook.docx")
    assert doc.title == "Handbook"
    assert [(b.kind, b.level, b.text) for b in doc.blocks] == [
        (BlockKind.HEADING, 1, "Handbook"),
        (BlockKind.HEADING, 2, "Leave"),
        (BlockKind.PARAGRAPH, 0, "You get 25 days."),
    ]


@pytest.mark.parametrize(
    ("data", "name", "error", "fragment"),
    [
        (b"%PDF-1.4\n1 0 obj garbage", "broken.pdf", CorruptDocument, "PDF"),
        (b"not a pdf at all", "fake.pdf", CorruptDocument, "no %PDF header"),
        (b"PK\x03\x04 not really a zip", "broken.docx", CorruptDocument, ".docx"),
        (b"", "empty.md", EmptyDocument, "empty"),
        (b"   \n\n  ", "blank.txt", EmptyDocument, "empty"),
        (b"# Only a heading\n", "heading.md", EmptyDocument, "no text"),
        ("caf\u00e9 cr\u00e8me".encode("latin-1"), "latin1.txt", BadEncoding, "UTF-8"),
        (b"text\x00\x01\x02binary", "binary.md", BadEncoding, "NUL"),
        (b"hello", "image.png", UnsupportedType, "'.png'"),
        (b"hello", "Makefile", UnsupportedType, "no extension"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(data: bytes, name: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        load_document(data, name)
    assert fragment in str(info.value)


def test_size_limit_and_stable_codes() -> None:
    with pytest.raises(DocumentTooLarge) as info:
        load_document(b"x" * 2000, "big.txt", max_bytes=1000)
    assert info.value.code == "file_too_large"
    assert media_type_for("A.HTM") == "text/html"
    assert UnsupportedType("x").code == "unsupported_type"
