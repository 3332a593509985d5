"""The `expertgate` command line. Each command parses, calls one service, prints.

Commands get their database, audit trail and operator from
:func:`backend.cli.context.open_command`: migrated first when they write, checked
(never migrated) when they only read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from backend.settings import Settings, SettingsError, load_settings


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from backend.cli.serve import serve

    overrides = {"port": args.port, "host": args.host, "workers": args.workers}
    if any(v is not None for v in overrides.values()):
        settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    serve(settings)
    return 0


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from backend.cli.context import prepare_database

    prepare_database(settings)
    print("database is at the latest migration")
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    from backend.cli.context import Access, open_command
    from backend.identity.admin import KeyAdmin

    async def run() -> str:
        async with open_command(settings, Access.WRITE) as cmd, cmd.db.transaction() as session:
            issued = await KeyAdmin(session, cmd.trail).create(
                cmd.actor,
                args.user,
                role=args.role,
                groups=set(args.group or ()),
                team=args.team,
                name=args.name or "",
            )
        return issued.secret

    secret = asyncio.run(run())
    email = args.user.strip().lower()
    print(f"created API key for {email} (role {args.role}); it is shown only once:")
    print(secret)
    return 0


def cmd_route(settings: Settings, args: argparse.Namespace) -> int:
    from backend.gate.wiring import build_router, bundled_encoder
    from experts.registry import AUTO, ExpertRegistry
    from router.types import RouteRequest

    registry = ExpertRegistry.from_yaml(settings.experts_file)
    encoder = bundled_encoder(settings, serving=True)
    router = build_router(settings, registry, encoder)
    decision = router.route(
        RouteRequest(text=args.text, requested=None if args.model == AUTO else args.model)
    )
    print(
        json.dumps(
            {
                "expert": decision.expert,
                "confidence": decision.confidence,
                "reason": str(decision.reason),
                "top_k": list(decision.top_k),
                "probabilities": dict(decision.probabilities),
                "router_version": decision.router_version,
                "ood_score": decision.ood_score,
            },
            indent=2,
        )
    )
    return 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from backend.cli.ingest import run

    return run(settings, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expertgate", description="Domain-routed enterprise assistant."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API server (and the local LLM if experts use it)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers", type=int, help="server processes (default: EXPERTGATE_WORKERS or 1)"
    )
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a user (if new) and an API key for it")
    create.add_argument("--user", required=True, help="the user's email")
    create.add_argument("--role", default="user", choices=["user", "admin", "auditor", "reviewer"])
    create.add_argument("--team")
    create.add_argument("--group", action="append", help="a group the user belongs to (repeatable)")
    create.add_argument("--name", help="a label for the key")
    create.set_defaults(func=cmd_keys_create)
    from backend.cli.keys import register as add_key_commands

    add_key_commands(keys)
    from backend.cli.quotas import register as add_quota_commands

    add_quota_commands(sub)

    route = sub.add_parser("route", help="print the routing decision for TEXT as JSON")
    route.add_argument("text")
    route.add_argument("--model", default="auto", help="an expert name to request, or auto")
    route.set_defaults(func=cmd_route)

    from backend.cli.gate import register as add_router_commands

    add_router_commands(sub)

    from backend.cli.audit import register as add_audit_commands

    add_audit_commands(sub)

    from backend.cli.safety import register as add_safety_commands

    add_safety_commands(sub)

    from backend.cli.worker import register as add_worker_commands

    add_worker_commands(sub)

    from backend.cli.slack import register as add_slack_commands

    add_slack_commands(sub)

    evaluate = sub.add_parser("eval", help="evaluate the running system")
    evaluations = evaluate.add_subparsers(dest="eval_command", required=True)
    answers = evaluations.add_parser(
        "answers",
        help="answer quality over the sample knowledge: retrieval hit@5, key facts, unsupported claims "
        "(bench/answer_eval.py; pass its options after --)",
    )
    answers.add_argument("options", nargs=argparse.REMAINDER, help="options of bench/answer_eval.py (see --help)")
    answers.set_defaults(func=cmd_eval_answers)

    from backend.cli.ingest import add_arguments as add_ingest_arguments

    ingest = sub.add_parser("ingest", help="add, update or delete documents of a knowledge domain")
    add_ingest_arguments(ingest)
    ingest.set_defaults(func=cmd_ingest)
    return parser


def cmd_eval_answers(_: Settings, args: argparse.Namespace) -> int:
    """The answer-quality eval (docs/answer-eval.md). It lives in bench/ with its data, so
    it runs from a source checkout, not from an installed wheel."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "bench" / "answer_eval.py").exists():
        print("expertgate: the answer eval runs from a source checkout (bench/answer_eval.py)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(checkout))
    from bench.answer_eval import main as answer_eval

    options = [o for o in args.options if o != "--"]
    return answer_eval(options)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"expertgate: {exc}", file=sys.stderr)
        return 2
    from backend.observability.logs import setup_logging

    setup_logging(settings)
    from backend.errors import AppError
    from experts.errors import ExpertError
    from router.errors import RouterError

    try:
        result: int = args.func(settings, args)
        return result
    except (AppError, ExpertError, RouterError) as exc:
        print(f"expertgate: {exc}", file=sys.stderr)
        return 1
    except SettingsError as exc:  # a setting the command cannot work with
        print(f"expertgate: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
