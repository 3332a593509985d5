"""The grounding check: is each claim of an answer supported by the passages it cites?

A claim is one sentence of the answer (a list item, a table row) that states
something; questions, greetings, headings and code are not claims. A claim that cites
``[n]`` markers is judged against those passages, one without markers against all.
It is supported when

1. every number, duration, date, amount, percentage and name in it appears in one of
   those passages as stated (after normalising "seven"/"7", "7-year"/"7 years",
   "5,000"/"5000", "30-day"/"30 days"), else ``number_mismatch`` on that value;
2. it does not negate, or swap an antonym of, the passage sentence closest to it,
   else ``contradiction``;
3. its support, ``w * lexical + (1 - w) * semantic``, reaches the threshold, else
   ``unsupported``. ``lexical`` is the share of its content words (lightly stemmed)
   found in the passages; ``semantic`` the highest cosine between the claim and a
   passage sentence under the encoder (without an encoder, lexical alone).

Thresholds and weight were calibrated on the DEV half of bench/data/grounding and are
reported on its TEST half (bench/grounding_checker.py, docs/grounding.md).

No passages means nothing to check against: :meth:`GroundingChecker.check` returns
:meth:`Grounding.not_checked` (``score is None``), and the pipeline does not call it
for an answer without passages.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.grounding.facts import Fact, name_supported, name_tokens, names, number_supported, numbers
from backend.grounding.text import Span, cited, content_words, is_claim, stem, stems, units, without_citations
from router.encoder import Encoder, Vectors

# Calibrated on the DEV split (bench/results/grounding_checker.json): the operating
# point with the highest recall on unsupported claims at precision >= 0.80.
SUPPORT_THRESHOLD = 0.76
LEXICAL_WEIGHT = 0.2
LEXICAL_ONLY_THRESHOLD = 0.84
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
    :meth:`check` off the event loop. Passage analyses (and their sentence vectors)
    are cached by text, up to ``cache_size`` passages, since the same chunks recur."""

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        support_threshold: float | None = None,
        lexical_weight: float = LEXICAL_WEIGHT,
        cache_size: int = 1024,
    ) -> None:
        """``support_threshold``: a claim whose support is below it is unsupported
        (None: the calibrated default for an encoder, or for lexical alone)."""
        self._encoder = encoder
        default = SUPPORT_THRESHOLD if encoder is not None else LEXICAL_ONLY_THRESHOLD
        self.support_threshold = default if support_threshold is None else support_threshold
        self.lexical_weight = lexical_weight if encoder is not None else 1.0
        self._cache: OrderedDict[str, tuple[_Passage, Vectors | None]] = OrderedDict()
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
            elif self.support(j) < cut:
                found.append(_unsupported(j))
            else:
                supported += 1
        score = supported / len(judgements) if judgements else 1.0
        return Grounding(score=score, checked=len(judgements), unsupported=tuple(found))

    def support(self, j: Judgement) -> float:
        if j.semantic is None:
            return j.lexical
        return self.lexical_weight * j.lexical + (1 - self.lexical_weight) * j.semantic

    def judge(self, answer: str, passages: Sequence[tuple[int, str]]) -> list[Judgement]:
        """Each claim of ``answer`` with its measures against ``passages``."""
        claims = [span for span in units(answer) if is_claim(span.text)]
        if not claims or not passages:
            return []
        analysed = self._analyse(passages)
        by_number = {p.number: p for p, _ in analysed}
        vectors = {p.number: v for p, v in analysed}
        claim_vectors = self._encoder.encode([without_citations(c.text) for c in claims]) if self._encoder else None
        out = []
        for i, claim in enumerate(claims):
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
            findings = _value_findings(claim, picked, list(by_number.values()), markers)
            claim_stems = stems(without_citations(claim.text))
            union = frozenset().union(*(p.stems for p in picked))
            lexical = len(claim_stems & union) / len(claim_stems) if claim_stems else 1.0
            semantic: float | None = None
            best: tuple[_Passage, int] | None = None
            if claim_vectors is not None:
                best_score = -1.0
                for p in picked:
                    pv = vectors[p.number]
                    if pv is None or not len(pv):
                        continue
                    sims = pv @ claim_vectors[i]
                    k = int(np.argmax(sims))
                    if float(sims[k]) > best_score:
                        best_score, best = float(sims[k]), (p, k)
                semantic = max(best_score, 0.0)
            if not findings:
                findings = _contradiction(claim, claim_stems, picked, best)
            out.append(Judgement(claim, tuple(chosen), findings, lexical, semantic))
        return out

    def _analyse(self, passages: Sequence[tuple[int, str]]) -> list[tuple[_Passage, Vectors | None]]:
        """The passages analysed, from the cache where it has them; the sentences of the
        others encoded in one batch."""
        out: list[tuple[_Passage, Vectors | None] | None] = []
        todo: list[tuple[int, _Passage]] = []
        with self._lock:
            for number, text in passages:
                hit = self._cache.get(text)
                if hit is not None:
                    self._cache.move_to_end(text)
                    out.append((_renumbered(hit[0], number), hit[1]))
                else:
                    out.append(None)
                    todo.append((len(out) - 1, _analysed(number, text)))
        if todo:
            batch = [s for _, p in todo for s in p.sentences]
            encoded = self._encoder.encode(batch) if self._encoder is not None and batch else None
            at = 0
            with self._lock:
                for slot, p in todo:
                    vecs = None if encoded is None else encoded[at : at + len(p.sentences)]
                    at += len(p.sentences)
                    out[slot] = (p, vecs)
                    self._cache[p.text] = (p, vecs)
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return [item for item in out if item is not None]


def _renumbered(p: _Passage, number: int) -> _Passage:
    if p.number == number:
        return p
    return _Passage(number, p.text, p.sentences, p.sentence_stems, p.stems, p.numbers, p.names, p.negated)


def _analysed(number: int, text: str) -> _Passage:
    sentences = tuple(s.text for s in units(text) if content_words(s.text))
    sentence_stems = tuple(frozenset(stems(s)) for s in sentences)
    return _Passage(
        number=number,
        text=text,
        sentences=sentences,
        sentence_stems=sentence_stems,
        stems=frozenset().union(*sentence_stems) | frozenset(stems(text)),
        numbers=tuple(f for f, _, _ in numbers(text)),
        names=frozenset(name_tokens(text)),
        negated=tuple(_negated(s) for s in sentences),
    )


def _where(markers: frozenset[int], picked: Sequence[_Passage]) -> str:
    cites = " ".join(f"[{p.number}]" for p in picked)
    return f"the cited passages {cites}" if markers else f"any of the passages {cites}"


def _value_findings(
    claim: Span, picked: Sequence[_Passage], every: Sequence[_Passage], markers: frozenset[int]
) -> tuple[Unsupported, ...]:
    """A ``number_mismatch`` for each number or name of ``claim`` that no passage in
    ``picked`` states."""
    pairs = {(f.value, f.unit) for p in picked for f in p.numbers}
    values = {f.value for p in picked for f in p.numbers}
    values_off = [(s, e) for fact, s, e in numbers(claim.text) if not number_supported(fact, pairs, values)]
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
    return tuple(sorted(out, key=lambda u: u.start))


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
    claim: Span, claim_stems: set[str], picked: Sequence[_Passage], best: tuple[_Passage, int] | None
) -> tuple[Unsupported, ...]:
    """A ``contradiction`` when the passage sentence closest to the claim says the
    opposite: one of them is negated and the other not, or it has the antonym of a word
    of the claim. Closest: by the encoder where there is one, else by shared words."""
    if not claim_stems:
        return ()
    if best is None:
        overlap, best = max(
            (
                (len(claim_stems & ss) / len(claim_stems), (p, k))
                for p in picked
                for k, ss in enumerate(p.sentence_stems)
            ),
            key=lambda pair: pair[0],
            default=(0.0, None),
        )
    if best is None:
        return ()
    passage, k = best
    overlap = len(claim_stems & passage.sentence_stems[k]) / len(claim_stems)
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
    quoted = sentence if len(sentence) <= 120 else sentence[:117] + "..."
    return (
        Unsupported(
            claim.start,
            claim.end,
            claim.text,
            "contradiction",
            f'it {why} passage [{passage.number}]: "{quoted}"',
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
