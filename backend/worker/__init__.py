"""Background work on Celery: retraining, ingestion and audit retention (docs/deploy.md).

Nothing here builds an app at import; :func:`backend.worker.app.make_celery` does, from
Settings. ``backend.worker.main`` is the only module that calls it at import (for the
``celery -A backend.worker.main`` command line); ``expertgate worker|beat`` call it in
the CLI.
"""
