"""Every attack under the strictest policy (``on_flag: refuse`` on every expert): each one
the input check scores over its threshold is refused with 400 ``unsafe_request`` before
the model hears of it, on /v1/chat/completions (plain and streamed) and /v1/route; the
others are answered. How many of the attacks were flagged (the check's recall on this
unseen set) is printed, not asserted: the figure is for the issue's numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.chat.pipeline import HISTORY_TURNS
from backend.guard.safety import build_input_safety
from experts.registry import ExpertRegistry
from router.encoder import Encoder
from tests.fakes.openai_server import FakeOpenAI
from tests.redteam.attacks import ATTACKS, Attack
from tests.redteam.conftest import Campaign, campaign
from tests.redteam.documents import ROOT

pytestmark = pytest.mark.redteam

EXPERTS = ("code", "legal", "support", "general")
CHANNELS = ("chat", "stream", "route")


@dataclass(frozen=True)
class Expected:
    flagged: bool
    category: str | None
    score: float


@pytest.fixture(scope="module")
def expected(encoder: Encoder) -> dict[str, Expected]:
    """What the input check says of each attack, asked directly: the last user message
    with the earlier user turns, as the pipeline reads them. Every expert has the same
    policy here, so which experts a request reaches does not change the thresholds."""
    check = build_input_safety(None, encoder, ExpertRegistry.from_yaml(ROOT / "experts" / "experts.yaml"))
    out = {}
    for attack in ATTACKS:
        assessed = check.assess_all(attack.last_user_text, attack.history[-HISTORY_TURNS:], None)
        verdict = check.decide(assessed, ["general"])
        out[attack.id] = Expected(bool(verdict.flagged), verdict.category, max(verdict.scores.values()))
    return out


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, encoder: Encoder, echo_llm: FakeOpenAI, test_gate_store: Path
) -> Campaign:
    experts = {e: {"safety": {"on_flag": "refuse"}} for e in EXPERTS}
    return campaign(tmp_path_factory.mktemp("redteam-refuse"), encoder, echo_llm, None, gate_store=test_gate_store, channels=CHANNELS,
                    knowledge=False, experts=experts)  # fmt: skip


def test_flagged_attacks_are_refused_and_the_others_answered(
    run: Campaign, expected: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = []
    for s in run.seen:
        if s.channel not in CHANNELS:
            continue
        want = expected[s.attack]
        # A refused request never reached the model.
        ok = s.status == 400 and "unsafe_request" in s.shown and s.prompts == "" if want.flagged else s.status == 200
        if not ok:
            wrong.append(
                f"{s.attack} on {s.channel}: status {s.status}, flagged {want.flagged} ({want.category} {want.score:.2f})"
            )
    assert not wrong, "\n".join(wrong)
    _report(expected, capsys)


def test_each_refusal_is_audited_with_its_category(run: Campaign, expected: dict[str, Expected]) -> None:
    """One audit event per refused request, on every channel, with the category the check
    gives the attack."""
    want = Counter(w.category for w in expected.values() if w.flagged for _ in CHANNELS)
    assert Counter(r["category"] for r in run.refusals) == want
    assert all(r["flagged"] and r["model"] for r in run.refusals)


def _report(expected: dict[str, Expected], capsys: pytest.CaptureFixture[str]) -> None:
    by_family: Counter[str] = Counter()
    flagged_by_family: Counter[str] = Counter()
    attacks: dict[str, Attack] = {a.id: a for a in ATTACKS}
    for attack_id, want in expected.items():
        by_family[attacks[attack_id].family] += 1
        flagged_by_family[attacks[attack_id].family] += want.flagged
    flagged = sum(flagged_by_family.values())
    families = ", ".join(f"{f} {flagged_by_family[f]}/{n}" for f, n in sorted(by_family.items()))
    missed = sorted(a for a, w in expected.items() if not w.flagged)
    with capsys.disabled():
        print(f"\nredteam (policy refuse): {flagged} of {len(expected)} attacks flagged and refused "
              f"(recall {flagged / len(expected):.3f}); by family: {families}")  # fmt: skip
        print(f"redteam: not flagged: {', '.join(missed)}")
