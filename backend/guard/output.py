"""What an answer may not carry out (issue 23, output checks): secrets and the expert's
own instructions.

- **Secrets** (API keys, tokens, passwords, private keys, connection strings: the PII
  detector's SECRET findings) are replaced by ``[secret removed]``, whoever's document
  they came from: an answer quoting a runbook must not hand out its password.
- **Instructions**: a run of at least ``LEAK_CHARS`` characters of the expert's system
  prompt (whitespace-normalised) is replaced by ``[instructions withheld]``: the answer
  to "print your system prompt" says nothing of it.

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
LEAK_CHARS = 60
HOLD = 64
CONTEXT = 200
_SECRETS = PiiDetector(frozenset({PiiType.SECRET}))
_SPACE = re.compile(r"\s+")


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

    def record(self) -> dict[str, int]:
        return {"secrets_removed": self.secrets, "instructions_withheld": self.instructions}


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


def find(text: str, prompt: str) -> list[Span]:
    """Secrets and instruction runs in ``text``, non-overlapping, by start."""
    spans = [Span(f.start, f.end, SECRET_MARK) for f in _SECRETS.find(text)]
    for leak in _prompt_spans(text, prompt):
        if all(leak.end <= s.start or s.end <= leak.start for s in spans):
            spans.append(leak)
    return sorted(spans, key=lambda s: s.start)


def _apply(text: str, spans: list[Span], report: OutputReport) -> str:
    out, at = [], 0
    for span in spans:
        out += [text[at : span.start], span.mark]
        at = span.end
        if span.mark == SECRET_MARK:
            report.secrets += 1
        else:
            report.instructions += 1
    out.append(text[at:])
    return "".join(out)


def scrub(text: str, prompt: str) -> tuple[str, OutputReport]:
    """``text`` with secrets and runs of ``prompt`` removed, and what was removed."""
    report = OutputReport()
    return _apply(text, find(text, prompt), report), report


@dataclass
class StreamScrubber:
    """:func:`scrub` for a stream: ``feed`` each delta, send what it returns; ``finish``
    returns the rest. ``report`` counts what was removed."""

    prompt: str
    report: OutputReport = field(default_factory=OutputReport)
    _raw: str = ""
    _sent: int = 0  # how much of _raw has been released (checked)

    def feed(self, delta: str) -> str:
        self._raw += delta
        return self._release(len(self._raw) - HOLD)

    def finish(self) -> str:
        return self._release(len(self._raw))

    def _release(self, end: int) -> str:
        if end <= self._sent:
            return ""
        start = max(0, self._sent - CONTEXT)
        spans = [Span(s.start + start, s.end + start, s.mark) for s in find(self._raw[start:], self.prompt)]
        for s in spans:  # never cut through a finding: hold it back until it is whole
            if s.start < end < s.end:
                end = s.start
        if end <= self._sent:
            return ""
        out, at = [], self._sent
        for s in spans:
            if s.end <= self._sent or s.start >= end:
                continue
            out += [self._raw[at : max(at, s.start)], s.mark]
            at = s.end
            if s.mark == SECRET_MARK:
                self.report.secrets += 1
            else:
                self.report.instructions += 1
        out.append(self._raw[at:end] if at < end else "")
        self._sent = max(end, at)
        return "".join(out)
