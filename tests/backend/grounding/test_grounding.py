"""The grounding checker (backend/grounding): claims, values, citations, offsets, verdicts.

Most tests use a tiny bag-of-words encoder (hashed stems, L2-normalised): hermetic and
exact enough for cosine to mean "shares words". One test runs the bundled MiniLM.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence

import numpy as np
import pytest

from backend.grounding import Grounding, GroundingChecker, Unsupported
from backend.grounding.facts import Fact, numbers
from backend.grounding.text import stems
from router.encoder import Encoder, Vectors

INVOICES = (
    "| Invoices, credit notes, payment records | **7 years** after the financial year end | Legal minimum (tax) |"
)
TICKETS = "Support tickets are kept for 3 years after closure and then anonymised."
REFUNDS = (
    "If an annual subscription renews and the customer asks to cancel within 14 days of the renewal date, "
    "they receive a pro-rated refund for the unused part of the new annual term."
)


class BagOfWords:
    """Hashed stems -> a 256-d L2-normalised vector."""

    name = "bag-of-words"
    dim = 256

    def encode(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for s in stems(text):
                out[i, zlib.crc32(s.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


@pytest.fixture
def checker() -> GroundingChecker:
    # A lenient support threshold: these tests are about claims, values, citations and
    # offsets; the calibrated defaults (they flag about a quarter of supported sentences)
    # are measured by bench/grounding_checker.py with the real encoder.
    return GroundingChecker(BagOfWords(), support_threshold=0.5, lexical_weight=0.2)


def test_invoice_retention_duration_is_a_number_mismatch_at_its_offsets(checker: GroundingChecker) -> None:
    answer = "Sure! The maximum duration for a retention policy is 2 years [1]."
    result = checker.check(answer, [(1, INVOICES)])
    assert result.checked == 1
    assert result.score == 0.0
    [finding] = result.unsupported
    assert finding.reason == "number_mismatch"
    assert answer[finding.start : finding.end] == finding.text == "2 years"
    assert finding.detail == "'2 years' does not appear in the cited passages [1]"


@pytest.mark.parametrize(
    "claim",
    [
        "Invoices are kept for seven years after the financial year end [1].",
        "Invoices are kept for 7 years after the financial year end [1].",
        "Invoices have a 7-year retention period after the financial year end [1].",
    ],
)
def test_a_stated_duration_written_another_way_is_supported(checker: GroundingChecker, claim: str) -> None:
    result = checker.check(claim, [(1, INVOICES)])
    assert result == Grounding(score=1.0, checked=1, unsupported=())


def test_a_supported_paraphrase_passes(checker: GroundingChecker) -> None:
    answer = (
        "Customers who cancel an annual subscription within 14 days of the renewal date get a pro-rated refund "
        "for the unused part of the term [1]."
    )
    assert checker.check(answer, [(1, REFUNDS)]).score == 1.0


def test_an_invented_cause_is_unsupported(checker: GroundingChecker) -> None:
    answer = (
        "The refund is delayed because the payment processor batches chargebacks overnight in the data warehouse [1]."
    )
    [finding] = checker.check(answer, [(1, REFUNDS)]).unsupported
    assert finding.reason == "unsupported"
    assert (finding.start, finding.end) == (0, len(answer))


def test_a_claim_citing_2_is_checked_only_against_passage_2(checker: GroundingChecker) -> None:
    passages = [(1, INVOICES), (2, TICKETS)]
    wrong_source = "Invoices are kept for 7 years after the financial year end [2]."
    [finding] = checker.check(wrong_source, passages).unsupported
    assert finding.text == "7 years"
    assert finding.detail == "'7 years' does not appear in the cited passages [2]"
    # Without a marker every passage counts.
    assert checker.check("Invoices are kept for 7 years after the financial year end.", passages).score == 1.0


def test_code_blocks_greetings_questions_and_headings_are_not_checked(checker: GroundingChecker) -> None:
    answer = (
        "Hi there!\n\n## Retention\n\n"
        "Support tickets are kept for 3 years after closure [1].\n\n"
        "```bash\nkeep --years 99 tickets\n```\n\n"
        "Do you want the full schedule?\n\nI hope this helps! Let me know if you have other questions."
    )
    result = checker.check(answer, [(1, TICKETS)])
    assert result == Grounding(score=1.0, checked=1, unsupported=())


def test_list_items_are_claims_and_offsets_point_at_their_text(checker: GroundingChecker) -> None:
    answer = (
        "Retention:\n"
        "1. Support tickets are kept for 3 years after closure [2].\n"
        "2. Invoices are kept for **10 years** after the financial year end [1].\n"
        "- Support tickets are kept for 3 years and then anonymised [2]."
    )
    result = checker.check(answer, [(1, INVOICES), (2, TICKETS)])
    assert result.checked == 3
    assert result.score == pytest.approx(2 / 3)
    [finding] = result.unsupported
    assert answer[finding.start : finding.end] == "10 years"


def test_wrong_name_is_a_number_mismatch(checker: GroundingChecker) -> None:
    passage = 'Ask Legal Ops via the Legal Desk (request type "Retention question") before creating a new store.'
    answer = "Ask the Privacy Council via the Legal Desk before creating a new store [1]."
    [finding] = checker.check(answer, [(1, passage)]).unsupported
    assert (finding.reason, finding.text) == ("number_mismatch", "Privacy Council")


def test_negating_the_passage_is_a_contradiction(checker: GroundingChecker) -> None:
    [finding] = checker.check("Support tickets are not anonymised after closure [1].", [(1, TICKETS)]).unsupported
    assert finding.reason == "contradiction"
    assert "[1]" in finding.detail


def test_citing_a_passage_that_was_not_given_is_unsupported(checker: GroundingChecker) -> None:
    [finding] = checker.check("Support tickets are kept for 3 years [4].", [(1, TICKETS)]).unsupported
    assert finding.reason == "unsupported"
    assert "[4]" in finding.detail


def test_no_passages_means_not_checked(checker: GroundingChecker) -> None:
    result = checker.check("Support tickets are kept for 3 years.", [])
    assert result == Grounding.not_checked()
    assert result.score is None
    assert result.record() == {"score": None, "checked": 0, "unsupported": []}


def test_nothing_to_check_scores_one(checker: GroundingChecker) -> None:
    assert checker.check("Hello! How can I help you today?", [(1, TICKETS)]) == Grounding(1.0, 0, ())


def test_record_is_json(checker: GroundingChecker) -> None:
    result = checker.check(
        "Invoices are kept for 2 years [1]. Support tickets are kept 3 years [2].", [(1, INVOICES), (2, TICKETS)]
    )
    record = json.loads(json.dumps(result.record()))
    assert record["checked"] == 2
    assert record["score"] == 0.5
    assert record["unsupported"] == [
        Unsupported(
            22, 29, "2 years", "number_mismatch", "'2 years' does not appear in the cited passages [1]"
        ).record()
    ]


def test_without_an_encoder_lexical_overlap_decides() -> None:
    lexical = GroundingChecker()
    assert lexical.check("Support tickets are anonymised after closure [1].", [(1, TICKETS)]).score == 1.0
    assert lexical.check("Escalations go to the duty manager by phone [1].", [(1, TICKETS)]).score == 0.0


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        ("a 30-day window", [Fact("30", "day", "duration")]),
        ("USD 5,800 or $29", [Fact("5800", "usd", "amount"), Fact("29", "usd", "amount")]),
        ("EUR 100", [Fact("100", "eur", "amount")]),
        ("5-10 business days", [Fact("5", "day", "duration"), Fact("10", "day", "duration")]),
        ("99.9% uptime, or 5 percent", [Fact("99.9", "%", "percentage"), Fact("5", "%", "percentage")]),
        ("twenty-four hours at 09:00", [Fact("24", "hour", "duration"), Fact("9:00", None, "number")]),
    ],
)
def test_values_are_normalised(text: str, facts: list[Fact]) -> None:
    assert [f for f, _, _ in numbers(text)] == facts


def test_the_bundled_encoder_accepts_a_paraphrase_and_flags_an_invention(encoder: Encoder) -> None:
    checker = GroundingChecker(encoder)
    passages = [(1, REFUNDS), (2, TICKETS)]
    paraphrase = "Annual customers who cancel within 14 days of renewing are refunded pro rata for the unused term [1]."
    invented = "Refunds are only possible if the customer has not logged in since the renewal [1]."
    assert checker.check(paraphrase, passages).score == 1.0
    [finding] = checker.check(invented, passages).unsupported
    assert finding.reason in {"unsupported", "contradiction"}


BREACH = (
    "| Notify affected Beacon customers (we are processor) | Within **48 hours** | Confirming a breach affects "
    "their data |\n"
    "| Notify the supervisory authority (we are controller) | Within **72 hours** | Becoming aware of the breach |"
)


def test_a_value_stated_for_another_subject_is_a_number_mismatch(checker: GroundingChecker) -> None:
    answer = "Affected customers are notified within 72 hours of confirming the breach [1]."
    [finding] = checker.check(answer, [(1, BREACH)]).unsupported
    assert finding.reason == "number_mismatch"
    assert answer[finding.start : finding.end] == finding.text == "72 hours"
    assert "48 hours" in finding.detail
    right = "The supervisory authority is notified within 72 hours of becoming aware of the breach [1]."
    assert checker.check(right, [(1, BREACH)]).score == 1.0


def test_values_of_two_rows_stated_together_are_supported(checker: GroundingChecker) -> None:
    passage = "| Third-party API keys | every 90 days |\n| Webhook signing secrets | every 180 days |"
    answer = "Third-party API keys are rotated every 90 days and webhook signing secrets every 180 days [1]."
    assert checker.check(answer, [(1, passage)]).score == 1.0


def test_a_wrong_address_is_a_name_mismatch(checker: GroundingChecker) -> None:
    passage = "Forward requests to privacy@harborlight.example the same day."
    [finding] = checker.check("Requests are forwarded to dpo@harborlight.example [1].", [(1, passage)]).unsupported
    assert (finding.reason, finding.text) == ("number_mismatch", "dpo@harborlight.example")


class Counting(BagOfWords):
    """The bag-of-words encoder, recording every text it is asked to encode."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.seen.extend(texts)
        return super().encode(texts)


def test_the_encoder_sees_only_claims_the_words_leave_open() -> None:
    encoder = Counting()
    checker = GroundingChecker(encoder, lexical_accept=0.75, lexical_reject=0.45, candidates=1)
    passages = [(1, TICKETS), (2, REFUNDS)]
    decided = (
        "Support tickets are kept for 3 years after closure and then anonymised [1]. "  # all its words: supported
        "Invoices are kept for 9 years [1]. "  # a wrong value: flagged without the encoder
        "Escalations go to the duty manager by phone [1]."  # few of its words: unsupported
    )
    result = checker.check(decided, passages)
    assert result.checked == 3 and result.score == pytest.approx(1 / 3)
    assert encoder.seen == []
    open_ = "Support tickets are anonymised by the archive team [1]."  # 3 of 5 words: the encoder decides
    checker.check(open_, passages)
    assert encoder.seen == ["Support tickets are anonymised by the archive team  .", TICKETS]
    # The passage sentence's vector is cached: a second answer encodes only its claim.
    checker.check("Support tickets are anonymised by the records office [1].", passages)
    assert encoder.seen[2:] == ["Support tickets are anonymised by the records office  ."]


def test_an_acronym_of_words_in_the_passage_is_not_an_invented_name() -> None:
    checker = GroundingChecker()
    passage = "Section 9 of the Master Services Agreement caps liability at twelve months of fees."
    result = checker.check("Our MSA caps liability at twelve months of fees [1].", [(1, passage)])
    assert result.unsupported == ()
    invented = checker.check("Our QXZ caps liability at twelve months of fees [1].", [(1, passage)])
    assert [u.reason for u in invented.unsupported] == ["number_mismatch"]
