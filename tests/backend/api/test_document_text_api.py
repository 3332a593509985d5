"""GET /api/v1/documents/{id}/text: a cited document's whole text, for callers its ACL
lets see it (404 for others, as for a document that does not exist); citations name
their document, live and when the conversation is read back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import client_as, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI

PUBLIC = b"""# Travel policy

## Booking

Book flights through the travel desk at least 14 days ahead.

## Expenses

Meals are reimbursed up to 60 EUR a day with receipts.
"""

RESTRICTED = b"""# Board minutes (restricted)

## Acquisitions

The board approved the purchase of Osprey Ltd for 12 million.
"""


@pytest.fixture
async def kb(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder) -> AsyncIterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
    )
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


async def ingest(admin: httpx.AsyncClient, name: str, data: bytes, groups: str = "") -> int:
    r = await admin.post(
        "/api/v1/documents", data={"domain": "legal", "groups": groups}, files=[("files", (name, data))]
    )
    assert r.status_code == 202, r.text
    job = (await admin.get(f"/api/v1/ingest-jobs/{r.json()['id']}")).json()
    assert job["status"] == "succeeded", job
    doc_id: int = job["results"][0]["document_id"]
    return doc_id


async def test_whole_text_in_order_for_allowed_callers_404_for_others(kb: Runtime) -> None:
    admin_key = await make_key(kb, "root@example.com", roles={"admin"})
    user_key = await make_key(kb, "sam@example.com")
    board_key = await make_key(kb, "bea@example.com", groups={"board"})
    async with client_as(kb, admin_key) as admin, client_as(kb, user_key) as user, client_as(kb, board_key) as board:
        public = await ingest(admin, "travel.md", PUBLIC)
        restricted = await ingest(admin, "minutes.md", RESTRICTED, groups="board")

        r = await user.get(f"/api/v1/documents/{public}/text")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["document"]["id"] == public
        assert body["document"]["title"] == "Travel policy"
        assert body["document"]["source"] == "upload/travel.md"
        sections = body["sections"]
        assert [s["ordinal"] for s in sections] == list(range(len(sections)))
        whole = "\n".join(s["text"] for s in sections)
        assert whole.index("14 days ahead") < whole.index("60 EUR a day")
        assert all(s["location"] and s["location"].startswith("line") for s in sections)
        assert sections[0]["title_path"][0] == "Travel policy"

        # Restricted to the board: members and admins read it; anyone else gets the same
        # 404 as for a document that does not exist.
        for allowed in (board, admin):
            r = await allowed.get(f"/api/v1/documents/{restricted}/text")
            assert r.status_code == 200 and "Osprey" in r.text
        hidden = await user.get(f"/api/v1/documents/{restricted}/text")
        missing = await user.get("/api/v1/documents/999999/text")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "document_not_found"
        assert "Osprey" not in hidden.text
        assert (await user.get("/api/v1/documents/abc/text")).status_code == 400
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(kb)), base_url="http://t") as anonymous:
        assert (await anonymous.get(f"/api/v1/documents/{public}/text")).status_code == 401


def _app(kb: Runtime) -> Any:
    from backend.app import create_app

    app = create_app(kb.settings, kb)
    app.state.runtime = kb
    return app


async def test_citations_name_their_document_live_and_read_back(kb: Runtime) -> None:
    admin_key = await make_key(kb, "root@example.com", roles={"admin"})
    async with client_as(kb, admin_key) as admin:
        public = await ingest(admin, "travel.md", PUBLIC)
        r = await admin.post(
            "/v1/chat/completions",
            json={"model": "legal", "messages": [{"role": "user", "content": "how far ahead must I book flights?"}]},
        )
        assert r.status_code == 200, r.text
        info = r.json()["expertgate"]
        assert info["citations"] and {c["document_id"] for c in info["citations"]} == {public}
        detail = (await admin.get(f"/api/v1/conversations/{info['conversation_id']}")).json()
        stored = detail["messages"][1]["route"]
        assert {c["document_id"] for c in stored["citations"]} == {public}
        # The model the answer came from is kept with it (shown under the answer).
        assert stored["upstream_model"] == info["upstream_model"] and stored["upstream_model"]
        # The document behind a citation opens for the one who was shown it.
        r = await admin.get(f"/api/v1/documents/{public}/text")
        assert "14 days ahead" in r.text
