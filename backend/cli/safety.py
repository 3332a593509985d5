"""`expertgate safety export --out FILE`: the admins' labels on flagged requests as
training data (router/safety/data's JSONL format). Parse, call one service, print.

The export is audited (``safety.exported``, the operator as actor), so the command
opens the database for writing (migrated first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from backend.cli.context import Access, open_command
from backend.safety.service import SafetyFlagService
from backend.safety.types import TrainingRow
from backend.settings import Settings


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[TrainingRow]:
        async with open_command(settings, Access.WRITE) as cmd, cmd.db.transaction() as session:
            return await SafetyFlagService(session, cmd.trail).training_rows(cmd.actor)

    rows = asyncio.run(run())
    out: Path = args.out
    with out.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(
                json.dumps({"text": r.text, "label": r.label, "cell": r.cell, "style": r.style}, ensure_ascii=False)
            )
            fh.write("\n")
    print(f"exported {len(rows)} labelled safety flags to {out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    safety = sub.add_parser("safety", help="requests the input safety check flagged").add_subparsers(
        dest="safety_command", required=True
    )
    export = safety.add_parser(
        "export", help="write the admins' labels on flagged requests as training data (JSONL, PLAN.md's format)"
    )
    export.add_argument("--out", type=Path, required=True, help="the JSONL file to write")
    export.set_defaults(func=cmd_export)
