"""Answers quoted from the passages: the sentences that answer the question, each cited.

Used three ways (issue 22): *quote-first* (a small model's answer is preceded by what the
documents say, so the right facts come first), *quote* on a failed grounding check (the
answer is replaced by the quotes), and *refuse* (the documents do not answer it: the
closest passages are shown instead).

Sentence choice is lexical and cheap: a passage sentence scores by the question's
content words it holds (lightly stemmed, rarer words count more), plus a little for the
passage's rank. Retrieval already put the right documents first; this picks the lines
within them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from backend.knowledge.types import RetrievedPassage

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n{2,}|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
_STOP_WORDS = """a an and are as at be by can could do does for from has have how i if in is it its
me my of on or our should so that the their them then there these they this to was we
what when where which who why will with would you your about after before into than
any all also just more most much not no only other some such very may might must
please tell know need want get got use using used"""
_STOP = frozenset(_STOP_WORDS.split())
MIN_WORDS = 6
# A question asking for an amount, a time or a limit is answered by a sentence that states one.
_QUANTITY = re.compile(
    r"\b(how (long|many|much|often|soon|fast|far)|when|what (day|time|date)|deadline|limit|maximum|minimum|"
    r"within|days?|hours?|weeks?|months?|years?|minutes?|percent|price|cost|fee)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d")
QUOTE_INTRO = "From the documents:"
DRAFT_HEADING = "The model's answer (a draft, not checked by a person):"
CORRECTION = "The answer above is not supported by the documents it cites. What they say:"


def _stem(word: str) -> str:
    word = word.lower().strip("'-")
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text) if w.lower() not in _STOP and len(w) > 1}


def sentences(text: str) -> list[str]:
    """The sentences (and list items) of a passage; headings and fragments of fewer than
    MIN_WORDS words (a heading without its '#', a table label) dropped: they say nothing."""
    out = []
    for piece in _SENTENCE_END.split(text):
        line = " ".join(piece.split()).lstrip("-*• ").strip()
        if not line or line.startswith("#") or len(line.split()) < MIN_WORDS:
            continue
        out.append(line)
    return out


@dataclass(frozen=True, slots=True)
class Quote:
    number: int  # the passage's citation number
    text: str
    score: float


def best_quotes(question: str, passages: Sequence[RetrievedPassage], limit: int = 4) -> list[Quote]:
    """Up to ``limit`` passage sentences that answer ``question`` best (none that share no
    content word with it), in passage order. A passage the safety check flagged (an
    instruction hidden in a document: docs/safety.md) is never quoted: the model reads
    it fenced as data, and its words do not become the answer's."""
    asked = content_words(question)
    if not asked or not passages:
        return []
    wants_quantity = bool(_QUANTITY.search(question))
    candidates = [(p, s) for p in passages if not p.flagged for s in sentences(p.text)]
    # Rarer words weigh more: a word found in every candidate sentence says little.
    df: dict[str, int] = {}
    words = [content_words(s) for _, s in candidates]
    for ws in words:
        for w in ws & asked:
            df[w] = df.get(w, 0) + 1
    scored = []
    for (passage, sentence), ws in zip(candidates, words, strict=True):
        shared = ws & asked
        if not shared:
            continue
        score = sum(math.log(1 + len(candidates) / df[w]) for w in shared) + 0.3 / passage.number
        if wants_quantity and _NUMBER.search(sentence):
            score += 1.0
        scored.append(Quote(passage.number, sentence, score))
    chosen = sorted(scored, key=lambda q: -q.score)[:limit]
    return sorted(chosen, key=lambda q: (q.number, -q.score))


def quoted_answer(quotes: Sequence[Quote]) -> str:
    """The quotes as an answer: one line each, cited."""
    lines = [QUOTE_INTRO]
    lines += [f"> {q.text} [{q.number}]" for q in quotes]
    return "\n".join(lines)


def with_draft(quotes: Sequence[Quote], draft: str) -> str:
    """Quote-first: the quotes, then the model's text marked as a draft."""
    if not quotes:
        return draft
    return f"{quoted_answer(quotes)}\n\n{DRAFT_HEADING}\n\n{draft}"


def refusal(passages: Sequence[RetrievedPassage], limit: int = 3) -> str:
    """What is said when the documents do not answer the question: the closest passages."""
    lines = ["The documents I can search do not clearly answer this. The closest passages:"]
    for p in list(passages)[:limit]:
        text = " ".join(p.text.split())
        if len(text) > 300:
            text = text[:300].rsplit(" ", 1)[0] + " …"
        lines.append(f"- {p.title}: {text} [{p.number}]")
    return "\n".join(lines)
