"""`expertgate worker` and `expertgate beat`: run Celery with the app built from Settings."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from backend.settings import Settings, SettingsError


def _app(settings: Settings) -> Any:
    from backend.worker.app import make_celery

    try:
        return make_celery(settings)
    except SettingsError as exc:
        print(f"expertgate: {exc}", file=sys.stderr)
        return None


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    app = _app(settings)
    if app is None:
        return 2
    argv = ["worker", f"--loglevel={settings.log_level.upper()}", f"--concurrency={args.concurrency}"]
    if args.pool:
        argv.append(f"--pool={args.pool}")
    if args.hostname:
        argv.append(f"--hostname={args.hostname}")
    app.worker_main(argv)
    return 0


def cmd_beat(settings: Settings, args: argparse.Namespace) -> int:
    app = _app(settings)
    if app is None:
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    schedule = args.schedule or str(settings.data_dir / "celerybeat-schedule")
    app.start(["beat", f"--loglevel={settings.log_level.upper()}", f"--schedule={schedule}"])
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser("worker", help="run a Celery worker (ingest, retrain, retention tasks)")
    worker.add_argument("--concurrency", type=int, default=1, help="worker processes (default 1)")
    worker.add_argument("--pool", choices=["prefork", "solo", "threads"], help="Celery pool (default prefork)")
    worker.add_argument("--hostname", help="node name, e.g. worker1@%%h")
    worker.set_defaults(func=cmd_worker)

    beat = sub.add_parser("beat", help="run the Celery beat scheduler (exactly one per deployment)")
    beat.add_argument("--schedule", help="beat's state file (default: DATA_DIR/celerybeat-schedule)")
    beat.set_defaults(func=cmd_beat)
