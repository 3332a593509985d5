"""Phone-number candidates found in linear time: the grammar is parsed, not backtracked.

The two phone shapes below were once single regexes, ``\\+\\d{1,3}(?:[ .-]?\\(?\\d{1,5}\\)?){1,6}``
and ``(?:0\\d{1,4}|\\(0\\d{1,4}\\))(?:[ -]?\\d{2,8}){1,4}``, each followed by the boundary
``(?![\\w-]|\\.\\d)``. Their digit groups have no separator between them, so a run of
digits can be split into groups in thousands of ways, and Python's regex engine tried
every split at every ``+`` before giving up: 0.5 s of CPU for 5,000 characters of
``+12345678901234567890-``. Here each digit run is read once, whole, and the question
the regex answered by trial is answered by arithmetic: a run of ``n`` digits needs at
least ``ceil(n / size)`` groups of at most ``size`` digits, and a match may end only
where a digit run (or a closing parenthesis) ends.

Both functions return the span the old regex matched, exactly: the furthest end that a
legal split reaches and that the boundary accepts (the engine tried longer matches
first). Each scan stops at the first character outside ``[0-9 .()+-]``, so scans from
different starts never overlap and the cost is linear in the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Where a match may not end: before a word character or '-', or before ".<digit>".
_BAD_END = re.compile(r"[\w-]|\.\d")

_INTL_START = re.compile(r"(?<![\w+])\+(?=\d)")
_INTL_FIRST = re.compile(r"(\d+)(\)?)")
_INTL_PART = re.compile(r"[ .-]?\(?(\d+)(\)?)")
_INTL_COUNTRY_DIGITS = 3
_INTL_GROUP_DIGITS = 5
_INTL_GROUPS = 6

# Zero-width, so "(020) ..." yields both the '(' and the '0' as starts (the old regex,
# failing at '(', tried again at '0').
_NATIONAL_START = re.compile(r"(?<![\w.-])(?=\(0\d|0\d)")
_DIGITS = re.compile(r"\d+")
_NATIONAL_PART = re.compile(r"[ -]?(\d+)")
_NATIONAL_PREFIX_DIGITS = 5  # "0" and up to four more
_NATIONAL_GROUP_MIN, _NATIONAL_GROUP_MAX = 2, 8
_NATIONAL_GROUPS = 4


def _groups(n: int, size: int) -> int:
    return -(-n // size)


def _furthest(text: str, ends: list[int]) -> int | None:
    """The last of ``ends`` (in the order given, nearest first) that may end a match."""
    for end in reversed(ends):
        if not _BAD_END.match(text, end):
            return end
    return None


def international(text: str) -> Iterator[tuple[int, int]]:
    """Spans of ``+CC`` numbers: country code of 1-3 digits, then 1-6 groups of 1-5
    digits, each after an optional ``[ .-]`` and optionally in parentheses."""
    resume = 0
    for start in _INTL_START.finditer(text):
        s = start.start()
        if s < resume:
            continue
        first = _INTL_FIRST.match(text, s + 1)
        assert first is not None  # the start's lookahead saw a digit
        digits = len(first.group(1))
        # The country code takes up to three digits of the first run, groups the rest.
        used = _groups(max(0, digits - _INTL_COUNTRY_DIGITS), _INTL_GROUP_DIGITS)
        ends: list[int] = [first.end(1)] if used <= _INTL_GROUPS else []
        pos = first.end(1)
        if first.group(2) and digits > 1:
            # A ')' closes a group, so the run holds one even when the code could take it all.
            used = max(used, 1)
            if used <= _INTL_GROUPS:
                ends.append(first.end(2))
            pos = first.end(2)
        while used <= _INTL_GROUPS:
            part = _INTL_PART.match(text, pos)
            if part is None:
                break
            used += _groups(len(part.group(1)), _INTL_GROUP_DIGITS)
            if used > _INTL_GROUPS:
                break
            ends.append(part.end(1))
            if part.group(2):
                ends.append(part.end(2))
            pos = part.end()
        end = _furthest(text, ends)
        if end is not None:
            resume = end
            yield s, end


def national(text: str) -> Iterator[tuple[int, int]]:
    """Spans of national numbers: ``0`` and 1-4 digits (or that in parentheses), then
    1-4 groups of 2-8 digits, each after an optional ``[ -]``."""
    resume = 0
    for start in _NATIONAL_START.finditer(text):
        s = start.start()
        if s < resume:
            continue
        if text[s] == "(":
            prefix = _DIGITS.match(text, s + 1)
            assert prefix is not None
            if not 2 <= len(prefix.group()) <= _NATIONAL_PREFIX_DIGITS or not text.startswith(")", prefix.end()):
                continue
            pos, used = prefix.end() + 1, 0
        else:
            prefix = _DIGITS.match(text, s)
            assert prefix is not None
            # The prefix takes up to five digits; the rest of the run goes to groups.
            rest = max(0, len(prefix.group()) - _NATIONAL_PREFIX_DIGITS)
            pos, used = prefix.end(), _groups(rest, _NATIONAL_GROUP_MAX)
        ends: list[int] = [pos] if 1 <= used <= _NATIONAL_GROUPS else []
        while used <= _NATIONAL_GROUPS:
            part = _NATIONAL_PART.match(text, pos)
            if part is None or len(part.group(1)) < _NATIONAL_GROUP_MIN:
                break
            used += _groups(len(part.group(1)), _NATIONAL_GROUP_MAX)
            if used > _NATIONAL_GROUPS:
                break
            ends.append(part.end())
            pos = part.end()
        end = _furthest(text, ends)
        if end is not None:
            resume = end
            yield s, end
