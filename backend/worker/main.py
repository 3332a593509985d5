"""Entry module for the Celery command line: ``celery -A backend.worker.main worker``.

The one place that builds an app at import (from the environment); ``expertgate worker``
and ``expertgate beat`` are the usual entry points and do the same.
"""

from __future__ import annotations

from backend.settings import load_settings
from backend.worker.app import make_celery

app = make_celery(load_settings())
