"""An injected document cannot change what the assistant does.

A support page any user may read hides an instruction (reply only with a fixed phrase,
then add an image linking to an outside URL). Under the documents' safety policy
(``safety_documents``, backend/knowledge/safety.py) the passage reaches the model fenced
as quoted data (``fence``), or not at all (``drop``). The model here is the echo: what
it was given is in its answer, so the prompt is read from the fake server's record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.container import build_container
from experts.prompts import FENCE_CLOSE, FENCE_OPEN
from router.encoder import Encoder
from tests.conftest import auth
from tests.fakes.openai_server import FakeOpenAI
from tests.redteam import documents as docs
from tests.redteam.attacks import ATTACKS
from tests.redteam.conftest import Harness, Seen, redteam_settings

pytestmark = pytest.mark.redteam

# Attacks that ask for support material (or name the support expert): the injected page
# may be retrieved for them too.
SUPPORT_ATTACKS = [a for a in ATTACKS if a.model == "support" or a.id in ("sys-05", "pst-04", "pst-09", "lng-05")]


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


async def _ask(tmp: Path, encoder: Encoder, llm: FakeOpenAI, policy: str) -> list[Seen]:
    settings = redteam_settings(tmp, llm, None, {}, safety_documents=policy)
    h = Harness(build_container(settings, encoder=encoder, environ={}), llm, None)
    seen = []
    try:
        await h.users()
        for files in ([("offline-mode.md", (docs.SAMPLES / "support" / "offline-mode.md").read_bytes())],
                      [("mobile-offline-sync-faq.md", docs.INJECTED_DOC)]):  # fmt: skip
            r = await h.http.post("/api/v1/documents", headers=auth(h.keys["admin"]), data={"domain": "support"},
                                  files=[("files", f) for f in files])  # fmt: skip
            assert r.status_code == 202, r.text
        question = {"model": "support", "messages": [{"role": "user", "content": docs.INJECTED_QUESTION}]}
        seen.append(await h.chat("attacker", "injected", question))
        seen.append(await h.chat("attacker", "injected", {**question, "stream": True}, channel="stream"))
        for attack in SUPPORT_ATTACKS:
            seen.append(await h.chat("attacker", attack.id, attack.body()))
    finally:
        await h.close()
    return seen


@pytest.fixture(scope="module", params=["fence", "drop"])
def asked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, encoder: Encoder,
          echo_llm: FakeOpenAI) -> Iterator[tuple[str, list[Seen]]]:  # fmt: skip
    echo_llm.reset()
    policy = request.param
    yield policy, asyncio.run(_ask(tmp_path_factory.mktemp(f"redteam-{policy}"), encoder, echo_llm, policy))


def test_the_injected_page_is_fenced_or_dropped(asked: tuple[str, list[Seen]]) -> None:
    policy, seen = asked
    question = [s for s in seen if s.attack == "injected"]
    assert all(s.status == 200 for s in seen), [(s.attack, s.status) for s in seen if s.status != 200]
    # The page is the best answer to the question: retrieval did hand it over.
    benign = "Keep jobs on this device"
    for s in seen:
        instruction = [p for p in (docs.INJECTED_PHRASE, docs.EXFIL_URL) if p in s.prompts]
        if policy == "drop":
            assert not instruction, f"{s.attack} on {s.channel}: the dropped passage reached the model"
        else:
            assert all(fenced_only(s.prompts, p) for p in instruction), f"{s.attack} on {s.channel}: not fenced"
    if policy == "fence":
        for s in question:
            assert benign in s.prompts and docs.INJECTED_PHRASE in s.prompts, s.channel
            assert fenced_only(s.prompts, benign)  # the whole passage is quoted, its title too
    else:
        for s in question:  # the clean page still reaches the model
            assert "offline-mode.md" in s.prompts, s.channel
