"""`expertgate audit verify|export|retention|head|anchor|chain`: parse, call one service, print.

verify, export, head and anchor only read the database: they never migrate it, and stop
(exit 1) naming `expertgate migrate` when its schema is missing or behind.

Exit codes: 0 done (verify: chain intact), 1 verify found a bad event or a command
failed, 2 bad settings (from the main CLI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import IO

from backend.audit.anchors import Anchor, HeadMissing
from backend.audit.chainer import chain_pending
from backend.audit.export import record_export, render
from backend.audit.query import stream_events
from backend.audit.retention import run_retention
from backend.audit.types import AuditFilter
from backend.audit.verify import verify_chain
from backend.cli.context import Access, open_command
from backend.db.models import AuditChainHead
from backend.settings import Settings


def _when(value: str) -> datetime:
    """ISO 8601 date or datetime; naive means UTC."""
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date/time") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _days(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days >= 1")
    return int(value)


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        async with open_command(settings, Access.READ) as cmd, cmd.db.session() as session:
            report = await verify_chain(session, cmd.trail.key, cmd.trail.anchors)
        if args.json:
            print(json.dumps({
                "ok": report.ok, "checked": report.checked, "head_seq": report.head_seq,
                "head_hash": report.head_hash, "first_bad_seq": report.first_bad_seq,
                "kind": report.kind, "problem": report.problem, "purged": report.purged,
                "pending": report.pending, "anchors_checked": report.anchors_checked,
            }))  # fmt: skip
        elif report.ok:
            print(
                f"audit chain intact: {report.checked} events verified "
                f"({report.purged} with text purged by retention); "
                f"head seq {report.head_seq} hash {report.head_hash}; "
                f"{report.anchors_checked} anchors match"
                + (f"; {report.pending} events pending in the outbox" if report.pending else "")
            )
        else:
            where = f"at seq {report.first_bad_seq}" if report.first_bad_seq is not None else "(no single event)"
            print(f"audit chain BROKEN {where} [{report.kind}]: {report.problem}", file=sys.stderr)
        return 0 if report.ok else 1

    return asyncio.run(run())


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    flt = AuditFilter(
        since=args.since,
        until=args.until,
        user=args.user,
        team=args.team,
        expert=args.expert,
        outcome=args.outcome,
        action=args.action,
    )

    async def run(out: IO[bytes]) -> int:
        count = 0
        async with open_command(settings, Access.READ) as cmd:
            await record_export(cmd.db, cmd.trail, cmd.actor, args.format, flt)
            async with cmd.db.session() as session:
                async for chunk in render(stream_events(session, flt), args.format):
                    out.write(chunk)
                    count += 1
        out.flush()
        return count - (1 if args.format == "csv" else 0)

    if args.output:
        with open(args.output, "wb") as fh:
            n = asyncio.run(run(fh))
        print(f"exported {n} events to {args.output}", file=sys.stderr)
    else:
        try:
            asyncio.run(run(sys.stdout.buffer))
        except BrokenPipeError:
            # `... | head`: the reader left. Not an error; silence the flush at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def cmd_retention(settings: Settings, args: argparse.Namespace) -> int:
    days = args.days or settings.audit_retention_days
    if days is None:
        print(
            "expertgate: no retention period: pass --days or set EXPERTGATE_AUDIT_RETENTION_DAYS",
            file=sys.stderr,
        )
        return 1

    async def run() -> tuple[int, datetime]:
        async with open_command(settings, Access.WRITE) as cmd:
            return await run_retention(cmd.db, cmd.trail, cmd.actor, days)

    purged, cutoff = asyncio.run(run())
    print(f"purged the text of {purged} events older than {cutoff.isoformat()}")
    return 0


def cmd_head(settings: Settings, _: argparse.Namespace) -> int:
    async def run() -> tuple[int, str] | None:
        async with open_command(settings, Access.READ) as cmd, cmd.db.session() as session:
            head = await session.get(AuditChainHead, 1)
            return None if head is None else (head.seq, head.hash)

    found = asyncio.run(run())
    if found is None:
        print(f"expertgate: {HeadMissing()}; run `expertgate audit verify`", file=sys.stderr)
        return 1
    seq, digest = found
    # Keep this line somewhere the database's writers cannot reach (a ticket, a
    # notary, another system): with it, even an unkeyed chain cannot be rewritten
    # unnoticed up to this point.
    print(f"{seq} {digest}")
    return 0


def cmd_anchor(settings: Settings, _: argparse.Namespace) -> int:
    where = settings.resolved_audit_anchor_file

    async def run() -> Anchor | None:
        async with open_command(settings, Access.READ) as cmd:
            anchors = cmd.trail.anchors
            assert anchors is not None, "build_audit_trail always sets the anchor file"
            return await anchors.anchor(cmd.db)

    try:
        anchor = asyncio.run(run())
    except (OSError, HeadMissing) as exc:
        print(f"expertgate: could not anchor the audit chain in {where}: {exc}", file=sys.stderr)
        return 1
    if anchor is None:  # only a long-lived process skips a repeated head
        return 0
    print(f"anchored seq {anchor.seq} hash {anchor.hash} in {where}")
    return 0


def cmd_chain(settings: Settings, _: argparse.Namespace) -> int:
    async def run() -> int:
        async with open_command(settings, Access.WRITE) as cmd:
            return await chain_pending(cmd.db, cmd.trail.key)

    print(f"chained {asyncio.run(run())} pending events")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="verify, export and prune the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser("verify", help="check the whole hash chain (exit 1 if broken)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=cmd_verify)

    export = audit.add_parser("export", help="stream events as JSON Lines or CSV")
    export.add_argument("--since", type=_when, help="ISO 8601 (naive = UTC)")
    export.add_argument("--until", type=_when, help="ISO 8601, exclusive")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--output", "-o", help="write here instead of stdout")
    export.add_argument("--user", help="only this user's events (email)")
    export.add_argument("--team")
    export.add_argument("--expert")
    export.add_argument("--outcome", choices=["ok", "refused", "error", "aborted"])
    export.add_argument("--action", help="e.g. chat.completion, key.created, auth.failed")
    export.set_defaults(func=cmd_export)

    retention = audit.add_parser("retention", help="drop prompt/answer text older than the retention period")
    retention.add_argument("--days", type=_days, help="default: EXPERTGATE_AUDIT_RETENTION_DAYS")
    retention.set_defaults(func=cmd_retention)

    head = audit.add_parser("head", help="print the chain head 'SEQ HASH' (to keep elsewhere)")
    head.set_defaults(func=cmd_head)

    anchor = audit.add_parser("anchor", help="append the signed chain head to the anchor file (verify checks it)")
    anchor.set_defaults(func=cmd_anchor)

    chain = audit.add_parser("chain", help="chain the events pending in the outbox now (the API does it by itself)")
    chain.set_defaults(func=cmd_chain)
