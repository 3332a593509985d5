"""HTML -> blocks with the standard library's parser (no network, no scripts run).

Headings h1-h6, paragraphs, list items (one list block per list), ``pre`` (kept
verbatim as code) and tables (one row per line, cells joined by `` | ``). Text in
other block containers (div, section, ...) becomes paragraphs. script, style, nav,
template, head content other than ``title`` and HTML comments are dropped.
"""

from __future__ import annotations

from html.parser import HTMLParser

from retrieval.loaders.text import clean_line
from retrieval.types import Block, BlockKind, Location

_SKIP = {"script", "style", "noscript", "template", "nav", "svg", "iframe", "object"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote",
    "dd", "dt", "dl", "figure", "figcaption", "form", "fieldset", "address", "details",
    "summary", "body", "html",
}  # fmt: skip
_VOID = {
    "br",
    "hr",
    "img",
    "input",
    "meta",
    "link",
    "area",
    "base",
    "col",
    "embed",
    "source",
    "wbr",
}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title = ""
        self._skip_depth = 0
        self._in_title = False
        self._in_head = False
        self._pre_depth = 0
        self._buf: list[str] = []
        self._buf_start: int | None = None
        self._heading: int | None = None
        self._list_depth = 0
        self._list_items: list[str] = []
        self._list_start: int | None = None
        self._table_depth = 0
        self._rows: list[str] = []
        self._cells: list[str] = []
        self._table_start: int | None = None

    # -- helpers -----------------------------------------------------------------
    def _line(self) -> int:
        return self.getpos()[0]

    def _text(self) -> str:
        raw = "".join(self._buf)
        if self._pre_depth:
            return raw.strip("\n")
        return clean_line(raw)

    def _flush(self, kind: BlockKind = BlockKind.PARAGRAPH, level: int = 0) -> None:
        text = self._text()
        start = self._buf_start if self._buf_start is not None else self._line()
        self._buf, self._buf_start = [], None
        if not text:
            return
        if self._table_depth:
            self._cells.append(text)
        elif self._list_depth:
            self._list_items.append(text)
        else:
            self.blocks.append(Block(kind, text, Location(start_line=start, end_line=self._line()), level))

    # -- HTMLParser callbacks ------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        if tag == "head":
            self._in_head = True
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADINGS:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag == "pre":
            self._flush()
            self._pre_depth += 1
        elif tag in ("ul", "ol"):
            if not self._list_depth and not self._table_depth:
                self._flush()
                self._list_start = self._line()
            else:
                self._flush()
            self._list_depth += 1
        elif tag == "li":
            self._flush()
        elif tag == "table":
            self._flush()
            if not self._table_depth:
                self._table_start = self._line()
            self._table_depth += 1
        elif tag == "tr":
            self._cells = []
        elif tag in ("td", "th"):
            self._flush()
        elif tag == "br":
            self._buf.append("\n" if self._pre_depth else " ")
        elif tag in _BLOCK:
            self._flush()
        if tag not in _VOID and self._buf_start is None and not self._in_head:
            self._buf_start = self._line()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br" and not self._skip_depth:
            self._buf.append("\n" if self._pre_depth else " ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if self._skip_depth:
            return
        if tag == "head":
            self._in_head = False
            self._buf, self._buf_start = [], None
        elif tag == "title":
            self._in_title = False
        elif tag in _HEADINGS:
            level = self._heading or _HEADINGS[tag]
            self._heading = None
            self._flush(BlockKind.HEADING, level)
        elif tag == "pre":
            self._flush(BlockKind.CODE)
            self._pre_depth = max(0, self._pre_depth - 1)
        elif tag in ("ul", "ol"):
            self._flush()
            self._list_depth = max(0, self._list_depth - 1)
            if not self._list_depth and self._list_items:
                body = "\n".join(f"- {item}" for item in self._list_items)
                start = self._list_start or self._line()
                loc = Location(start_line=start, end_line=self._line())
                if self._table_depth:
                    self._cells.append(body.replace("\n", " "))
                else:
                    self.blocks.append(Block(BlockKind.LIST, body, loc))
                self._list_items = []
        elif tag in ("li", "td", "th"):
            self._flush()
        elif tag == "tr":
            self._flush()
            if self._cells:
                self._rows.append(" | ".join(self._cells))
            self._cells = []
        elif tag == "table":
            self._flush()
            self._table_depth = max(0, self._table_depth - 1)
            if not self._table_depth and self._rows:
                start = self._table_start or self._line()
                loc = Location(start_line=start, end_line=self._line())
                self.blocks.append(Block(BlockKind.TABLE, "\n".join(self._rows), loc))
                self._rows = []
        elif tag in _BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._in_title:
            self.title += data
            return
        if self._in_head:
            return
        if self._buf_start is None and data.strip():
            self._buf_start = self._line()
        self._buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_blocks(text: str) -> tuple[str, list[Block]]:
    """(the ``<title>`` text or "", blocks). Malformed markup is parsed leniently."""
    parser = _Parser()
    parser.feed(text)
    parser.close()
    return clean_line(parser.title), parser.blocks
