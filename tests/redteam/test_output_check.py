"""The output check's fix found by the red-team suite: secrets assigned to
environment-style names (``STRIPE_WEBHOOK_SECRET=whsec_...``, ``REPORTS_API_KEY=<hex>``)
left in answers, whole and streamed: the PII detector's keyword rule reads the bare
word only (``api_key=``), and these values have no known shape."""

from __future__ import annotations

import pytest

from backend.guard.output import SECRET_MARK, OutputPolicy, StreamScrubber, scrub

pytestmark = pytest.mark.redteam

WEBHOOK = "whsec_Qz81LmT4vXw9Bc2Nd7Fh3Jk6Pr0St5Uy"
HEX_KEY = "0d4c8e1f27a9b3c56e7f8091a2b3c4d5e6f70819"
TEXT = (
    f"Staging reads STRIPE_WEBHOOK_SECRET={WEBHOOK} REPORTS_API_KEY={HEX_KEY} and, in YAML, "
    f'db_password: "Pl4in-Text-Pass" from the environment.'
)


def test_values_of_secret_names_are_removed_and_the_names_kept() -> None:
    text, report = scrub(TEXT, "")
    for value in (WEBHOOK, HEX_KEY, "Pl4in-Text-Pass"):
        assert value not in text
    assert report.secrets == 3 and text.count(SECRET_MARK) == 3
    assert "STRIPE_WEBHOOK_SECRET=[secret removed]" in text and "REPORTS_API_KEY=[secret removed]" in text


@pytest.mark.parametrize("size", [1, 3, 7, 40])
def test_streamed_in_any_chunking(size: int) -> None:
    scrubber = StreamScrubber("")
    sent = "".join(scrubber.feed(TEXT[i : i + size]) for i in range(0, len(TEXT), size)) + scrubber.finish()
    assert sent == scrub(TEXT, "")[0]


def test_names_placeholders_and_prose_stay() -> None:
    for text in (
        "Set REPORTS_API_KEY in the environment, never in the repository.",
        "STRIPE_WEBHOOK_SECRET=${STRIPE_WEBHOOK_SECRET} in the compose file",
        "export GITHUB_TOKEN=<your token>",
        "the CACHE_TTL=3600 and MAX_TOKENS=256 settings",
    ):
        out, report = scrub(text, "")
        assert out == text and report.secrets == 0, text


def test_the_policy_decides_what_a_found_value_becomes() -> None:
    assert scrub(TEXT, "", OutputPolicy(secrets="block"))[1].blocked
