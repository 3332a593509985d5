"""The one keyset cursor (backend/db/paging.py): round trips, refusals, and page walks on
a migrated database with rows inserted between pages."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from backend.db.models import Conversation, Document
from backend.db.paging import Keyset
from backend.db.session import Database
from backend.errors import BadRequest
from backend.identity.service import IdentityService

PAIRS = Keyset("pairs", (datetime, str))
IDS = Keyset("ids", (int,))


def test_a_cursor_round_trips_and_is_url_safe_text() -> None:
    aware = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
    naive = datetime(2026, 3, 1, 12, 30, 5)
    for stamp in (aware, naive):
        cursor = PAIRS.encode((stamp, "id/with+odd?chars"))
        assert cursor.isascii() and not set(cursor) & set("+/=?&")
        assert PAIRS.decode(cursor) == (stamp, "id/with+odd?chars")
    assert IDS.decode(IDS.encode((7,))) == (7,)


def test_a_key_of_the_wrong_shape_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        IDS.encode(("7",))
    with pytest.raises(TypeError):
        IDS.encode((True,))
    with pytest.raises(TypeError):
        PAIRS.encode((datetime(2026, 1, 1),))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        "x",  # not whole base64
        b64(b"\xff\xfe\x00"),  # not text
        b64(b"seq:5"),  # text, not JSON (an old audit cursor)
        b64(json.dumps({"ids": 5}).encode()),  # JSON, not a list
        b64(json.dumps(["ids"]).encode()),  # no key
        b64(json.dumps(["ids", 5, 6]).encode()),  # a key too long
        b64(json.dumps(["ids", "5"]).encode()),  # a key of the wrong type
        b64(json.dumps(["ids", True]).encode()),
        b64(json.dumps(["ids", 5.0]).encode()),
        IDS.encode((5,))[:-2],  # cut short
        PAIRS.encode((datetime(2026, 1, 1), "a")),  # another listing's cursor
        b64(json.dumps(["pairs", "yesterday", "a"]).encode()),
        "A" * 600,  # far longer than any we hand out
    ],
)
def test_a_cursor_it_did_not_hand_out_is_refused_with_a_stable_code(cursor: str) -> None:
    with pytest.raises(BadRequest) as refused:
        IDS.decode(cursor)
    error = refused.value
    assert (error.status, error.code, error.param) == (400, "invalid_cursor", "cursor")
    assert "next_cursor" in error.message


def test_a_page_says_whether_another_follows() -> None:
    rows = [3, 2, 1]
    assert IDS.page(rows, 2, lambda r: (r,)) == ([3, 2], IDS.encode((2,)))
    assert IDS.page(rows, 3, lambda r: (r,)) == ([3, 2, 1], None)
    assert IDS.page([], 3, lambda r: (r,)) == ([], None)
    assert IDS.after([Document.id], None, descending=True) is None
    assert IDS.after([Document.id], "", descending=True) is None


async def test_a_newest_first_walk_sees_every_row_once_in_order_despite_inserts(db: Database) -> None:
    """Ties on updated_at are broken by id. Rows inserted while paging: newer than the
    position reached are not this walk's (they belong before page one); older ones are
    met in their place. Nothing repeats, nothing already due is skipped."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.transaction() as session:
        user = await IdentityService(session).ensure_user("walker@example.com")
        user_id = user.id

    def conv(cid: str, minutes: int) -> Conversation:
        stamp = base + timedelta(minutes=minutes)
        return Conversation(id=cid, user_id=user_id, title=cid, created_at=stamp, updated_at=stamp)

    async with db.transaction() as session:
        session.add_all([conv(f"c{i}", m) for i, m in enumerate((9, 8, 8, 8, 5, 3, 1))])
    columns = (Conversation.updated_at, Conversation.id)
    seen: list[str] = []
    cursor: str | None = None
    inserted = False
    while True:
        async with db.session() as session:
            query = select(Conversation).order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            past = PAIRS.after(columns, cursor, descending=True)
            if past is not None:
                query = query.where(past)
            found = list(await session.scalars(query.limit(3)))
            rows, cursor = PAIRS.page(found, 2, lambda c: (c.updated_at, c.id))
        seen += [c.id for c in rows]
        if not inserted:
            # After the first page (c0, c3): one newer than everything, one tied with the
            # last row shown but ordered after it (id "c10" < "c3"), one tied but before
            # it ("c4" > "c3": already passed), and two older ones.
            async with db.transaction() as session:
                session.add_all([conv("new", 20), conv("c10", 8), conv("c4x", 8), conv("old", 4), conv("oldest", 0)])
            inserted = True
        if cursor is None:
            break
    assert seen == ["c0", "c3", "c2", "c10", "c1", "c4", "old", "c5", "c6", "oldest"]
    assert len(seen) == len(set(seen))


async def test_an_oldest_first_walk_meets_rows_appended_while_paging(db: Database) -> None:
    """Ascending ids: rows appended between pages come at the end, each once; a row
    deleted between pages shifts nothing (an offset would skip one)."""

    def doc(n: int) -> Document:
        return Document(
            domain="d", source=f"s{n}", title=f"t{n}", media_type="text/plain", groups=[], chunk_count=0,
            size_bytes=0, content_hash=f"h{n}",
        )  # fmt: skip

    async with db.transaction() as session:
        session.add_all([doc(n) for n in range(5)])
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        async with db.session() as session:
            query = select(Document).order_by(Document.id)
            past = IDS.after((Document.id,), cursor, descending=False)
            if past is not None:
                query = query.where(past)
            rows, cursor = IDS.page(list(await session.scalars(query.limit(3))), 2, lambda d: (d.id,))
        seen += [d.source for d in rows]
        pages += 1
        if pages == 1:
            async with db.transaction() as session:
                session.add_all([doc(5), doc(6)])
                await session.execute(delete(Document).where(Document.source == "s0"))
        if cursor is None:
            break
    assert seen == [f"s{n}" for n in range(7)] and pages == 4
