"""The PII policy: what a request held, and what each expert's endpoint may receive.

:class:`PiiGuard` is the one object the rest of the backend uses:

- ``scan`` (pipeline stage 2) reports which PII types a request holds, as counts only;
- ``outbound`` is the experts package's OutboundFilter: per expert, ``allow`` sends
  the text as is, ``redact`` replaces PII with placeholders in the conversation and the
  retrieved passages, ``block`` refuses (OutboundBlocked) when the caller's messages
  hold PII (passages are the organisation's own documents and do not trigger a block);
- ``redact`` is the TextRedactor the audit trail and the log filter use.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from backend.guard.pii import Finding, PiiDetector, Placeholders
from experts.errors import OutboundBlocked
from experts.registry import ExpertSpec, PiiPolicy
from experts.types import ChatMessage, Passage


@dataclass(frozen=True, slots=True)
class PiiReport:
    """PII found in a request's messages: type -> count. Never holds the values."""

    counts: Mapping[str, int]

    @property
    def found(self) -> bool:
        return bool(self.counts)

    def describe(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))


NO_PII = PiiReport({})


def action_for(policy: PiiPolicy, report: PiiReport) -> str:
    """What the policy did to a request with ``report``: none, allowed, redacted, blocked."""
    if not report.found:
        return "none"
    return {"allow": "allowed", "redact": "redacted", "block": "blocked"}[policy]


# Retrieved passages are the organisation's documents: the same chunks come back request
# after request, so what the detector finds in a passage's text is remembered (by the
# text itself, so an edited chunk is scanned anew). ~0.15 CPU-ms per passage saved.
PASSAGE_CACHE = 4096

# A message's findings are remembered the same way: a request's messages are scanned by
# the guard stage (``scan``), by the check a stream makes before it opens and by the
# expert call itself (``outbound``), and a conversation's earlier turns come back with
# each new one. The findings depend on the text alone (the detector's types are fixed at
# construction; an expert's policy only decides what is done with them). A message longer
# than MESSAGE_CACHE_CHARS (above the default max_input_chars of 48,000) is scanned
# every time and not kept, which bounds what the cache holds to about 13 M characters.
MESSAGE_CACHE = 256
MESSAGE_CACHE_CHARS = 50_000


class PiiGuard:
    """No state but caches of passage and message findings (lru_cache: thread-safe);
    safe to share across requests and threads."""

    def __init__(self, detector: PiiDetector | None = None) -> None:
        self.detector = detector or PiiDetector()
        self._passage_findings = lru_cache(maxsize=PASSAGE_CACHE)(lambda text: tuple(self.detector.find(text)))
        self._kept_message_findings = lru_cache(maxsize=MESSAGE_CACHE)(lambda text: tuple(self.detector.find(text)))

    def _message_findings(self, text: str) -> tuple[Finding, ...]:
        """``detector.find(text)``, remembered unless ``text`` is over MESSAGE_CACHE_CHARS."""
        if len(text) > MESSAGE_CACHE_CHARS:
            return tuple(self.detector.find(text))
        return self._kept_message_findings(text)

    def scan(self, texts: Sequence[str]) -> PiiReport:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(str(f.type) for f in self._message_findings(text))
        return PiiReport(dict(counts))

    def redact(self, text: str) -> str:
        return self.detector.redact(text)

    def outbound(
        self, spec: ExpertSpec, conversation: Sequence[ChatMessage], passages: Sequence[Passage]
    ) -> tuple[Sequence[ChatMessage], Sequence[Passage]]:
        policy = spec.pii_policy
        if policy == "allow":
            return conversation, passages
        if policy == "block":
            report = self.scan([m.content for m in conversation])
            if report.found:
                raise OutboundBlocked(
                    spec.name,
                    f"the request contains personal data or secrets ({report.describe()}), "
                    f"and the {spec.name!r} expert does not accept them; remove them and retry",
                )
            return conversation, passages
        # One placeholder scope for the whole request: "[EMAIL_1]" is the same address
        # in every message and passage, so the model can still follow the conversation.
        scope = Placeholders()
        sent = [
            dataclasses.replace(
                m, content=self.detector.redact_found(m.content, self._message_findings(m.content), scope)
            )
            for m in conversation
        ]
        docs = [
            dataclasses.replace(p, text=self.detector.redact_found(p.text, self._passage_findings(p.text), scope))
            for p in passages
        ]
        return sent, docs
