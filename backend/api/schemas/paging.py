"""The one paging style of every list endpoint: ``?limit=&cursor=`` in,
``{"data": [...], "next_cursor": str | null}`` out (backend/db/paging.py makes the cursor).

``limit`` is bounded per endpoint (``Query(ge=1, le=...)``); ``cursor`` is opaque: the
``next_cursor`` of the previous page, passed back unchanged. A cursor the list did not
hand out is a 400 ``invalid_cursor``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import Field

CursorParam = Annotated[
    str | None,
    Query(description="the `next_cursor` of the previous page, unchanged; leave it out for the first page"),
]

NextCursor = Annotated[
    str | None,
    Field(description="Pass as `cursor` for the next page; null on the last page."),
]
