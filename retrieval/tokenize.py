"""BM25 tokenisation: lowercase word tokens, English stop words out, light stemming.

The stemmer only folds the commonest English inflections (plural -s/-es/-ies, -ing,
-ed) so that "refunds", "refunded" and "refunding" meet "refund"; it never produces a
token shorter than three characters. Identifiers keep their parts and their whole:
"router-svc" gives ``router``, ``svc`` and ``router-svc``; "HL-2025-000123" gives its
parts and the whole, so exact codes match.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:[-_./][a-z0-9]+)*")
_PART = re.compile(r"[a-z0-9]+")

STOPWORDS = frozenset(
    {
        "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
        "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
        "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
        "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
        "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself",
        "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on",
        "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same",
        "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
        "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
        "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
        "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself",
        "yourselves",
    }
)  # fmt: skip


def stem(word: str) -> str:
    """Fold common English suffixes (see the module docstring)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "")):
        if word.endswith(suffix) and len(word) - len(suffix) + len(replacement) >= 3:
            base = word[: -len(suffix)] + replacement
            doubled = len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz"
            if suffix in ("ing", "ed") and doubled:
                base = base[:-1]  # "stopped" -> "stop", "running" -> "run"
            if suffix == "es" and not base.endswith(("ss", "x", "z", "ch", "sh")):
                base = word[:-1]  # "invoices" -> "invoice", "boxes" -> "box"
            return base
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Tokens of ``text`` for BM25 (order kept, duplicates kept)."""
    tokens: list[str] = []
    for match in _WORD.finditer(text.lower()):
        whole = match.group()
        parts = _PART.findall(whole)
        for part in parts:
            if part not in STOPWORDS:
                tokens.append(stem(part))
        if len(parts) > 1:
            tokens.append(whole)
    return tokens
