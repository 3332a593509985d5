"""Keyset pages: the one cursor every paginated list of the API hands out and takes back.

A list is ordered by a sort key (one or more columns, all ascending or all descending,
the last one unique, so that the order is total). A page is the first ``limit`` rows
strictly past the key of the last row the previous page returned, so rows inserted
between two requests never shift, repeat or hide rows already listed (unlike an offset).

The cursor is that last key as opaque text: ``base64url(JSON [listing, *values])``
without padding, URL-safe. The listing's name is in it, so that a cursor of one list
handed to another is refused like a malformed one: :class:`BadRequest` with the stable
code ``invalid_cursor`` and ``param`` ``cursor``. Key values are ints, strings or
datetimes (ISO 8601 in the JSON, timezone kept as the database gave it).

Use: ``FLAGS = Keyset("safety_flags", (int,))``; in the query
``FLAGS.after((SafetyFlag.id,), cursor, descending=True)`` and ``.limit(limit + 1)``;
then ``FLAGS.page(rows, limit, lambda r: (r.id,))`` gives the rows and ``next_cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

from backend.errors import BadRequest

KeyValue = int | str | datetime
KeyType = type[int] | type[str] | type[datetime]
Column = ColumnElement[Any] | QueryableAttribute[Any]
Row = TypeVar("Row")

INVALID_CURSOR = "invalid_cursor"
# Far longer than any key we encode; a longer one is refused before it is decoded.
MAX_CURSOR_CHARS = 512


@dataclass(frozen=True, slots=True)
class Keyset:
    """One listing's sort key: ``name`` (tags its cursors) and the types of its columns,
    in order."""

    name: str
    types: tuple[KeyType, ...]

    def encode(self, key: Sequence[KeyValue]) -> str:
        """The cursor for a page that goes on after the row whose sort key is ``key``."""
        if len(key) != len(self.types) or not all(_fits(v, t) for v, t in zip(key, self.types, strict=True)):
            raise TypeError(f"key {key!r} does not match the {self.name} listing's key types {self.types!r}")
        values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
        raw = json.dumps([self.name, *values], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def decode(self, cursor: str) -> tuple[KeyValue, ...]:
        """The sort key a cursor of this listing holds. Raises BadRequest
        (``invalid_cursor``) for text that is not one, including another listing's."""
        try:
            if len(cursor) > MAX_CURSOR_CHARS:
                raise ValueError("too long")
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            fields = json.loads(raw)
            if not isinstance(fields, list) or len(fields) != len(self.types) + 1 or fields[0] != self.name:
                raise ValueError("not this listing's")
            return tuple(_parse(v, t) for v, t in zip(fields[1:], self.types, strict=True))
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
            raise BadRequest(
                "the cursor is not one this list returned: pass back the next_cursor of the previous "
                "page unchanged, or leave cursor out to start from the first page",
                code=INVALID_CURSOR,
                param="cursor",
            ) from None

    def after(self, columns: Sequence[Column], cursor: str | None, *, descending: bool) -> ColumnElement[bool] | None:
        """The WHERE clause for rows strictly past ``cursor`` in the order of ``columns``
        (None: no cursor, or an empty one, the first page). Raises BadRequest for a cursor not of this
        listing. Written as ``a < x OR (a = x AND b < y)`` rather than a row-value
        comparison, so that every column's type processing applies to its bound value."""
        if not cursor:
            return None
        key = self.decode(cursor)
        if len(columns) != len(key):
            raise TypeError(f"{len(columns)} columns for the {self.name} listing's {len(key)}-column key")
        clauses: list[ColumnElement[bool]] = []
        for i, (column, value) in enumerate(zip(columns, key, strict=True)):
            past = column < value if descending else column > value
            equal = [c == v for c, v in zip(columns[:i], key[:i], strict=True)]
            clauses.append(and_(*equal, past) if equal else past)
        return or_(*clauses)

    def page(
        self, rows: Sequence[Row], limit: int, key: Callable[[Row], Sequence[KeyValue]]
    ) -> tuple[list[Row], str | None]:
        """(the first ``limit`` of ``rows``, the cursor after the last of them or None).

        ``rows`` are what the query returned with ``LIMIT limit + 1``: one more than
        ``limit`` means there is a next page.
        """
        shown = list(rows[:limit])
        more = len(rows) > limit and bool(shown)
        return shown, self.encode(key(shown[-1])) if more else None


def _fits(value: object, kind: KeyType) -> bool:
    # bool is an int subclass, and a datetime is never an int or a str: checked exactly.
    return type(value) is kind or (kind is datetime and isinstance(value, datetime))


def _parse(value: object, kind: KeyType) -> KeyValue:
    if kind is datetime and isinstance(value, str):
        return datetime.fromisoformat(value)
    if kind is int and type(value) is int:
        return value
    if kind is str and isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not a {kind.__name__}")
