"""Snippets: the part of a chunk that best matches the query, for citations."""

from __future__ import annotations

import re
from functools import lru_cache

from retrieval.tokenize import tokenize

_UNITS = re.compile(r"(?<=[.!?])\s+|\n+")


@lru_cache(maxsize=4096)
def _units(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """``text``'s sentences (or lines) with their terms. The same chunks are cited request
    after request, and this part does not depend on the query: it is kept (by text, so
    an edited chunk is split anew); ~0.1 CPU-ms per passage saved."""
    units = (u.strip() for u in _UNITS.split(text))
    return tuple((u, frozenset(tokenize(u))) for u in units if u)


def snippet(text: str, query: str, max_chars: int = 240) -> str:
    """About ``max_chars`` of ``text`` around the sentence sharing most query terms.

    Sentences (or lines) are kept whole where they fit; an ellipsis marks text left
    out at either end. With no shared term the snippet is the start of the text.
    """
    text = text.strip()
    if len(text) <= max_chars:
        return text
    split = _units(text)
    units = [unit for unit, _ in split]
    terms = frozenset(tokenize(query))
    scores = [len(terms & unit_terms) for _, unit_terms in split]
    best = max(range(len(units)), key=lambda i: (scores[i], -i))
    start = end = best
    size = len(units[best])
    while True:
        grew = False
        if end + 1 < len(units) and size + 1 + len(units[end + 1]) <= max_chars:
            end += 1
            size += 1 + len(units[end])
            grew = True
        if start > 0 and size + 1 + len(units[start - 1]) <= max_chars:
            start -= 1
            size += 1 + len(units[start])
            grew = True
        if not grew:
            break
    body = " ".join(units[start : end + 1])
    if len(body) > max_chars:
        cut = body.rfind(" ", 0, max_chars - 1)
        body = body[: cut if cut > max_chars // 2 else max_chars - 1].rstrip()
        end = len(units)  # force the trailing ellipsis
    prefix = "... " if start > 0 else ""
    suffix = " ..." if end < len(units) - 1 or end == len(units) else ""
    return f"{prefix}{body}{suffix}"
