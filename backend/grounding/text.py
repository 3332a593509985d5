"""Answer and passage text: claims with their offsets, citation markers, content words.

Standard library only. Offsets are character offsets into the text given, so that a
claim's ``text == answer[start:end]`` always holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s*#{1,6}\s")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_QUOTE_MARKER = re.compile(r"^\s*>\s?")
# A sentence ends at . ! ? (and the citation markers right after it), before space.
# Not after common abbreviations or a single capital (initials), nor inside "1.5".
_END = re.compile(
    r"(?<![A-Z])(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)(?<!\bNo)[.!?](?:\s*\[\s*\d[\d,; ]*\])*(?=\s+|$)"
)

# Sentences that carry no claim: greetings, offers, sign-offs, meta about the answer.
_NOT_A_CLAIM = re.compile(
    r"^\W*(?:hi|hello|hey|thanks?|thank you|sure|great question|good question|of course|certainly|absolutely"
    r"|i hope (?:this|that) helps|hope (?:this|that) helps|let me know|feel free|happy to help|glad to help"
    r"|please let me know|is there anything else|if you have (?:any )?(?:other |more |further )?questions"
    r"|here(?:'s| is| are) (?:what|a summary|the|how)|in summary|to summari[sz]e|sources?|references?"
    r"|based on the (?:cited |provided )?(?:passages|documents|sources)(?: provided)?[,:]?$)\b",
    re.IGNORECASE,
)

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "either",
        "else",
        "ever",
        "every",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "lets",
        "may",
        "me",
        "might",
        "more",
        "most",
        "must",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "one",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "per",
        "please",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "very",
        "via",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "whether",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "within",
        "would",
        "yes",
        "yet",
        "you",
        "your",
        "yours",
        "get",
        "gets",
        "got",
        "make",
        "makes",
        "made",
        "use",
        "used",
        "using",
        "need",
        "needs",
        "needed",
        "like",
        "also",
        "etc",
        "e",
        "g",
        "ie",
        "eg",
    ]
)
# Values are checked as facts (facts.py), not as words.
NUMBER_WORDS = frozenset(
    [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
        "hundred",
        "thousand",
        "dozen",
        "twice",
        "once",
    ]
)


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of text and where it lies in the text it was cut from."""

    start: int
    end: int
    text: str


def cited(text: str) -> frozenset[int]:
    """The citation numbers in ``text``: ``[1]``, ``[2, 3]`` and ``[4; 5]`` all count."""
    numbers: set[int] = set()
    for match in CITATION.finditer(text):
        numbers.update(int(n) for n in re.split(r"\s*[,;]\s*", match.group(1)))
    return frozenset(numbers)


def without_citations(text: str) -> str:
    return CITATION.sub(" ", text)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Each line with its offset, the code inside fences left out."""
    offset = 0
    in_code = False
    for line in text.splitlines(keepends=True):
        start = offset
        offset += len(line)
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code or (line.startswith(("    ", "\t")) and not _LIST_MARKER.match(line)):
            continue  # fenced or indented code is not a claim
        yield start, line.rstrip("\r\n")


def units(text: str) -> Iterator[Span]:
    """The text's sentences: per line (list items, table rows and quotes lose their
    markers), then split at sentence ends; headings, table rules and code are left out."""
    for start, line in _lines(text):
        if not line.strip() or _HEADING.match(line) or _TABLE_RULE.match(line):
            continue
        body = line
        for marker in (_QUOTE_MARKER, _LIST_MARKER):
            m = marker.match(body)
            if m:
                body = body[m.end() :]
        offset = start + len(line) - len(body)
        if body.lstrip().startswith("|"):
            # A table row: its cells read as one statement ("Invoices | 7 years").
            yield from _trimmed(start + len(line) - len(body), body)
            continue
        cut = 0
        for m in _END.finditer(body):
            yield from _trimmed(offset + cut, body[cut : m.end()])
            cut = m.end()
        yield from _trimmed(offset + cut, body[cut:])


def _trimmed(offset: int, piece: str) -> Iterator[Span]:
    stripped = piece.strip()
    if not stripped:
        return
    lead = len(piece) - len(piece.lstrip())
    yield Span(offset + lead, offset + lead + len(stripped), stripped)


def is_claim(sentence: str) -> bool:
    """Whether a sentence states something to check: not a question, greeting, offer,
    label ("Steps:") or a bare list of sources."""
    plain = without_citations(sentence).strip().strip("*_`\"' |")
    if not plain or plain.endswith("?"):
        return False
    if _NOT_A_CLAIM.match(plain):
        return False
    words = content_words(plain)
    if plain.endswith(":") and len(words) < 6:
        return False
    return len(words) >= 2 or any(ch.isdigit() for ch in plain)


_WORD = re.compile(r"[a-z][a-z0-9']*(?:-[a-z0-9]+)*")


def content_words(text: str) -> list[str]:
    """Lowercased words that are not stopwords (hyphenated words split into parts)."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        for part in word.replace("'s", "").split("-"):
            if len(part) > 1 and part not in STOPWORDS and part not in NUMBER_WORDS:
                out.append(part)
    return out


_SUFFIXES = (
    "ational",
    "ization",
    "ations",
    "ation",
    "ments",
    "ment",
    "ness",
    "ings",
    "ing",
    "ies",
    "ied",
    "ers",
    "er",
    "ed",
    "es",
    "ly",
    "s",
)


def stem(word: str) -> str:
    """A light stem: one common suffix off, then the first five letters ("refunds",
    "refunded" -> "refun"). Crude on purpose: it only has to make most inflections of
    one word meet; the encoder judges paraphrase."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:5]


def stems(text: str) -> set[str]:
    return {stem(w) for w in content_words(text)}
