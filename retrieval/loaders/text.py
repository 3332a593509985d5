"""Plain text: decoding rules shared by every text format, and the .txt block parser.

Plain text has no markup, so structure is inferred: blank lines separate paragraphs,
the first line is the title, and short unpunctuated lines that stand alone or open a
paragraph are headings ("3. ISSUING THE HOLD", "Scope"). Underlined lines (``===`` /
``---``) are headings too.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

from retrieval.errors import BadEncoding
from retrieval.types import Block, BlockKind, Location

_LIST_ITEM = re.compile(r"^\s*(?:[-*+\u2022]|\[[ xX]?\]|\d{1,3}[.)]|[a-z][.)])\s+")
_UNDERLINE = re.compile(r"^\s*(=+|-+)\s*$")
_TERMINAL = ".!?,;:"
_HEADING_MAX = 80
_OPENER_MAX = 60


def decode_text(data: bytes) -> str:
    """Bytes -> text with ``\\n`` newlines. Raises BadEncoding.

    Accepts UTF-8 (with or without BOM) and UTF-16 with a BOM. Anything else, including
    binary data in a text file, is refused rather than guessed: a wrong guess indexes
    mojibake that nobody can find again.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise BadEncoding(f"invalid UTF-16 text at byte {exc.start}") from None
    else:
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        if b"\x00" in data[:65536]:
            raise BadEncoding("the file contains NUL bytes: binary data, not text")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadEncoding(
                f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the file as UTF-8"
            ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def clean_line(line: str) -> str:
    """Collapse runs of whitespace inside a line and strip its ends."""
    return " ".join(line.split())


def is_list_item(line: str) -> bool:
    return bool(_LIST_ITEM.match(line))


def _headingish(line: str, limit: int) -> bool:
    stripped = line.strip()
    if not (0 < len(stripped) <= limit and stripped[-1] not in _TERMINAL):
        return False
    marker = _LIST_ITEM.match(stripped)
    rest = stripped[marker.end() :] if marker else stripped
    # "3. ISSUING THE HOLD" is a numbered section heading, "3. Restart the pod" a list item.
    if ": " in rest and not rest.isupper():
        return False  # "Owner: Miriam Osei" is a field, not a heading
    return any(c.isalpha() for c in rest) and (marker is None or rest.isupper())


def paragraphs(lines: list[str], first_line: int = 1) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number of the first line, lines) per blank-line-separated run."""
    start: int | None = None
    run: list[str] = []
    for offset, line in enumerate(lines):
        if line.strip():
            if start is None:
                start = first_line + offset
            run.append(line)
        elif run:
            assert start is not None
            yield start, run
            start, run = None, []
    if run:
        assert start is not None
        yield start, run


def text_blocks(text: str, *, page: int | None = None, first_is_title: bool = True) -> list[Block]:
    """Blocks of a plain-text body (see the module docstring for the heuristics)."""
    blocks: list[Block] = []
    title_seen = not first_is_title

    def loc(start: int, end: int) -> Location:
        return Location(start_line=start, end_line=end, page=page)

    runs = list(paragraphs(text.split("\n")))
    for index, (start, run) in enumerate(runs):
        last = index == len(runs) - 1
        # An underlined heading: "Title" then "=====".
        if len(run) >= 2 and _UNDERLINE.match(run[1]) and _headingish(run[0], _HEADING_MAX):
            level = 1 if run[1].strip().startswith("=") and not title_seen else 2
            title_seen = True
            blocks.append(Block(BlockKind.HEADING, clean_line(run[0]), loc(start, start), level))
            run, start = run[2:], start + 2
            if not run:
                continue
        if not title_seen:
            title_seen = True
            if len(run[0].strip()) <= 150:
                blocks.append(Block(BlockKind.HEADING, clean_line(run[0]), loc(start, start), 1))
                run, start = run[1:], start + 1
                if not run:
                    continue
        # A lone short line heads what follows (a final one is just a short paragraph).
        if len(run) == 1 and not last and _headingish(run[0], _HEADING_MAX):
            blocks.append(Block(BlockKind.HEADING, clean_line(run[0]), loc(start, start), 2))
            continue
        if len(run) > 1 and _headingish(run[0], _OPENER_MAX):
            blocks.append(Block(BlockKind.HEADING, clean_line(run[0]), loc(start, start), 2))
            run, start = run[1:], start + 1
        kind = BlockKind.LIST if all(is_list_item(r) or r[:1].isspace() for r in run) else None
        body = "\n".join(clean_line(r) for r in run)
        blocks.append(Block(kind or BlockKind.PARAGRAPH, body, loc(start, start + len(run) - 1)))
    return blocks
