"""What decides whether two requests may share an answer.

A cached answer is kept under a *scope*: a hash of everything about the expert and
the request that changes the answer besides the question itself: the expert, its
model, system prompt and generation parameters as configured, the request's
``max_tokens`` and ``temperature`` (the expert's defaults when unset), the quoting and
grounding policy, the encoder that embedded the question, and the version of the
expert's own index. Publishing that index
gives a new scope, so answers from the old version are never looked at again. Other
indexes an answer searched (peer experts in the router's top-k) are checked per entry
(``CachedAnswer.index_versions``).

Within a scope, a question matches by its normalised text (exact) or by the router's
embedding (semantic, at the expert's threshold).

Eligibility is two-sided:

- :func:`lookup_skip` says why a request may not be answered from the cache;
- :func:`store_skip` says why an answer may not be kept: only whole, delivered,
  approved answers of the decided expert are.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence

import orjson

from backend.knowledge.types import Retrieval
from experts.registry import ExpertSpec

_SPACE = re.compile(r"\s+")
_TRAILING = " ?!.,;:"


def normalise(text: str) -> str:
    """The question as compared for an exact match: case-folded, whitespace collapsed,
    trailing punctuation dropped ("How do I reset my password?" = "how do i reset my
    password")."""
    return _SPACE.sub(" ", text.casefold()).strip().rstrip(_TRAILING)


def text_key(text: str) -> str:
    return hashlib.sha256(normalise(text).encode()).hexdigest()[:32]


def scope_key(
    spec: ExpertSpec,
    *,
    temperature: float | None,
    max_tokens: int | None,
    index_version: str | None,
    encoder: str | None,
) -> str:
    """The partition an answer of ``spec`` is kept under, for a request that asked for
    ``temperature`` and ``max_tokens`` (None: the expert's own) while the expert's index
    was at ``index_version`` (module docstring). ``encoder``: the model that made the
    question's embedding; embeddings of two models are never compared."""
    params = spec.params
    parts = {
        "expert": spec.name,
        "model": spec.llm.model,
        "system_prompt": spec.system_prompt,
        "temperature": params.temperature if temperature is None else temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens if max_tokens is None else max_tokens,
        "quote_first": spec.quotes_first,
        "grounding": spec.grounding.model_dump(),
        "index": spec.index,
        "index_version": index_version,
        "encoder": encoder,
    }
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
    return f"{spec.name}:{digest}"


_WORD = re.compile(r"[^\W_]+")


def details(question: str) -> set[str]:
    """The question's details that are someone's own, as an answer might repeat them: words
    with a digit (an employee number, a ticket) and capitalised words after the first
    (a name, a project), case-folded."""
    words = _WORD.findall(question)
    named = {w for i, w in enumerate(words) if i > 0 and len(w) > 1 and w[0].isupper()}  # not "I"
    return {w.casefold() for w in words if any(c.isdigit() for c in w) or w in named}


def carries_other_details(cached_question: str, question: str, answer: str) -> bool:
    """Whether ``answer`` (to ``cached_question``) repeats a detail of that question which
    ``question`` does not hold: replaying it would hand one asker's details (their
    employee number, their project) to another whose question only resembles theirs."""
    own = details(cached_question) - {w.casefold() for w in _WORD.findall(question)}
    return bool(own) and not own.isdisjoint(w.casefold() for w in _WORD.findall(answer))


# Words whose swap rarely changes what is asked ("how do I" / "how can I"): a swap of
# these alone is no near miss.
# fmt: off
_FUNCTION_WORDS = frozenset({
    "a", "an", "the", "i", "we", "you", "he", "she", "it", "they", "me", "us", "my", "our", "your",
    "his", "her", "its", "their", "this", "that", "these", "those", "is", "are", "was", "were",
    "be", "been", "am", "do", "does", "did", "can", "could", "should", "would", "will", "shall",
    "may", "might", "must", "how", "what", "when", "where", "which", "who", "why", "to", "of",
    "in", "on", "at", "for", "from", "by", "with", "about", "as", "and", "or", "please", "there",
    "here", "some", "any",
})
# fmt: on


def swaps_a_word(cached_question: str, question: str) -> bool:
    """Whether the two questions are the same sentence with a word or two swapped ("the
    yearly *annual* leave allowance" / "the yearly *parental* leave allowance"): a near
    miss whose vectors sit as close as a paraphrase's, since one word carries the
    difference. Each side must have a content word the other lacks (not only a function
    word), at most two, and share at least twice as many words as either has of its own.
    A paraphrase in other words shares too little to count; one that swaps a synonym
    ("keep" / "retain") counts, and costs a hit, not a wrong answer."""
    a = {w.casefold() for w in _WORD.findall(cached_question)}
    b = {w.casefold() for w in _WORD.findall(question)}
    only_a, only_b = a - b, b - a
    if not (only_a - _FUNCTION_WORDS) or not (only_b - _FUNCTION_WORDS):
        return False
    most = max(len(only_a), len(only_b))
    return most <= 2 and len(a & b) >= 2 * most


def acl_variant(cited_groups: Iterable[frozenset[str]]) -> str:
    """Which callers an answer is for, as the groups its cited documents are restricted
    to ("" when it cites only documents open to everyone): answers to one question by
    callers who could read different documents are kept side by side (store.py)."""
    restricted = sorted({",".join(sorted(g)) for g in cited_groups if g})
    if not restricted:
        return ""
    return hashlib.sha256("|".join(restricted).encode()).hexdigest()[:16]


def lookup_skip(*, conversation_id: str | None, roles: Sequence[str], pii: bool) -> str | None:
    """Why a request is not answered from (nor kept in) the cache; None: it may be.

    Only a first turn is: one user message, no conversation to continue, no earlier
    turns and no system message, none of which the scope holds. Nor a question with
    PII in it: its text would be kept (and compared) as is, and the expert's PII policy
    (which may block it) is applied on the way to the LLM, not here.
    """
    if conversation_id is not None or list(roles) != ["user"]:
        return "not_first_turn"
    if pii:
        return "pii"
    return None


def store_skip(
    *,
    decided: str,
    expert: str,
    fallbacks: int,
    finish_reason: str,
    held: bool,
    retrieval: Retrieval,
    grounding: Mapping[str, object] | None,
    output: Mapping[str, int] | None,
) -> str | None:
    """Why an answer is not kept; None: it is a whole, delivered, approved answer of the
    expert the request was decided for."""
    if expert != decided or fallbacks:
        return "fallback"
    if finish_reason != "stop":  # cut at max_tokens, or the extractive answer
        return "finish_reason"
    if held:
        return "review"
    if retrieval.degraded is not None:
        return "retrieval_degraded"
    if retrieval.passages and grounding is None:  # the check failed: delivered unchecked
        return "unchecked"
    if grounding is not None and grounding.get("action", "none") != "none":
        return "grounding"
    if output and any(output.values()):  # something was scrubbed from it
        return "output_scrubbed"
    return None
