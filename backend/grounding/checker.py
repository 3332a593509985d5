"""The grounding check: is each claim of an answer supported by the passages it cites?

A claim is one sentence of the answer (a list item, a table row) that states
something; questions, greetings, headings and code are not claims. A claim that cites
``[n]`` markers is judged against those passages, one without markers against all.
It is supported when

1. every number, duration, date, amount, percentage and name in it appears in one of
   those passages as stated (after normalising "seven"/"7", "7-year"/"7 years",
   "5,000"/"5000", "30-day"/"30 days"), and no passage sentence closer to the claim
   than every sentence stating a value gives that subject another value of its unit
   ("notified within 72 hours" where the sentence on notifying says 48 hours), else
   ``number_mismatch`` on that value;
2. it does not negate, or swap an antonym of, the passage sentence sharing most words
   with it, else ``contradiction``;
3. its words decide when they can: ``lexical``, the share of its content words
   (lightly stemmed) found in the passages, at least ``lexical_accept`` is supported,
   below ``lexical_reject`` ``unsupported``; between the two its support,
   ``w * lexical + (1 - w) * semantic``, must reach the threshold, where ``semantic``
   is the highest cosine under the encoder between the claim and its passage
   sentences sharing most words with it (without an encoder, lexical alone).

Bounds, thresholds and weight were calibrated on the DEV half of bench/data/grounding and are
reported on its TEST half (bench/grounding_checker.py, docs/grounding.md).

No passages means nothing to check against: :meth:`GroundingChecker.check` returns
:meth:`Grounding.not_checked` (``score is None``), and the pipeline does not call it
for an answer without passages.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.grounding.facts import Fact, name_supported, name_tokens, names, number_supported, numbers
from backend.grounding.text import Span, cited, content_words, is_claim, stem, stems, units, without_citations
from router.encoder import Encoder

# Calibrated on the DEV split (bench/results/grounding_checker.json): the operating
# point with the fewest supported sentences flagged at recall >= 0.95 and precision >= 0.80.
SUPPORT_THRESHOLD = 0.81
LEXICAL_WEIGHT = 0.0
LEXICAL_ONLY_THRESHOLD = 0.72
# Claims sharing at least LEXICAL_ACCEPT of their content words with their passages are
# supported, below LEXICAL_REJECT unsupported, without the encoder; the encoder compares
# the others with their CANDIDATES passage sentences that share most words with them.
LEXICAL_ACCEPT = 0.75
LEXICAL_REJECT = 0.45
CANDIDATES: int | None = 2
# A sentence stating another value of a claim's unit shows that the claim's value
# belongs to another subject only when it shares this share of the claim's words.
RIVAL_OVERLAP = 0.5
# A passage sentence this close (lexical share) to a claim is "the one it restates".
CONTRADICTION_OVERLAP = 0.5
# A negation alone counts only against a passage sentence this close: paraphrase moves
# negations around ("no requirement" / "not required") more often than it flips them.
NEGATION_OVERLAP = 0.75

REASONS = ("number_mismatch", "unsupported", "contradiction")


@dataclass(frozen=True, slots=True)
class Unsupported:
    """What in the answer is not supported, and why. ``answer[start:end] == text``."""

    start: int
    end: int
    text: str
    reason: str  # one of REASONS
    detail: str  # one sentence for a person

    def record(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "text": self.text, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Grounding:
    """``score``: share of checked claims that are supported, in [0, 1]; 1.0 when the
    answer holds no claim; None when it was not checked (no passages). ``checked``:
    claims judged. ``unsupported``: findings in answer order (a claim may have several,
    one per wrong value)."""

    score: float | None
    checked: int
    unsupported: tuple[Unsupported, ...]

    @classmethod
    def not_checked(cls) -> Grounding:
        return cls(score=None, checked=0, unsupported=())

    def record(self) -> dict[str, object]:
        """JSON-able, for the audit event and the API."""
        return {
            "score": None if self.score is None else round(self.score, 4),
            "checked": self.checked,
            "unsupported": [u.record() for u in self.unsupported],
        }


@dataclass(frozen=True, slots=True)
class Judgement:
    """One claim and the measures it was judged on (for calibration and debugging).

    ``findings`` are the threshold-free ones (values, contradictions, citations of
    passages not given); ``lexical``/``semantic`` feed the support threshold
    (``semantic`` None without an encoder)."""

    claim: Span
    passages: tuple[int, ...]
    findings: tuple[Unsupported, ...]
    lexical: float
    semantic: float | None


@dataclass(frozen=True, slots=True)
class _Passage:
    number: int
    text: str
    sentences: tuple[str, ...]
    sentence_stems: tuple[frozenset[str], ...]
    sentence_values: tuple[frozenset[tuple[str, str | None]], ...]  # (value, unit) stated in each sentence
    stems: frozenset[str]
    numbers: tuple[Fact, ...]
    names: frozenset[str]
    negated: tuple[bool, ...]


_NEGATORS = frozenset(
    [
        "not",
        "no",
        "never",
        "cannot",
        "can't",
        "don't",
        "doesn't",
        "isn't",
        "aren't",
        "won't",
        "wasn't",
        "shouldn't",
        "mustn't",
        "none",
        "nor",
    ]
)
_ANTONYMS = {
    "before": "after",
    "must": "optional",
    "required": "optional",
    "allowed": "prohibited",
    "permitted": "prohibited",
    "increase": "decrease",
    "automatically": "manually",
    "enabled": "disabled",
    "include": "exclude",
    "public": "private",
    "accept": "reject",
    "always": "never",
    "earliest": "latest",
    "minimum": "maximum",
    "more": "less",
    "upgrade": "downgrade",
    "longer": "shorter",
    "mandatory": "optional",
    "first": "last",
    "inside": "outside",
    "internal": "external",
    "start": "end",
    "lowest": "highest",
    "free": "paid",
}
_ANTONYMS |= {b: a for a, b in _ANTONYMS.items()}


def _negated(text: str) -> bool:
    words = set(without_citations(text).lower().replace("\u2019", "'").split())
    return bool(words & _NEGATORS) or any(w.endswith("n't") for w in words)


class GroundingChecker:
    """Judges answers against their passages. Pure CPU and thread-safe: the caller runs
    :meth:`check` off the event loop.

    The encoder is the expensive part (~3 ms a short sentence on one CPU thread), so it
    runs only where the words leave the verdict open: a claim with a finding, one whose
    words nearly all appear in its passages (``lexical >= lexical_accept``: supported)
    and one that shares few of them (``lexical < lexical_reject``: unsupported) are
    decided without it. The rest are encoded with, for each, its ``candidates`` passage
    sentences that share the most words with it (None: all), in one encoder call.
    Passage analyses (up to ``cache_size`` passages) and passage-sentence vectors (up to
    ``8 * cache_size``) are cached by text, since the same chunks recur."""

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        support_threshold: float | None = None,
        lexical_weight: float = LEXICAL_WEIGHT,
        lexical_accept: float | None = None,
        lexical_reject: float | None = None,
        candidates: int | None = CANDIDATES,
        cache_size: int = 1024,
    ) -> None:
        """``support_threshold``: a claim whose support is below it is unsupported
        (None: the calibrated default for an encoder, or for lexical alone).
        ``lexical_accept``/``lexical_reject`` (None: the calibrated defaults): the
        lexical shares at and above which a claim is supported, and below which it is
        unsupported, without the encoder; without an encoder both are the threshold."""
        self._encoder = encoder
        default = SUPPORT_THRESHOLD if encoder is not None else LEXICAL_ONLY_THRESHOLD
        self.support_threshold = default if support_threshold is None else support_threshold
        self.lexical_weight = lexical_weight if encoder is not None else 1.0
        if encoder is None:
            self.lexical_accept = self.lexical_reject = self.support_threshold
        else:
            self.lexical_accept = LEXICAL_ACCEPT if lexical_accept is None else lexical_accept
            self.lexical_reject = LEXICAL_REJECT if lexical_reject is None else lexical_reject
        self.candidates = candidates
        self._passages: OrderedDict[str, _Passage] = OrderedDict()
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def check(self, answer: str, passages: Sequence[tuple[int, str]]) -> Grounding:
        """``passages``: (citation number, passage text). See the module docstring."""
        if not passages:
            return Grounding.not_checked()
        return self.verdict(self.judge(answer, passages))

    def verdict(self, judgements: Sequence[Judgement], threshold: float | None = None) -> Grounding:
        """The grounding of judged claims at ``threshold`` (None: this checker's)."""
        cut = self.support_threshold if threshold is None else threshold
        found: list[Unsupported] = []
        supported = 0
        for j in judgements:
            if j.findings:
                found.extend(j.findings)
            elif not self.supported(j, cut):
                found.append(_unsupported(j))
            else:
                supported += 1
        score = supported / len(judgements) if judgements else 1.0
        return Grounding(score=score, checked=len(judgements), unsupported=tuple(found))

    def supported(self, j: Judgement, threshold: float) -> bool:
        """Whether a claim without findings is supported: by its words alone outside
        [lexical_reject, lexical_accept), else by its support score."""
        if j.lexical >= self.lexical_accept:
            return True
        if j.lexical < self.lexical_reject or j.semantic is None:
            return j.lexical >= threshold if self._encoder is None else False
        return self.support(j) >= threshold

    def support(self, j: Judgement) -> float:
        if j.semantic is None:
            return j.lexical
        return self.lexical_weight * j.lexical + (1 - self.lexical_weight) * j.semantic

    def judge(self, answer: str, passages: Sequence[tuple[int, str]], *, encode_all: bool = False) -> list[Judgement]:
        """Each claim of ``answer`` with its measures against ``passages``.

        ``semantic`` is measured for the claims the words leave open (all claims
        without findings when ``encode_all``: for calibrating the lexical bounds)."""
        claims = [span for span in units(answer) if is_claim(span.text)]
        if not claims or not passages:
            return []
        by_number = {p.number: p for p in self._analyse(passages)}
        out: list[Judgement] = []
        open_: list[tuple[int, str, list[str]]] = []  # (index in out, claim text, candidate sentences)
        for claim in claims:
            markers = cited(claim.text)
            chosen = sorted(markers & by_number.keys()) if markers else sorted(by_number)
            if not chosen:
                missing = " ".join(f"[{n}]" for n in sorted(markers))
                finding = Unsupported(
                    claim.start,
                    claim.end,
                    claim.text,
                    "unsupported",
                    f"it cites {missing}, which is not among the passages given",
                )
                out.append(Judgement(claim, tuple(sorted(markers)), (finding,), 0.0, None))
                continue
            picked = [by_number[n] for n in chosen]
            claim_stems = stems(without_citations(claim.text))
            ranked = _ranked(claim_stems, picked)
            findings = _value_findings(claim, claim_stems, picked, list(by_number.values()), markers, ranked)
            if not findings:
                findings = _contradiction(claim, claim_stems, ranked)
            union = frozenset().union(*(p.stems for p in picked))
            lexical = len(claim_stems & union) / len(claim_stems) if claim_stems else 1.0
            out.append(Judgement(claim, tuple(chosen), findings, lexical, None))
            wanted = encode_all or self.lexical_reject <= lexical < self.lexical_accept
            if self._encoder is not None and not findings and wanted:
                top = ranked if self.candidates is None else ranked[: self.candidates]
                open_.append((len(out) - 1, without_citations(claim.text), [p.sentences[k] for _, p, k in top]))
        if open_:
            for (at, _, _), semantic in zip(open_, self._semantic(open_), strict=True):
                j = out[at]
                out[at] = Judgement(j.claim, j.passages, j.findings, j.lexical, semantic)
        return out

    def _semantic(self, open_: Sequence[tuple[int, str, list[str]]]) -> list[float]:
        """For each (_, claim, candidate sentences): the highest cosine between the claim
        and a candidate (0 without candidates). One encoder call for the claims and the
        candidates not cached."""
        assert self._encoder is not None
        with self._lock:
            cached = {s: self._vectors[s] for _, _, ss in open_ for s in ss if s in self._vectors}
            for s in cached:
                self._vectors.move_to_end(s)
        new = list(dict.fromkeys(s for _, _, ss in open_ for s in ss if s not in cached))
        encoded = self._encoder.encode([claim for _, claim, _ in open_] + new)
        vectors = dict(cached) | {s: encoded[len(open_) + i] for i, s in enumerate(new)}
        if new:
            with self._lock:
                for s in new:
                    self._vectors[s] = vectors[s]
                while len(self._vectors) > 8 * self._cache_size:
                    self._vectors.popitem(last=False)
        out = []
        for i, (_, _, sentences) in enumerate(open_):
            sims = [float(vectors[s] @ encoded[i]) for s in sentences]
            out.append(max(0.0, *sims) if sims else 0.0)
        return out

    def _analyse(self, passages: Sequence[tuple[int, str]]) -> list[_Passage]:
        """The passages analysed, from the cache where it has them."""
        out = []
        with self._lock:
            hits = {text: self._passages[text] for _, text in passages if text in self._passages}
            for text in hits:
                self._passages.move_to_end(text)
        for number, text in passages:
            hit = hits.get(text)
            if hit is None:
                hit = hits[text] = _analysed(number, text)
                with self._lock:
                    self._passages[text] = hit
                    while len(self._passages) > self._cache_size:
                        self._passages.popitem(last=False)
            out.append(_renumbered(hit, number))
        return out


def _renumbered(p: _Passage, number: int) -> _Passage:
    if p.number == number:
        return p
    return dataclasses.replace(p, number=number)


def _analysed(number: int, text: str) -> _Passage:
    sentences = tuple(s.text for s in units(text) if content_words(s.text))
    sentence_stems = tuple(frozenset(stems(s)) for s in sentences)
    return _Passage(
        number=number,
        text=text,
        sentences=sentences,
        sentence_stems=sentence_stems,
        sentence_values=tuple(frozenset((f.value, f.unit) for f, _, _ in numbers(s)) for s in sentences),
        stems=frozenset().union(*sentence_stems) | frozenset(stems(text)),
        numbers=tuple(f for f, _, _ in numbers(text)),
        names=frozenset(name_tokens(text)),
        negated=tuple(_negated(s) for s in sentences),
    )


def _ranked(claim_stems: set[str], picked: Sequence[_Passage]) -> list[tuple[int, _Passage, int]]:
    """The sentences of ``picked`` that share words with the claim, as (shared stems,
    passage, sentence index), most shared first (ties: passage order)."""
    scored = [
        (len(claim_stems & ss), p, k) for p in picked for k, ss in enumerate(p.sentence_stems) if claim_stems & ss
    ]
    return sorted(scored, key=lambda item: -item[0])


def _where(markers: frozenset[int], picked: Sequence[_Passage]) -> str:
    cites = " ".join(f"[{p.number}]" for p in picked)
    return f"the cited passages {cites}" if markers else f"any of the passages {cites}"


def _value_findings(
    claim: Span,
    claim_stems: set[str],
    picked: Sequence[_Passage],
    every: Sequence[_Passage],
    markers: frozenset[int],
    ranked: Sequence[tuple[int, _Passage, int]],
) -> tuple[Unsupported, ...]:
    """A ``number_mismatch`` for each number or name of ``claim`` that no passage in
    ``picked`` states, and for each value with a unit that they state only about
    something else (:func:`_stated_elsewhere`)."""
    pairs = {(f.value, f.unit) for p in picked for f in p.numbers}
    values = {f.value for p in picked for f in p.numbers}
    facts = numbers(claim.text)
    claimed = {(f.value, f.unit) for f, _, _ in facts}
    values_off = [(s, e) for fact, s, e in facts if not number_supported(fact, pairs, values)]
    elsewhere = {
        (s, e): rival
        for fact, s, e in facts
        if (s, e) not in values_off and (rival := _stated_elsewhere(fact, claimed, claim_stems, ranked)) is not None
    }
    # Names against every passage given: a product or team named in another passage is
    # context, not an invention; values must come from the cited ones.
    tokens = set(frozenset().union(*(p.names for p in every)))
    text = " ".join(p.text for p in every)
    names_off = [(s, e) for name, s, e in names(claim.text) if not name_supported(name, tokens, text)]
    out = []
    for spans, where in ((values_off, _where(markers, picked)), (names_off, _where(frozenset(), every))):
        for s, e in _merged(spans, claim.text):
            piece = claim.text[s:e]
            detail = f"'{piece}' does not appear in {where}"
            out.append(Unsupported(claim.start + s, claim.start + e, piece, "number_mismatch", detail))
    for (s, e), (p, k) in elsewhere.items():
        if any(u.start <= claim.start + s < u.end for u in out):
            continue
        piece = claim.text[s:e]
        detail = (
            f"'{piece}' appears in passage [{p.number}] only about something else; "
            f'its sentence closest to this claim says: "{_quoted(p.sentences[k])}"'
        )
        out.append(Unsupported(claim.start + s, claim.start + e, piece, "number_mismatch", detail))
    return tuple(sorted(out, key=lambda u: u.start))


def _stated_elsewhere(
    fact: Fact, claimed: set[tuple[str, str | None]], claim_stems: set[str], ranked: Sequence[tuple[int, _Passage, int]]
) -> tuple[_Passage, int] | None:
    """The passage sentence that shows ``fact`` (stated in the passages) belongs to
    another subject, or None: a sentence sharing more of the claim's words than any
    sentence stating ``fact``, and at least RIVAL_OVERLAP of them, that states another
    value of the same unit and none the claim states ("notified within 72 hours" where
    the sentence about notifying customers says 48 hours, and 72 is the deadline for
    the authority). Values without a unit are left alone: bare numbers are too often
    list positions, table keys or versions."""
    if fact.unit is None or not claim_stems:
        return None
    key = (fact.value, fact.unit)
    own = max((n for n, p, k in ranked if key in p.sentence_values[k]), default=None)
    if own is None:
        return None  # stated outside a sentence (a heading, code): nothing to compare
    for n, p, k in ranked:
        if n <= own or n < RIVAL_OVERLAP * len(claim_stems):
            return None
        theirs = {v for v in p.sentence_values[k] if v[1] == fact.unit}
        if theirs and not theirs & claimed:
            return p, k
    return None


def _quoted(sentence: str) -> str:
    return sentence if len(sentence) <= 120 else sentence[:117] + "..."


def _merged(spans: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """Overlapping spans, and spans only a space apart ("Data Retention"), as one."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(set(spans)):
        if out and s <= out[-1][1] + 1 and not text[out[-1][1] : s].strip():
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _contradiction(
    claim: Span, claim_stems: set[str], ranked: Sequence[tuple[int, _Passage, int]]
) -> tuple[Unsupported, ...]:
    """A ``contradiction`` when the passage sentence sharing most words with the claim
    says the opposite: one of them is negated and the other not, or it has the antonym
    of a word of the claim."""
    if not claim_stems or not ranked:
        return ()
    shared, passage, k = ranked[0]
    overlap = shared / len(claim_stems)
    if overlap < CONTRADICTION_OVERLAP:
        return ()
    sentence = passage.sentences[k]
    why = ""
    if _negated(claim.text) != passage.negated[k] and overlap >= NEGATION_OVERLAP:
        why = "negates" if _negated(claim.text) else "drops the negation of"
    else:
        claim_words = set(content_words(claim.text))
        theirs = {stem(w) for w in content_words(sentence)}
        for word in sorted(claim_words):
            opposite = _ANTONYMS.get(word)
            if opposite and stem(opposite) in theirs and stem(word) not in theirs:
                why = f"says '{word}' where it says '{opposite}' in"
                break
    if not why:
        return ()
    return (
        Unsupported(
            claim.start,
            claim.end,
            claim.text,
            "contradiction",
            f'it {why} passage [{passage.number}]: "{_quoted(sentence)}"',
        ),
    )


def _unsupported(j: Judgement) -> Unsupported:
    cites = " ".join(f"[{n}]" for n in j.passages)
    share = round(100 * j.lexical)
    return Unsupported(
        j.claim.start,
        j.claim.end,
        j.claim.text,
        "unsupported",
        f"no passage among {cites} says this ({share}% of its words appear there; none is close in meaning)",
    )
