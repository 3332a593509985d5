"""What the bot says: answer messages with Block Kit feedback controls, error texts, Home.

Pure functions from typed values to Slack JSON (dicts are Slack's wire format here and
never leave this package's Web API calls). Text uses Slack mrkdwn, escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend.errors import AppError
from backend.knowledge.types import Retrieval
from backend.quota.types import Headroom

Block = dict[str, Any]

HELPFUL = "feedback_helpful"
NOT_HELPFUL = "feedback_not_helpful"
SHOULD_HAVE_GONE_TO = "feedback_expert"
# Slack refuses a section text over 3,000 characters.
SECTION_LIMIT = 3000
THINKING = "_Thinking…_"


def escape(text: str) -> str:
    """Slack's three control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True, slots=True)
class AnswerView:
    """A finished (or streaming) answer as the bot shows it."""

    request_id: str
    expert: str
    confidence: float
    reason: str
    text: str
    retrieval: Retrieval
    experts: Sequence[str]  # every expert the user may pick as "should have gone to"
    grounding: Mapping[str, object] | None = None  # the grounding check's record


def _marks(view: AnswerView) -> list[tuple[int, int, str]]:
    """(start, end, detail) of the unsupported spans, in order, inside the text, not overlapping."""
    raw = (view.grounding or {}).get("unsupported")
    marks: list[dict[str, Any]] = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
    out: list[tuple[int, int, str]] = []
    for mark in sorted(marks, key=lambda m: int(m.get("start", 0))):
        start, end = int(mark.get("start", -1)), int(mark.get("end", -1))
        if 0 <= start < end <= len(view.text) and (not out or start >= out[-1][1]):
            out.append((start, end, str(mark.get("detail", ""))))
    return out


def marked_text(view: AnswerView) -> str:
    """The answer, escaped, with each unsupported span in italics and a :warning: after it."""
    parts, at = [], 0
    for start, end, _ in _marks(view):
        parts += [escape(view.text[at:start]), "_", escape(view.text[start:end]).strip(), "_ :warning:"]
        at = end
    parts.append(escape(view.text[at:]))
    return "".join(parts)


def grounding_line(view: AnswerView) -> str | None:
    """Under the answer: how many statements the cited documents do not support, and why."""
    marks = _marks(view)
    grounding = view.grounding or {}
    action = grounding.get("action")
    if action == "quote":
        return ":warning: The model's answer was not supported by the documents, so this quotes them instead."
    if action == "refuse":
        return ":warning: The documents do not clearly answer this."
    if not marks:
        return None
    checked = grounding.get("checked")
    lines = [f":warning: {len(marks)} of {checked} statements are not supported by the cited documents:"]
    lines += [f"• {escape(detail)}" for _, _, detail in marks[:3]]
    return "\n".join(lines)


def badge(expert: str, confidence: float, reason: str) -> str:
    """The expert line above an answer, e.g. ``:label: *legal* expert · confidence 0.82``."""
    line = f":label: *{escape(expert)}* expert · confidence {confidence:.2f}"
    return line if reason in ("routed", "") else f"{line} · {escape(reason)}"


def citation_lines(retrieval: Retrieval) -> list[str]:
    """``[n] <url|title>`` for sources that are URLs, ``[n] title (`path`)`` otherwise."""
    lines = []
    for p in retrieval.passages:
        title = escape(p.title or p.source)
        if p.source.startswith(("http://", "https://")):
            lines.append(f"[{p.number}] <{p.source}|{title}>")
        else:
            lines.append(f"[{p.number}] {title} (`{escape(p.source)}`)")
    return lines


def streaming_text(expert: str, text: str) -> str:
    return f"*{escape(expert)}* is answering…\n{escape(text)} ▍"


def answer_text(view: AnswerView) -> str:
    """The plain-text fallback (notifications, clients without blocks)."""
    parts = [badge(view.expert, view.confidence, view.reason), marked_text(view)]
    line = grounding_line(view)
    if line:
        parts.append(line)
    cites = citation_lines(view.retrieval)
    if cites:
        parts.append("Sources: " + " ".join(cites))
    return "\n".join(parts)


def answer_blocks(view: AnswerView) -> list[Block]:
    body = marked_text(view) or "_(empty answer)_"
    if len(body) > SECTION_LIMIT:
        body = body[: SECTION_LIMIT - 1] + "…"
    blocks: list[Block] = [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": badge(view.expert, view.confidence, view.reason)}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": body}},
    ]
    line = grounding_line(view)
    if line:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    cites = citation_lines(view.retrieval)
    if cites:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "*Sources:* " + "  ".join(cites)}]})
    others = [name for name in view.experts if name != view.expert]
    elements: list[Block] = [
        _button("Helpful", HELPFUL, view.request_id, "primary"),
        _button("Not helpful", NOT_HELPFUL, view.request_id, "danger"),
    ]
    if others:
        elements.append(
            {
                "type": "static_select",
                "action_id": SHOULD_HAVE_GONE_TO,
                "placeholder": {"type": "plain_text", "text": "Should have gone to…"},
                "options": [
                    {"text": {"type": "plain_text", "text": name}, "value": f"{view.request_id}|{name}"}
                    for name in others
                ],
            }
        )
    blocks.append({"type": "actions", "block_id": f"feedback:{view.request_id}", "elements": elements})
    return blocks


def _button(label: str, action_id: str, value: str, style: str) -> Block:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value,
        "style": style,
    }


def error_text(error: AppError, request_id: str | None = None) -> str:
    """A friendly sentence for a refused or failed request, by its stable code."""
    code = error.code
    if code == "quota_exceeded":
        head = ":hourglass: You have reached your usage limit for now."
    elif code == "pii_blocked":
        head = (
            ":lock: I can't send that question to the expert: it contains personal data "
            "that its policy does not allow. Remove it and ask again."
        )
    elif error.status == 503:
        head = ":warning: The experts are unavailable right now. Please try again in a few minutes."
    elif code == "slack_user_unknown":
        head = ":wave: I don't know you yet."
    elif code in ("model_not_found", "expert_not_allowed"):
        head = ":no_entry: That expert can't take your question."
    elif error.status == 413:
        head = ":scroll: That question is too long for me."
    else:
        head = ":warning: I couldn't answer that."
    text = f"{head}\n{escape(error.message)}"
    return f"{text}\n_request id: {request_id}_" if request_id else text


def home_view(email: str | None, headroom: Sequence[Headroom], note: str = "") -> Block:
    """The App Home tab: who the user is to expertgate and what is left of each limit."""
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": "expertgate"}}]
    if email is None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": escape(note)}})
        return {"type": "home", "blocks": blocks}
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"Signed in as *{escape(email)}*."}})
    if not headroom:
        lines = ["No usage limits apply to you."]
    else:
        lines = [
            f"• *{h.subject}* {h.kind.value.replace('_', ' ')}: "
            f"{max(0, h.remaining)} of {h.limit} left (resets in {round(h.reset_s)} s)"
            for h in headroom
        ]
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Your usage*\n" + "\n".join(lines)}})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": "Mention me, DM me, or use `/ask [expert] question`."}],
        }
    )
    return {"type": "home", "blocks": blocks}
