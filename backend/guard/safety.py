"""The input safety check as the pipeline runs it (docs/safety.md).

Every request, in every channel, is scored before its routing decision takes effect:
prompt injection, jailbreak and extraction attempts, a calibrated score each
(:mod:`router.safety`). The score uses the request's embedding by the base encoder, the
one retrieval needs anyway: when the router's vector is that encoder's it is reused;
otherwise it is made here once and handed on to retrieval, so the request still pays
for one such embedding.

The expert's ``safety`` policy (experts.yaml) is then applied from the same scores, the
strictest of every expert the request reaches (the one that answers and those whose
documents it reads): naming a lenient expert, or asking to be routed to one, changes
nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from backend.errors import BadRequest
from experts.registry import SAFETY_CATEGORIES, ExpertRegistry, SafetyAction
from router.encoder import Encoder
from router.safety.model import SHIPPED, SafetyModel, SafetyScores
from router.safety.reader import SHIPPED_READER, SafetyReader, second_reading

# The strictness order of the policies' actions.
_STRICTNESS: dict[str, int] = {"allow": 0, "flag": 1, "general": 2, "refuse": 3}
# Texts up to this length, with the vector at hand, are checked on the event loop
# (numpy and a few regexes: well under a millisecond); longer ones in a worker thread.
INLINE_CHARS = 2_000


class UnsafeRequest(BadRequest):
    """A request refused by an expert's safety policy."""

    code = "unsafe_request"


@dataclass(frozen=True)
class SafetyVerdict:
    """What the check found and what the policy did about it."""

    scores: Mapping[str, float]
    flagged: Mapping[str, float]  # the categories over the applied thresholds
    action: str  # "none" (nothing flagged) or the policy's action
    rules: tuple[str, ...] = ()
    model: str = ""
    ms: float = 0.0
    policy_of: tuple[str, ...] = field(default_factory=tuple)  # the experts whose policy applied

    @property
    def category(self) -> str | None:
        """The flagged category with the highest score (None: nothing flagged)."""
        return max(self.flagged, key=lambda c: self.flagged[c]) if self.flagged else None

    def record(self) -> dict[str, object]:
        """The verdict as it lands in the route record and the audit event."""
        return {
            "scores": {c: round(s, 4) for c, s in self.scores.items()},
            "flagged": {c: round(s, 4) for c, s in self.flagged.items()},
            "category": self.category,
            "action": self.action,
            "rules": list(self.rules),
            "model": self.model,
            "ms": round(self.ms, 3),
        }

    def refusal(self) -> UnsafeRequest:
        category = self.category or "unsafe"
        return UnsafeRequest(
            f"This request was refused by the assistant's safety check ({category.replace('_', ' ')}, "
            f"score {self.flagged.get(category, 0.0):.2f}). If this is a mistake, rephrase it; "
            "an administrator can review the decision in the console.",
            param="messages",
        )


@dataclass(frozen=True)
class Assessed:
    """The scores of a request and the base-encoder vector of its text (for retrieval)."""

    scores: SafetyScores
    vector: np.ndarray  # one row
    model: str  # the encoder's name
    ms: float


def build_input_safety(
    model_dir: Path | None,
    encoder: Encoder,
    registry: ExpertRegistry,
    *,
    reader: bool = True,
    reader_dir: Path | None = None,
    reader_base: Encoder | None = None,
) -> InputSafety:
    """The check with the shipped model (or the one in ``model_dir``) and, unless
    ``reader`` is false, the shipped second reading (or the one in ``reader_dir``), run
    by ``reader_base``'s runtime (default ``encoder``; the unwrapped bundled encoder when
    ``encoder`` is a memo over it). Raises ArtifactError (missing or corrupt model) or
    ValueError (another encoder)."""
    second = SafetyReader.load(reader_dir or SHIPPED_READER, reader_base or encoder) if reader else None
    return InputSafety(SafetyModel.load(model_dir or SHIPPED), encoder, registry, second)


class InputSafety:
    """Scores requests and applies the experts' policies. Immutable; thread-safe."""

    def __init__(
        self, model: SafetyModel, encoder: Encoder, registry: ExpertRegistry, reader: SafetyReader | None = None
    ) -> None:
        if encoder.name != model.encoder_name:
            raise ValueError(f"the safety model scores {model.encoder_name!r} vectors, not {encoder.name!r}")
        if reader is not None and reader.manifest.safety_model != model.version:
            # Its band and threshold were chosen beside one model (bench/safety_reader.py --write).
            raise ValueError(
                f"the safety reader {reader.version} was tuned for the safety model "
                f"{reader.manifest.safety_model or '(none: run bench.safety_reader --write)'!r}, not {model.version!r}"
            )
        self._model = model
        self._encoder = encoder
        self._registry = registry
        self._reader = reader
        # What scored a request (audited with each verdict): the model, its patterns and
        # units, and the second reading when there is one.
        self.version = model.scorer + (f"+{reader.version}" if reader is not None else "")
        self.encoder_name = encoder.name

    def needs_thread(self, text: str, history: tuple[str, ...], have_vector: bool) -> bool:
        """Whether :meth:`assess` would encode (the message, or pieces of a message of
        several sentences) or read a long text: then it belongs in a worker thread, off
        the event loop."""
        return not have_vector or bool(history) or len(text) > INLINE_CHARS or self._model.embeds_more(text)

    def assess(self, text: str, history: tuple[str, ...], vector: np.ndarray | None) -> Assessed:
        """Score the last user message (and, in a conversation, the last user turns read
        together: an attack split across turns). ``vector``: the message's embedding by
        this check's encoder, if the request already has it."""
        started = time.perf_counter()
        if vector is None:
            vector = self._encoder.encode([text])[0]
        scores = self._model.score_turns(text, history, vector, self._encoder.encode)
        return Assessed(scores, vector, self._encoder.name, (time.perf_counter() - started) * 1000)

    def assess_all(self, text: str, history: tuple[str, ...], vector: np.ndarray | None) -> Assessed:
        """:meth:`assess`, then the second reading where it is wanted, in this thread: the
        whole check as the pipeline runs it (which runs the second reading in a worker
        thread of its own), for callers off the event loop."""
        assessed = self.assess(text, history, vector)
        return self.read_again(assessed, text, history) if self.wants_second_reading(assessed) else assessed

    def wants_second_reading(self, assessed: Assessed) -> bool:
        """Whether the reader should read the request too: the safety model is unsure
        (its highest score in the reader's band, under its threshold). One more
        transformer pass: work for a worker thread."""
        return self._reader is not None and self._reader.wanted(assessed.scores, self._model.manifest.threshold)

    def read_again(self, assessed: Assessed, text: str, history: tuple[str, ...]) -> Assessed:
        """``assessed`` after the reader has read the last user message and, in a
        conversation, the last user turns together, as :meth:`assess` scores them (an
        attack split across turns): each category its higher reading
        (:func:`router.safety.reader.second_reading`: it can raise a score to the
        threshold, never lower one). One batch of one or two texts."""
        if self._reader is None:
            raise RuntimeError("read_again needs a safety reader; ask wants_second_reading first")
        started = time.perf_counter()
        read = self._reader.read(text, history)
        scores = second_reading(assessed.scores, read, self._reader.manifest, self._model.manifest.threshold)
        return replace(assessed, scores=scores, ms=assessed.ms + (time.perf_counter() - started) * 1000)

    def decide(self, assessed: Assessed, experts: Iterable[str]) -> SafetyVerdict:
        """The strictest policy of ``experts`` applied to the scores."""
        names = tuple(dict.fromkeys(e for e in experts if e in self._registry))
        specs = [self._registry.get(e).safety for e in names]
        thresholds = {
            c: min(
                [s.thresholds.get(c, self._model.manifest.threshold) for s in specs] or [self._model.manifest.threshold]
            )
            for c in SAFETY_CATEGORIES
        }
        flagged = assessed.scores.flagged(thresholds)
        action: SafetyAction | str = "none"
        if flagged:
            action = max((s.on_flag for s in specs), key=lambda a: _STRICTNESS[a], default="flag")
        return SafetyVerdict(
            scores=dict(assessed.scores.scores),
            flagged=flagged,
            action=action,
            rules=assessed.scores.rules,
            model=self.version,
            ms=assessed.ms,
            policy_of=names,
        )
