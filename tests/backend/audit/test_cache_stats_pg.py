"""The dashboard's response-cache figures on real PostgreSQL: the scenario of
test_cache_stats.py (JSON paths into ``payload.cache``, conditional sums) must give the
same figures as on SQLite."""

from __future__ import annotations

import pytest

from backend.db.session import Database
from tests.backend.audit.test_cache_stats import cache_scenario

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def test_cache_figures_on_postgres(db: Database) -> None:
    await cache_scenario(db)
