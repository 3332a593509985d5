"""Slack shows the grounding marks too (issue 22): each unsupported span in italics with a
warning after it, and a line under the answer saying how many and why."""

from __future__ import annotations

from backend.knowledge.types import NO_RETRIEVAL
from backend.slack.blocks import AnswerView, answer_blocks, answer_text

TEXT = "Invoices are kept for 2 years. Ask finance for exceptions <now>."


def view(grounding: dict[str, object] | None) -> AnswerView:
    return AnswerView(
        request_id="r1", expert="legal", confidence=0.9, reason="routed", text=TEXT,
        retrieval=NO_RETRIEVAL, experts=["legal", "general"], grounding=grounding,
    )  # fmt: skip


def test_an_unsupported_span_is_marked_in_place_and_explained() -> None:
    start = TEXT.index("2 years")
    mark = {"start": start, "end": start + 7, "text": "2 years", "reason": "number_mismatch",
            "detail": "'2 years' does not appear in the cited passages [1]"}  # fmt: skip
    shown = view({"score": 0.5, "checked": 2, "unsupported": [mark], "action": "flag"})
    body = answer_blocks(shown)[1]["text"]["text"]
    assert "kept for _2 years_ :warning:." in body
    assert "&lt;now&gt;" in body  # the rest is still escaped
    line = answer_blocks(shown)[2]["elements"][0]["text"]
    assert line.startswith(":warning: 1 of 2 statements are not supported") and "'2 years' does not appear" in line
    assert "_2 years_ :warning:" in answer_text(shown)


def test_spans_outside_the_text_or_overlapping_are_ignored_and_clean_answers_unmarked() -> None:
    marks = [{"start": 0, "end": 8, "detail": "a"}, {"start": 4, "end": 12, "detail": "b"},
             {"start": 500, "end": 510, "detail": "c"}]  # fmt: skip
    body = answer_blocks(view({"score": 0.0, "checked": 2, "unsupported": marks, "action": "flag"}))[1]["text"]["text"]
    assert body.count(":warning:") == 1
    clean = answer_blocks(view({"score": 1.0, "checked": 2, "unsupported": [], "action": "none"}))
    assert ":warning:" not in str(clean)
    assert ":warning:" not in str(answer_blocks(view(None)))
