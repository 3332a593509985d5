"""Which answers go to a person, and what the asker sees meanwhile (pure: no I/O).

The chat pipeline asks :meth:`ReviewPolicy.plan` for the answering expert as soon as it
is known (before generating): a plan that ``buffers`` makes the pipeline keep a stream's
text until the decision, so that a held answer never reaches the asker. After the
grounding check, :meth:`ReviewPlan.trigger` says whether this answer is reviewed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from backend.review.types import Delivery, HeldReview, Trigger
from experts.registry import ExpertRegistry

PLACEHOLDER = "This answer is being reviewed by a person before you see it (review {id})."
NOTICE = "Note: a person will review this answer (review {id}); it may be corrected."
REJECTED = "A reviewer rejected this answer: {reason}"


def placeholder(review_id: str) -> str:
    return PLACEHOLDER.format(id=review_id)


def with_notice(text: str, review_id: str) -> str:
    """``text`` and the notice line after it (the draft's offsets stay valid)."""
    return f"{text}\n\n---\n{NOTICE.format(id=review_id)}"


def rejected(reason: str) -> str:
    return REJECTED.format(reason=reason.strip())


@dataclass(frozen=True, slots=True)
class ReviewPlan:
    """One request's review policy: the expert's settings and, for ``sample``, the draw."""

    when: str
    delivery: Delivery
    min_score: float
    sampled: bool = False

    @property
    def buffers(self) -> bool:
        """Whether a streamed answer must be kept back until the decision (``hold``, and
        the answer may be held)."""
        if self.delivery != "hold":
            return False
        return self.when in ("always", "on_fail") or (self.when == "sample" and self.sampled)

    def trigger(self, grounding: Mapping[str, object] | None) -> Trigger | None:
        """Why this answer is reviewed (None: it is not). ``on_fail``: a grounding score
        below the expert's ``grounding.min_score`` (an unchecked answer is not held)."""
        if self.when == "always":
            return "always"
        if self.when == "sample":
            return "sample" if self.sampled else None
        if self.when == "on_fail" and grounding is not None:
            score = grounding.get("score")
            if isinstance(score, int | float) and score < self.min_score:
                return "on_fail"
        return None

    def hold(self, draft: str, grounding: Mapping[str, object] | None) -> HeldReview | None:
        """The review of this answer with what the asker sees meanwhile, or None."""
        trigger = self.trigger(grounding)
        if trigger is None:
            return None
        review_id = str(uuid.uuid4())
        shown = placeholder(review_id) if self.delivery == "hold" else with_notice(draft, review_id)
        return HeldReview(review_id, trigger, self.delivery, draft, shown, grounding)


class ReviewPolicy:
    """The experts' ``review`` settings (experts.yaml). ``draw`` gives a number in [0, 1)
    for sampling (tests pass their own)."""

    def __init__(self, registry: ExpertRegistry, draw: Callable[[], float] = random.random) -> None:
        self._registry = registry
        self._draw = draw

    def plan(self, expert: str) -> ReviewPlan | None:
        """The plan for an answer by ``expert``; None when it is never reviewed."""
        spec = self._registry.get(expert)
        review = spec.review
        if not review.active:
            return None
        sampled = review.when == "sample" and self._draw() < review.sample_rate
        return ReviewPlan(review.when, review.delivery, spec.grounding.min_score, sampled)
