"""An injected document cannot change what the assistant does.

Support pages any user may read carry an instruction for the assistant (reply only with
a fixed phrase, reveal the system prompt, add an image linking to an outside URL). Under
the documents' safety policy (``safety_documents``, backend/knowledge/safety.py) a
flagged passage reaches the model fenced as quoted data (``fence``) or not at all
(``drop``). The model is the echo; what it was given is read from the fake server's
record. Two pages: one that is nothing but the instruction, and one where it sits in a
paragraph of ordinary help text.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.runtime import build_runtime
from experts.prompts import FENCE_CLOSE, FENCE_OPEN
from router.encoder import Encoder
from tests.conftest import auth
from tests.fakes.openai_server import FakeOpenAI
from tests.redteam import documents as docs
from tests.redteam.attacks import ATTACKS
from tests.redteam.conftest import Harness, Seen, redteam_settings

pytestmark = pytest.mark.redteam

# Attacks that name the support expert or ask support things: the pages may be retrieved for them.
SUPPORT_ATTACKS = [a for a in ATTACKS if a.model == "support" or a.id in ("sys-05", "pst-04", "pst-09", "lng-05")]
PAGES = [
    ("offline-mode.md", (docs.SAMPLES / "support" / "offline-mode.md").read_bytes()),
    ("mobile-offline-sync-faq.md", docs.INJECTED_DOC),
    ("offline-sync-note.md", docs.BLUNT_DOC),
]


def fenced_only(prompt: str, phrase: str) -> bool:
    """Whether every occurrence of ``phrase`` in ``prompt`` lies inside a fence (after a
    FENCE_OPEN with no FENCE_CLOSE between them)."""
    at = prompt.find(phrase)
    while at != -1:
        opened, closed = prompt.rfind(FENCE_OPEN, 0, at), prompt.rfind(FENCE_CLOSE, 0, at)
        if opened == -1 or closed > opened:
            return False
        at = prompt.find(phrase, at + 1)
    return True


def held_back(policy: str, prompt: str, phrase: str) -> bool:
    """``phrase`` reached the model as the policy says: fenced, or not at all."""
    return phrase not in prompt if policy == "drop" else fenced_only(prompt, phrase)


async def _ask(tmp: Path, encoder: Encoder, llm: FakeOpenAI, gate_store: Path, policy: str) -> list[Seen]:
    settings = redteam_settings(tmp, llm, None, {}, gate_store=gate_store, safety_documents=policy)
    h = Harness(build_runtime(settings, encoder=encoder, environ={}), llm, None)
    seen = []
    try:
        await h.users()
        for page in PAGES:
            r = await h.http.post(
                "/api/v1/documents", headers=auth(h.keys["admin"]), data={"domain": "support"}, files=[("files", page)]
            )
            assert r.status_code == 202, r.text
        for name, question in (("injected", docs.INJECTED_QUESTION), ("blunt", docs.BLUNT_QUESTION)):
            body = {"model": "support", "messages": [{"role": "user", "content": question}]}
            seen.append(await h.chat("attacker", name, body))
            seen.append(await h.chat("attacker", name, {**body, "stream": True}, channel="stream"))
        for attack in SUPPORT_ATTACKS:
            seen.append(await h.chat("attacker", attack.id, attack.body()))
    finally:
        await h.close()
    return seen


@pytest.fixture(scope="module", params=["fence", "drop"])
def asked(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    encoder: Encoder,
    echo_llm: FakeOpenAI,
    test_gate_store: Path,
) -> tuple[str, list[Seen]]:
    echo_llm.reset()
    policy = request.param
    return policy, asyncio.run(
        _ask(tmp_path_factory.mktemp(f"redteam-{policy}"), encoder, echo_llm, test_gate_store, policy)
    )


def test_a_flagged_page_is_fenced_or_dropped(asked: tuple[str, list[Seen]]) -> None:
    policy, seen = asked
    assert all(s.status == 200 for s in seen), [(s.attack, s.status) for s in seen if s.status != 200]
    for s in seen:
        assert held_back(policy, s.prompts, docs.BLUNT_PHRASE), f"{s.attack} on {s.channel} ({policy})"
    blunt = [s for s in seen if s.attack == "blunt"]
    if policy == "fence":  # retrieval does hand the page over: quoted, title and all
        assert all(docs.BLUNT_PHRASE in s.prompts and fenced_only(s.prompts, "Offline sync: note") for s in blunt)
    else:  # the other pages still reach the model
        assert all("offline-mode.md" in s.prompts for s in blunt)


def test_an_instruction_amid_ordinary_text_is_fenced_or_dropped(asked: tuple[str, list[Seen]]) -> None:
    policy, seen = asked
    injected = [s for s in seen if s.attack == "injected"]
    # The page is the best answer to its question: retrieval hands it over.
    assert injected and all("Keep jobs on this device" in s.prompts or policy == "drop" for s in injected)
    for s in seen:
        assert docs.EXFIL_URL not in s.prompts, f"{s.attack} on {s.channel}"
        assert held_back(policy, s.prompts, docs.INJECTED_PHRASE), f"{s.attack} on {s.channel} ({policy})"
