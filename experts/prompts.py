"""Prompt assembly: the expert's system prompt, the numbered passages, the conversation."""

from __future__ import annotations

from collections.abc import Sequence

from experts.registry import ExpertSpec
from experts.types import ChatMessage, Passage

_PASSAGE_CHARS = 1200


def build_messages(
    spec: ExpertSpec, conversation: Sequence[ChatMessage], passages: Sequence[Passage]
) -> list[ChatMessage]:
    """The messages sent to the expert's LLM.

    Caller-supplied system messages are kept after the expert's own system prompt (so a
    client cannot remove the expert's instructions, only add to them). Passages go into
    the system message, numbered as they will be cited.
    """
    system = spec.system_prompt.strip()
    if passages:
        lines = [system, "", "Passages (cite them as [n]):"]
        for p in passages:
            text = p.text if len(p.text) <= _PASSAGE_CHARS else p.text[:_PASSAGE_CHARS] + " ..."
            lines.append(f"[{p.number}] {p.title} ({p.source})\n{text}")
        system = "\n".join(lines)
    out = [ChatMessage("system", system)]
    out.extend(m for m in conversation if m.role == "system")
    out.extend(m for m in conversation if m.role != "system")
    return out
