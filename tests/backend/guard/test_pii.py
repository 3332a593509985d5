"""The PII detector, the per-expert policy and the log filter (pure, no I/O)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from backend.guard.logfilter import RedactingFilter
from backend.guard.pii import Finding, PiiDetector, PiiType, Placeholders, iban_valid, luhn_valid
from backend.guard.policy import MESSAGE_CACHE_CHARS, PiiGuard, action_for
from experts.errors import OutboundBlocked
from experts.registry import ExpertRegistry, ExpertSpec, GenerationParams
from experts.service import ExpertService
from experts.types import ChatMessage, Completion, Endpoint, Passage, StreamDone, StreamEvent, TextDelta, Usage

D = PiiDetector()


def found(text: str) -> list[tuple[str, str]]:
    return [(str(f.type), text[f.start : f.end]) for f in D.find(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+x@mail.example.co.uk today", [("EMAIL", "jane.doe+x@mail.example.co.uk")]),
        ("call +44 20 7946 0958 now", [("PHONE", "+44 20 7946 0958")]),
        ("call (212) 555-0187 now", [("PHONE", "(212) 555-0187")]),
        ("tel: 020 7946 0321", [("PHONE", "020 7946 0321")]),
        ("card 4111 1111 1111 1111 ok", [("CARD", "4111 1111 1111 1111")]),
        ("amex 378282246310005", [("CARD", "378282246310005")]),
        ("IBAN DE89 3704 0044 0532 0130 00 thanks", [("IBAN", "DE89 3704 0044 0532 0130 00")]),
        ("from 203.0.113.7 again", [("IP", "203.0.113.7")]),
        ("v6 2001:db8::8a2e:370:7334 seen", [("IP", "2001:db8::8a2e:370:7334")]),
        ("key AKIAIOSFODNN7EXAMPLE leaked", [("SECRET", "AKIAIOSFODNN7EXAMPLE")]),
        ("password=hunter22 in the file", [("SECRET", "hunter22")]),
        ("postgres://app:Tr0ub4dor3@db:5432/x", [("SECRET", "Tr0ub4dor3")]),
        ("Authorization: Bearer abcdefghijklmnop1234", [("SECRET", "abcdefghijklmnop1234")]),
        ("SSN 536-22-8741 on file", [("US_SSN", "536-22-8741")]),
        ("ssn: 536228741", [("US_SSN", "536228741")]),
        ("NI number AB 12 34 56 C", [("UK_NINO", "AB 12 34 56 C")]),
    ],
)
def test_detects_each_type(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Your order ORD-2024-118734 shipped",
        "order number 4111-2222-3333 was cancelled",
        "upgrade to v2.14.3; Python 3.11.7",
        "Windows build 10.0.19045.3803",
        "the firmware version 1.2.3.4 fixes it",
        "Section 4.2.1.3 of the MSA",
        "trace 123e4567-e89b-12d3-a456-426614174000 retried",
        "on 2024-03-15 at 12:30:45 UTC",
        "commit 3f2a9c1e8b7d6f5a4c3b2a1f0e9d8c7b6a5f4e3d",
        "tracking 1234567812345678",  # fails Luhn
        "IBAN DE89370400440532013001 has a typo",  # fails mod 97
        "SSN 000-12-3456 and 666-12-3456 are never issued",
        "listen on 0.0.0.0:8000 and 127.0.0.1:5432",
        "max_tokens=256 and password = getpass()",
        "self.password = password",
        "user@localhost and @decorator",
        "git clone git@github.com:org/repo.git",
        "MAC 00:1A:2B:3C:4D:5E and time 12:30:45",
        "ticket 212-555-0187 tracks it",
        "ISBN 978-3-16-148410-0",
        "api_key: ${OPENAI_API_KEY}",
    ],
)
def test_hard_negatives_are_left_alone(text: str) -> None:
    assert found(text) == []


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("GB82WEST1234569876543")  # wrong length for GB


def test_overlaps_resolve_by_priority() -> None:
    # The password inside the URL is a secret, not the local part of an email address.
    assert found("redis://:s3cr3tP4ss@cache.internal:6379") == [("SECRET", "s3cr3tP4ss")]
    assert [t for t, _ in found("card 4111111111111111")] == ["CARD"]  # not a phone


def test_redaction_numbers_values_consistently() -> None:
    text = "a@example.com wrote to b@example.com, then a@example.com again"
    assert D.redact(text) == "[EMAIL_1] wrote to [EMAIL_2], then [EMAIL_1] again"
    assert D.redact("nothing here") == "nothing here"
    assert D.redact(D.redact(text)) == D.redact(text)  # idempotent


def test_detector_can_be_limited_to_types() -> None:
    only_email = PiiDetector(types=frozenset({PiiType.EMAIL}))
    assert [f.type for f in only_email.find("x@example.com 203.0.113.7")] == [PiiType.EMAIL]


# -- policy ----------------------------------------------------------------------------


def spec(pii: str | None, api_base: str = "http://remote/v1") -> ExpertSpec:
    return ExpertSpec.model_validate(
        {
            "name": "legal",
            "description": "contracts and other legal questions",
            "llm": {"model": "openai/x", "api_base": api_base},
            "system_prompt": "be precise",
            "pii": pii,
        }
    )


def test_default_policy_is_allow_for_local_and_redact_for_remote() -> None:
    assert spec(None, "local").pii_policy == "allow"
    assert spec(None).pii_policy == "redact"
    assert spec("block", "local").pii_policy == "block"


CONV = [
    ChatMessage("user", "I am jane@example.org, call +1 415 555 0132"),
    ChatMessage("assistant", "Noted, jane@example.org."),
]
DOCS = [Passage(1, "runbook", "runbook.md", "escalate to 203.0.113.9")]


def test_outbound_allow_sends_everything_as_is() -> None:
    sent, docs = PiiGuard().outbound(spec("allow"), CONV, DOCS)
    assert list(sent) == CONV and list(docs) == DOCS


def test_outbound_redact_shares_placeholders_across_messages_and_passages() -> None:
    sent, docs = PiiGuard().outbound(spec("redact"), CONV, DOCS)
    assert sent[0].content == "I am [EMAIL_1], call [PHONE_1]"
    assert sent[1].content == "Noted, [EMAIL_1]."
    assert docs[0].text == "escalate to [IP_1]" and docs[0].title == "runbook"


def test_outbound_scans_a_passage_text_once_and_numbers_placeholders_per_request() -> None:
    scanned: list[str] = []

    class Counting(PiiDetector):
        def find(self, text: str) -> list[Finding]:
            scanned.append(text)
            return super().find(text)

    guard = PiiGuard(Counting())
    docs = [DOCS[0], Passage(2, "contacts", "contacts.md", "ops lead: ops@example.org, backup 203.0.113.9")]
    first = guard.outbound(spec("redact"), [ChatMessage("user", "mail me at me@example.org")], docs)[1]
    # Another request: its own placeholder numbering, the passages' findings remembered.
    second = guard.outbound(spec("redact"), [ChatMessage("user", "hello")], docs)[1]
    assert [d.text for d in first] == ["escalate to [IP_1]", "ops lead: [EMAIL_2], backup [IP_1]"]
    assert [d.text for d in second] == ["escalate to [IP_1]", "ops lead: [EMAIL_1], backup [IP_1]"]
    assert sorted(t for t in scanned if t in {d.text for d in docs}) == sorted(d.text for d in docs)
    # An edited chunk is new text: scanned again.
    edited = [Passage(1, "runbook", "runbook.md", "escalate to 198.51.100.7")]
    assert guard.outbound(spec("redact"), [], edited)[1][0].text == "escalate to [IP_1]"
    assert scanned[-1] == "escalate to 198.51.100.7"


class Recording:
    """An LLMClient that streams one short answer and keeps the messages it was sent."""

    def __init__(self) -> None:
        self.sent: list[list[ChatMessage]] = []

    async def complete(self, *_: object) -> Completion:
        raise AssertionError("only streams are asked for here")

    async def stream(
        self, expert: str, endpoint: Endpoint, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[StreamEvent]:
        self.sent.append(list(messages))
        yield TextDelta("noted")
        yield StreamDone("stop", Usage(1, 1), "m")

    async def warm(self, endpoints: Sequence[Endpoint] = ()) -> None:
        return None


async def test_a_streamed_request_scans_each_message_once_with_the_findings_of_a_fresh_scan() -> None:
    scanned: list[str] = []

    class Counting(PiiDetector):
        def find(self, text: str) -> list[Finding]:
            scanned.append(text)
            return super().find(text)

    registry = ExpertRegistry.from_mapping(
        {
            "experts": {
                "general": {
                    "description": "everything the other experts do not cover",
                    "system_prompt": "help",
                    "llm": {"model": "openai/x", "api_base": "local"},
                },
                "legal": {
                    "description": "contracts and other legal questions",
                    "system_prompt": "be precise",
                    "llm": {"model": "openai/x", "api_base": "http://x/v1"},
                },
            }
        }
    )
    assert registry.get("legal").pii_policy == "redact"
    guard = PiiGuard(Counting())
    client = Recording()
    endpoints = {name: Endpoint("openai/x", "http://x/v1", None, 5.0) for name in registry.names}
    svc = ExpertService(registry, client, endpoints, guard)
    conv = [*CONV, ChatMessage("user", "and mail bob@example.com the cap")]
    # The pipeline's order for a stream: the guard stage's scan, the check before the
    # stream opens, then the prompt the stream itself builds.
    guard.scan([m.content for m in conv if m.role != "assistant"])
    svc.check_prompt("legal", conv)
    events = [e async for e in svc.stream("legal", conv, allow_fallback=False)]
    assert isinstance(events[-1], StreamDone)
    assert sorted(scanned) == sorted(m.content for m in conv)
    scope = Placeholders()
    fresh = [PiiDetector().redact(m.content, scope) for m in conv]
    assert [m.content for m in client.sent[0][-len(conv) :]] == fresh
    assert fresh == ["I am [EMAIL_1], call [PHONE_1]", "Noted, [EMAIL_1].", "and mail [EMAIL_2] the cap"]
    assert guard.scan([m.content for m in conv]) == PiiGuard().scan([m.content for m in conv])


def test_a_message_over_the_length_bound_is_scanned_each_time_and_not_kept() -> None:
    scanned: list[int] = []

    class Counting(PiiDetector):
        def find(self, text: str) -> list[Finding]:
            scanned.append(len(text))
            return super().find(text)

    guard = PiiGuard(Counting())
    at_bound = ("mail x@example.com. " * (MESSAGE_CACHE_CHARS // 20 + 1))[:MESSAGE_CACHE_CHARS]
    over = at_bound + "!"
    for _ in range(2):
        assert guard.scan([at_bound, over]).counts == {"EMAIL": 2 * (MESSAGE_CACHE_CHARS // 20)}
    assert scanned == [len(at_bound), len(over), len(over)]


def test_outbound_block_refuses_pii_in_messages_but_not_in_passages() -> None:
    with pytest.raises(OutboundBlocked) as err:
        PiiGuard().outbound(spec("block"), CONV, DOCS)
    assert "jane" not in str(err.value) and "EMAIL" in str(err.value)
    clean = [ChatMessage("user", "what is a force majeure clause?")]
    sent, docs = PiiGuard().outbound(spec("block"), clean, DOCS)
    assert list(sent) == clean and list(docs) == DOCS


def test_scan_reports_counts_only_and_actions() -> None:
    report = PiiGuard().scan(["x@example.com and y@example.com", "4111 1111 1111 1111"])
    assert report.counts == {"EMAIL": 2, "CARD": 1}
    assert "x@example.com" not in repr(report)
    assert action_for("redact", report) == "redacted" and action_for("block", report) == "blocked"
    assert action_for("allow", PiiGuard().scan(["nothing"])) == "none"


# -- logs ------------------------------------------------------------------------------


def test_log_filter_redacts_messages_args_and_tracebacks() -> None:
    logger = logging.getLogger("test.pii.filter")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("login failed for %s from %s", "bob@example.com", "203.0.113.5")
        try:
            raise ValueError("card 4111 1111 1111 1111 declined")
        except ValueError:
            logger.exception("payment error")
    finally:
        logger.removeHandler(handler)
    assert records[0].getMessage() == "login failed for [EMAIL_1] from [IP_1]"
    assert records[1].exc_text is not None and "4111" not in records[1].exc_text
    assert "[CARD_1]" in records[1].exc_text
