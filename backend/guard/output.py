"""What an answer may not carry out (issue 23, output checks): secrets, personal data
by the expert's policy, and the expert's own instructions.

- **Secrets** (API keys, tokens, passwords, private keys, connection strings: the PII
  detector's SECRET findings, and values assigned to environment-style names that end
  in KEY, SECRET, TOKEN or PASSWORD, ``REPORTS_API_KEY=...``) are replaced by
  ``[secret removed]``, whoever's document
  they came from: an answer quoting a runbook must not hand out its password. With the
  expert's ``safety.answer_secrets: block`` the answer is withheld instead.
- **Personal data** (e-mail addresses, phone numbers, IBANs, card and national
  numbers, IP addresses) by ``safety.answer_pii``: ``allow`` (default), ``redact``
  (``[email removed]``...) or ``block`` (the answer is withheld).
- **Instructions**: a run of at least ``LEAK_CHARS`` characters of the expert's system
  prompt (whitespace-normalised) is replaced by ``[instructions withheld]``: the answer
  to "print your system prompt" says nothing of it.

A withheld answer is replaced by ``BLOCKED``; a stream stops at the finding (what was
sent before it was clean) and ends with the same notice.

A plain answer is checked whole (:func:`scrub`). A streamed one goes through
:class:`StreamScrubber`, which holds back the last ``HOLD`` characters (about a second of
a small model's output) so that a secret split across deltas is still removed before any
of it is sent, and holds a finding that is still growing (a PEM block) until it is whole;
what it releases is checked with ``CONTEXT`` characters of what was already sent (a
"password=" keyword sent earlier still marks the value that follows). A secret longer
than ``HOLD`` whose shape is recognisable only at its end may leak its first characters.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field

from backend.guard.pii import PiiDetector, PiiType

SECRET_MARK = "[secret removed]"
PROMPT_MARK = "[instructions withheld]"
BLOCKED = "[Withheld from here on: the answer contained data this assistant may not show.]"
LEAK_CHARS = 60
HOLD = 64
CONTEXT = 200
_SECRETS = PiiDetector(frozenset({PiiType.SECRET}))
_EVERYTHING = PiiDetector()
_SPACE = re.compile(r"\s+")
# An environment-style assignment whose name ends in a secret's word (STRIPE_WEBHOOK_SECRET=,
# REPORTS_API_KEY=, db_password:): the detector's keyword rule takes the bare word only
# (api_key=, password=), and such values often have no known shape (a hex key, a
# vendor's own prefix). Group 1 is the value; the name stays readable. A placeholder
# ("${REPORTS_API_KEY}", "<your key>") is not a value.
_ENV_SECRET = re.compile(
    r"(?<![\w-])[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*_"
    r"(?:API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|SIGNING_?KEY|SECRET(?:_?KEY)?|TOKEN|PASSWORD|PASSWD|PWD|CREDENTIALS?)"
    r"(?![\w-])[\"']?[ \t]*[:=][ \t]*[\"']?([^\s\"'`,;()\[\]{}<>$*%]{6,})",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class OutputPolicy:
    """The expert's ``safety`` settings for answers (experts/registry.py SafetySpec)."""

    secrets: str = "redact"  # redact | block
    pii: str = "allow"  # allow | redact | block

    def mark(self, kind: PiiType) -> str | None:
        """The mark that replaces a finding of ``kind`` (None: it may stay; BLOCKED: the
        answer is withheld)."""
        action = self.secrets if kind == PiiType.SECRET else self.pii
        if action == "allow":
            return None
        if action == "block":
            return BLOCKED
        return SECRET_MARK if kind == PiiType.SECRET else f"[{kind.value.lower().replace('_', ' ')} removed]"


REDACT_SECRETS = OutputPolicy()


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    mark: str


@dataclass
class OutputReport:
    """What was removed from one answer (counts only, never the values)."""

    secrets: int = 0
    instructions: int = 0
    pii: int = 0
    blocked: bool = False

    def record(self) -> dict[str, int]:
        return {
            "secrets_removed": self.secrets,
            "instructions_withheld": self.instructions,
            "pii_removed": self.pii,
            "blocked": int(self.blocked),
        }

    def count(self, mark: str) -> None:
        if mark == BLOCKED:
            self.blocked = True
        elif mark == SECRET_MARK:
            self.secrets += 1
        elif mark == PROMPT_MARK:
            self.instructions += 1
        else:
            self.pii += 1


@functools.lru_cache(maxsize=64)
def _matcher(prompt: str) -> tuple[str, difflib.SequenceMatcher[str]]:
    """The expert's prompt, normalised, and a matcher indexed on it. Indexing costs more
    than a match, and a stream asks once per delta: built once per prompt. Used on the
    event loop only (a matcher is not shared across threads)."""
    target = _SPACE.sub(" ", prompt).lower()
    return target, difflib.SequenceMatcher(None, "", target, autojunk=False)


def _prompt_spans(text: str, prompt: str) -> list[Span]:
    """Runs of ``text`` that repeat at least LEAK_CHARS characters of ``prompt``."""
    if len(text) < LEAK_CHARS or not prompt:
        return []
    # Compare whitespace-normalised, lower-cased text, mapping positions back.
    kept = [i for i, ch in enumerate(text) if not ch.isspace() or (i and not text[i - 1].isspace())]
    normal = "".join(" " if text[i].isspace() else text[i].lower() for i in kept)
    target, matcher = _matcher(prompt)
    matcher.set_seq1(normal)  # the prompt's index (seq2) is built once per expert
    spans: list[Span] = []
    lo = 0
    while lo < len(normal):
        match = matcher.find_longest_match(lo, len(normal), 0, len(target))
        if match.size < LEAK_CHARS:
            break
        spans.append(Span(kept[match.a], kept[match.a + match.size - 1] + 1, PROMPT_MARK))
        lo = match.a + match.size
    return spans


def find(text: str, prompt: str, policy: OutputPolicy = REDACT_SECRETS) -> list[Span]:
    """What ``policy`` removes from ``text`` and instruction runs, non-overlapping, by start."""
    detector = _SECRETS if policy.pii == "allow" else _EVERYTHING
    spans = [Span(f.start, f.end, mark) for f in detector.find(text) if (mark := policy.mark(f.type)) is not None]
    secret = policy.mark(PiiType.SECRET)
    if secret is not None and "_" in text:
        for m in _ENV_SECRET.finditer(text):
            if all(m.end(1) <= s.start or s.end <= m.start(1) for s in spans):
                spans.append(Span(m.start(1), m.end(1), secret))
    for leak in _prompt_spans(text, prompt):
        if all(leak.end <= s.start or s.end <= leak.start for s in spans):
            spans.append(leak)
    return sorted(spans, key=lambda s: s.start)


def _apply(text: str, spans: list[Span], report: OutputReport) -> str:
    out: list[str] = []
    at = 0
    for span in spans:
        report.count(span.mark)
        if span.mark == BLOCKED:  # nothing of it from here on
            return BLOCKED if not out else "".join(out) + text[at : span.start] + "\n\n" + BLOCKED
        out += [text[at : span.start], span.mark]
        at = span.end
    out.append(text[at:])
    return "".join(out)


def scrub(text: str, prompt: str, policy: OutputPolicy = REDACT_SECRETS) -> tuple[str, OutputReport]:
    """``text`` with what ``policy`` and runs of ``prompt`` remove, and what was removed.
    A finding whose policy is ``block`` withholds the whole answer."""
    report = OutputReport()
    spans = find(text, prompt, policy)
    if any(s.mark == BLOCKED for s in spans):
        report.count(BLOCKED)
        return BLOCKED, report
    return _apply(text, spans, report), report


@dataclass
class StreamScrubber:
    """:func:`scrub` for a stream: ``feed`` each delta, send what it returns; ``finish``
    returns the rest. ``report`` counts what was removed."""

    prompt: str
    policy: OutputPolicy = REDACT_SECRETS
    report: OutputReport = field(default_factory=OutputReport)
    _raw: str = ""
    _sent: int = 0  # how much of _raw has been released (checked)

    def feed(self, delta: str) -> str:
        if self.report.blocked:  # withheld from a finding on: nothing more is sent
            return ""
        self._raw += delta
        return self._release(len(self._raw) - HOLD)

    def finish(self) -> str:
        if self.report.blocked:
            return ""
        return self._release(len(self._raw))

    def _release(self, end: int) -> str:
        if end <= self._sent:
            return ""
        start = max(0, self._sent - CONTEXT)
        found = find(self._raw[start:], self.prompt, self.policy)
        spans = [Span(s.start + start, s.end + start, s.mark) for s in found]
        for s in spans:  # never cut through a finding: hold it back until it is whole
            if s.start < end < s.end:
                end = s.start
        if end <= self._sent:
            return ""
        out, at = [], self._sent
        for s in spans:
            if s.end <= self._sent or s.start >= end:
                continue
            self.report.count(s.mark)
            if s.mark == BLOCKED:  # what came before the finding was clean; nothing after it
                out += [self._raw[at : max(at, s.start)], "\n\n" + BLOCKED]
                self._sent = len(self._raw)
                return "".join(out)
            out += [self._raw[at : max(at, s.start)], s.mark]
            at = s.end
        out.append(self._raw[at:end] if at < end else "")
        self._sent = max(end, at)
        return "".join(out)
