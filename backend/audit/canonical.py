"""Canonical JSON: one byte string per value, so a hash over it is reproducible.

Rules (a subset of RFC 8785 that our own values need):

- objects: keys must be strings and are sorted by code point; no whitespace at all;
- strings: UTF-8, only ``"`` ``\\`` and control characters escaped (``ensure_ascii`` off);
- numbers: ints as decimal; floats by Python's shortest round-trip ``repr``; NaN and
  infinities are refused (JSON has no spelling for them); ``-0.0`` is written ``0.0``
  so it cannot hash differently from a stored zero;
- tuples are lists; anything that is not JSON data (datetimes, sets, objects) raises
  TypeError, so a caller converts it explicitly instead of it being stringified.

Values stored in a JSON column and read back (SQLite text, PostgreSQL ``json``, not
``jsonb``) produce the same bytes again; that is what makes verification possible.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

JSONScalar = str | int | float | bool | None
JSONValue = JSONScalar | Sequence["JSONValue"] | Mapping[str, "JSONValue"]


def normalize(value: object) -> object:
    """A plain dict/list/scalar copy of ``value``. Raises TypeError or ValueError."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"canonical JSON has no representation for {value!r}")
        return 0.0 if value == 0.0 else value
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON object keys must be str, not {type(key).__name__}")
            out[key] = normalize(item)
        return out
    if isinstance(value, list | tuple):
        return [normalize(item) for item in value]
    raise TypeError(f"{type(value).__name__} is not JSON data; convert it before auditing")


def canonical_json(value: object) -> bytes:
    """The canonical UTF-8 bytes of ``value``. Raises TypeError / ValueError (see module)."""
    return json.dumps(
        normalize(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
