"""The audit event's fields are listed once in Python (backend/audit/record.py) and once
in SQL (backend/db/models.py, AuditEventColumns): these tests hold the two in step, and
check that every other form of the event is built from them."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime

from sqlalchemy import JSON, Table

from backend.api.schemas.audit import AuditEventOut
from backend.audit.chain import EventBody
from backend.audit.export import CSV_COLUMNS
from backend.audit.record import EVENT_FIELDS, HASHED_FIELDS, TEXT_FIELDS, EventFields
from backend.audit.rows import PendingRow, event_columns, outbox_columns
from backend.audit.types import SHOWN_FIELDS, AuditEventView
from backend.db.models import AuditEvent, AuditEventColumns, AuditOutbox


def _table(model: type[object]) -> Table:
    return typing.cast(Table, model.__table__)  # type: ignore[attr-defined]


def _names(dataclass: type[object]) -> list[str]:
    return [f.name for f in fields(dataclass)]  # type: ignore[arg-type]


def test_the_sql_columns_are_the_python_fields_in_the_same_order() -> None:
    shared = [c.name for c in _table(AuditOutbox).columns if c.name in EVENT_FIELDS]
    assert shared == list(EVENT_FIELDS)
    assert [name for name in AuditEventColumns.__annotations__] == list(EVENT_FIELDS)


def test_each_column_has_its_fields_type_and_nullability() -> None:
    hints = typing.get_type_hints(EventFields)
    hints["ts"] = datetime  # the type parameter: a datetime wherever it is stored
    for table in (_table(AuditEvent), _table(AuditOutbox)):
        for name in EVENT_FIELDS:
            column, hint = table.c[name], hints[name]
            args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
            assert column.nullable == (type(None) in args), (table.name, name)
            python = next(a for a in args if a is not type(None))
            if isinstance(column.type, JSON):  # its python_type is object
                assert typing.get_origin(python) is Mapping, (table.name, name)
            else:
                assert issubclass(column.type.python_type, python), (table.name, name)


def test_each_table_holds_exactly_its_forms_fields() -> None:
    view = [name for name in _names(AuditEventView) if name not in ("problem", "text_withheld")]
    assert set(_table(AuditEvent).columns.keys()) == set(view) == set(SHOWN_FIELDS)
    assert set(_table(AuditOutbox).columns.keys()) == set(_names(PendingRow))
    assert {c.name for c in event_columns().selected_columns} == set(SHOWN_FIELDS)
    assert {c.name for c in outbox_columns().selected_columns} == set(_names(PendingRow))


def test_the_body_hashes_every_field_but_the_text() -> None:
    assert set(_names(EventBody)) == {*EVENT_FIELDS, "seq", "prev_hash"}
    assert set(HASHED_FIELDS) == set(EVENT_FIELDS) - set(TEXT_FIELDS)


def test_the_api_and_the_exports_show_the_stored_fields_in_table_order() -> None:
    # The order of the columns in the migration that made audit_events (0002).
    assert SHOWN_FIELDS[0] == "seq" and SHOWN_FIELDS[-2:] == ("prev_hash", "hash")
    assert SHOWN_FIELDS.index("content_purged_at") == SHOWN_FIELDS.index("content_digest") + 1
    assert list(AuditEventOut.model_fields) == [*SHOWN_FIELDS, "unreadable", "text_withheld"]
    assert (*SHOWN_FIELDS, "unreadable") == CSV_COLUMNS
