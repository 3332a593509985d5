"""The checkable facts of a sentence: numbers with their units, amounts, percentages,
times, and names. A fact is supported only when a cited passage states it as well.

Normalised so that one fact written two ways meets itself: "seven years", "7-year" and
"7 years" are all ``Fact("7", "year")``; "$5,000" and "USD 5000" are ``Fact("5000",
"usd")``; "30-day" is ``Fact("30", "day")``; "5 percent" is ``Fact("5", "%")``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from backend.grounding.text import CITATION, STOPWORDS

_ONES = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_NUMBER_WORD = re.compile(
    r"\b(?:(" + "|".join(_TENS) + r")(?:[- ](" + "|".join(k for k in _ONES if _ONES[k] < 10) + r"))?"
    r"|(" + "|".join(_ONES) + r")|(a dozen|a hundred|a thousand|twice|once))\b",
    re.IGNORECASE,
)
_PHRASES = {"a dozen": 12, "a hundred": 100, "a thousand": 1000, "twice": 2, "once": 1}

# Units a number may carry; the key is the written form's start, the value its name.
_UNITS = {
    "year": "year",
    "yr": "year",
    "month": "month",
    "week": "week",
    "day": "day",
    "business day": "day",
    "working day": "day",
    "calendar day": "day",
    "hour": "hour",
    "hr": "hour",
    "h": "hour",
    "minute": "minute",
    "min": "minute",
    "second": "second",
    "sec": "second",
    "s": "second",
    "ms": "millisecond",
    "millisecond": "millisecond",
    "%": "%",
    "percent": "%",
    "per cent": "%",
    "gb": "gb",
    "mb": "mb",
    "kb": "kb",
    "tb": "tb",
    "seat": "seat",
    "user": "user",
    "attempt": "attempt",
    "time": "time",
    "character": "character",
    "request": "request",
    "member": "member",
    "people": "person",
    "person": "person",
    "employee": "person",
    "usd": "usd",
    "eur": "eur",
    "gbp": "gbp",
    "dollar": "usd",
    "euro": "eur",
    "pound": "gbp",
    "x": "x",
}
_UNIT = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_CURRENCY_BEFORE = {"$": "usd", "usd": "usd", "us$": "usd", "€": "eur", "eur": "eur", "£": "gbp", "gbp": "gbp"}
_NUM = r"\d+(?:[.:]\d+)*"
# "USD 5,800", "$29", "€ 100"
_MONEY_BEFORE = re.compile(r"(us\$|\$|€|£|\busd\b|\beur\b|\bgbp\b)\s?(" + _NUM + ")", re.IGNORECASE)
# "7 years", "30-day", "5-10 business days" (the range gives both numbers the unit), "99.9%"
_NUMBER = re.compile(
    r"(?<![\w.])("
    + _NUM
    + r")(?:\s*(?:-|\u2013|to|or|and)\s*("
    + _NUM
    + r"))?(?:\s*-?\s*("
    + _UNIT
    + r")(?:e?s)?\b|\s*(%))?",
    re.IGNORECASE,
)
_UNIT_BEFORE = re.compile(r"\b(day|week|month|year)\s+$", re.IGNORECASE)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Fact:
    """One stated value: ``value`` normalised ("7", "5000", "1.5", "9:00"), ``unit``
    as named in :data:`_UNITS` or None for a bare number; ``kind`` is what the fact is
    ("number", "duration", "amount", "percentage", "name")."""

    value: str
    unit: str | None
    kind: str


_DURATIONS = frozenset({"year", "month", "week", "day", "hour", "minute", "second", "millisecond"})


def _kind(unit: str | None) -> str:
    if unit in _DURATIONS:
        return "duration"
    if unit in {"usd", "eur", "gbp"}:
        return "amount"
    if unit == "%":
        return "percentage"
    return "number"


def _words_to_digits(m: re.Match[str]) -> str:
    tens, ones, single, phrase = m.groups()
    if phrase:
        lowered = phrase.lower()
        return str(_PHRASES[lowered])
    if tens:
        return str(_TENS[tens.lower()] + (_ONES[ones.lower()] if ones else 0))
    return str(_ONES[single.lower()])


def _value(raw: str) -> str:
    """ "09:00" -> "9:00", "1.50" -> "1.5", "007" -> "7"."""
    if "." in raw and raw.count(".") == 1:
        whole, frac = raw.split(".")
        frac = frac.rstrip("0")
        return f"{int(whole)}.{frac}" if frac else str(int(whole))
    if ":" in raw:
        hours, rest = raw.split(":", 1)
        return f"{int(hours)}:{rest}"
    return str(int(raw))


def _sub(
    pattern: re.Pattern[str], repl: Callable[[re.Match[str]], str], text: str, src: list[tuple[int, int]]
) -> tuple[str, list[tuple[int, int]]]:
    """``pattern.sub(repl, text)`` that also carries ``src``: for each character, the
    span of the original text it came from."""
    parts: list[str] = []
    out_src: list[tuple[int, int]] = []
    last = 0
    for m in pattern.finditer(text):
        parts.append(text[last : m.start()])
        out_src.extend(src[last : m.start()])
        new = repl(m)
        if m.end() > m.start():
            origin = (src[m.start()][0], src[m.end() - 1][1])
        else:
            origin = src[m.start()] if m.start() < len(src) else (src[-1][1], src[-1][1])
        parts.append(new)
        out_src.extend([origin] * len(new))
        last = m.end()
    parts.append(text[last:])
    out_src.extend(src[last:])
    return "".join(parts), out_src


def normalise(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The text with number words as digits, no thousands separators, ordinals bare,
    citation markers blanked; and for each of its characters, the span of ``text`` it
    stands for."""
    text = CITATION.sub(lambda m: " " * len(m.group()), text)
    src = [(i, i + 1) for i in range(len(text))]
    text, src = _sub(_THOUSANDS, lambda m: "", text, src)
    text, src = _sub(_ORDINAL, lambda m: m.group(1), text, src)
    return _sub(_NUMBER_WORD, _words_to_digits, text, src)


def numbers(text: str) -> list[tuple[Fact, int, int]]:
    """The numeric facts in ``text``, each with its span in ``text``."""
    norm, src = normalise(text)
    found = _numbers(norm)
    return [(fact, src[s][0], src[e - 1][1]) for fact, s, e in found]


def _numbers(norm: str) -> list[tuple[Fact, int, int]]:
    out: list[tuple[Fact, int, int]] = []
    taken: list[tuple[int, int]] = []
    for m in _MONEY_BEFORE.finditer(norm):
        out.append((Fact(_value(m.group(2)), _CURRENCY_BEFORE[m.group(1).lower()], "amount"), m.start(), m.end()))
        taken.append((m.start(2), m.end(2)))
    for m in _NUMBER.finditer(norm):
        if any(s <= m.start(1) < e for s, e in taken):
            continue
        written = (m.group(3) or m.group(4) or "").lower()
        unit: str | None = _UNITS.get(written) if written else None
        before = _UNIT_BEFORE.search(norm, max(0, m.start() - 12), m.start())
        if unit is None and before:
            unit = before.group(1).lower()  # "day 30" of a timeline: a point in days
        values = [m.group(1)] + ([m.group(2)] if m.group(2) else [])
        for raw in values:
            out.append((Fact(_value(raw), unit, _kind(unit)), m.start(), m.end()))
    return out


_NAME = re.compile(
    r"(?<![\w'\u2019.-])([A-Z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*|[a-z]+[A-Z][A-Za-z0-9]*|[a-z0-9]+_[a-z0-9_]+)"
)
_CODE = re.compile(r"`([^`\n]+)`")
# Addresses and dotted identifiers ("dpo@example.com", "routing.solver_v3"): names even
# in lower case. A dot between digits is a decimal, not an identifier.
_IDENTIFIER = re.compile(
    r"(?<![\w.@+-])([\w.+-]+@[\w-]+(?:\.[\w-]+)+|[a-z][a-z0-9_]+(?:\.[a-z][a-z0-9_]+)+)", re.IGNORECASE
)
_MONTHS_DAYS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
)
# Capitalised words that are not names in an answer's prose.
_COMMON = STOPWORDS | frozenset(
    [
        "note",
        "yes",
        "no",
        "ok",
        "okay",
        "step",
        "steps",
        "first",
        "then",
        "next",
        "finally",
        "however",
        "also",
        "otherwise",
        "example",
        "answer",
        "summary",
        "important",
        "tip",
        "warning",
        "caution",
        "i",
        "usd",
        "eur",
        "gbp",
    ]
)


def names(sentence: str) -> list[tuple[str, int, int]]:
    """Names in ``sentence`` with their spans: capitalised words not at its start
    ("Legal Ops", "Finance"), words with capitals inside ("PagerDuty") or in capitals
    ("SAML"), snake_case and dotted identifiers, e-mail addresses, and inline code.
    Lowercased for comparison."""
    out: list[tuple[str, int, int]] = []
    code_spans = []
    for m in _CODE.finditer(sentence):
        out.append((m.group(1).strip().lower(), m.start(1), m.end(1)))
        code_spans.append((m.start(), m.end()))
    for m in _IDENTIFIER.finditer(sentence):
        if not any(s <= m.start() < e for s, e in code_spans):
            out.append((m.group(1).lower(), m.start(1), m.end(1)))
            code_spans.append((m.start(), m.end()))
    first = re.search(r"[A-Za-z0-9]", sentence)
    first_at = first.start() if first else -1
    for m in _NAME.finditer(sentence):
        word = m.group(1)
        if any(s <= m.start() < e for s, e in code_spans):
            continue
        lowered = word.lower()
        if lowered in _COMMON or lowered.rstrip("s") in _COMMON:
            continue
        start_of_clause = m.start() == first_at or re.search(r"(?:[:;.!?(\"“]|\*\*)\s*$", sentence[: m.start()])
        shouty = len(word) > 1 and (word.isupper() or any(c.isupper() for c in word[1:]) or "_" in word)
        if start_of_clause and not shouty and lowered not in _MONTHS_DAYS:
            continue  # a sentence's first word is capitalised anyway
        if word[0].isdigit():
            continue
        out.append((lowered, m.start(), m.end()))
    return out


def name_tokens(text: str) -> set[str]:
    """Every word and identifier of a passage, lowercased, for looking names up."""
    lowered = text.lower()
    tokens = set(re.findall(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*", lowered))
    for token in list(tokens):
        tokens.update(re.split(r"[-_.]", token))
    tokens.update(m.group(1).strip().lower() for m in _CODE.finditer(text))
    return tokens


def name_supported(name: str, tokens: set[str], passage_text: str) -> bool:
    """A name is stated when the passage has it as a word, its plural or singular, or
    (code, multi-word) as a substring."""
    if name in tokens or name.rstrip("s") in tokens or name + "s" in tokens or name + "es" in tokens:
        return True
    if _acronym_of(name, passage_text):
        return True
    return (" " in name or not name.isalnum()) and name in passage_text.lower()


def _acronym_of(name: str, passage_text: str) -> bool:
    """``msa`` for a passage saying "Master Services Agreement": the initials of
    consecutive words (three to six letters; shorter ones match too much by chance)."""
    if not (3 <= len(name) <= 6 and name.isalpha()):
        return False
    initials = "".join(word[0] for word in re.findall(r"[a-z]+", passage_text.lower()))
    return name in initials


def supported_numbers(facts: Iterable[Fact]) -> tuple[set[tuple[str, str | None]], set[str]]:
    """A passage's facts as (value, unit) pairs, and the bare values."""
    pairs: set[tuple[str, str | None]] = set()
    values: set[str] = set()
    for fact in facts:
        pairs.add((fact.value, fact.unit))
        values.add(fact.value)
    return pairs, values


def number_supported(fact: Fact, pairs: set[tuple[str, str | None]], values: set[str]) -> bool:
    """A number with a unit needs the same value with the same unit; a bare number
    needs the value in any form."""
    if fact.unit is None:
        return fact.value in values
    return (fact.value, fact.unit) in pairs
