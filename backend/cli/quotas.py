"""`expertgate quota set|list`: thin over :class:`backend.quota.policies.QuotaPolicies`."""

from __future__ import annotations

import argparse
import asyncio

from backend.cli.context import Access, open_command
from backend.quota.cache import PolicyCache, PolicyVersion
from backend.quota.policies import PolicyChange, QuotaPolicies, Scope, StoredPolicy
from backend.redis_conn import connect_redis
from backend.settings import Settings


def _line(p: StoredPolicy) -> str:
    def show(v: int | None) -> str:
        return "-" if v is None else str(v)

    q = p.policy
    return (
        f"{p.scope:<6}  {p.name:<32}  rpm={show(q.rpm):<8}  tokens/day={show(q.tokens_per_day):<12}  "
        f"tokens/month={show(q.tokens_per_month):<12}  on_limit={q.on_limit}"
    )


async def _announce(settings: Settings) -> None:
    """Tell running API processes that share Redis to drop their cached policies (without
    Redis they pick the change up within ``quota_policy_ttl_s``)."""
    redis = connect_redis(settings)
    if redis is None:
        return
    try:
        await PolicyCache(0, PolicyVersion(redis)).changed()
    finally:
        await redis.aclose()


def cmd_quota_set(settings: Settings, args: argparse.Namespace) -> int:
    scope: Scope
    if args.user:
        scope, name = "user", args.user
    elif args.team:
        scope, name = "team", args.team
    else:
        scope, name = "global", "*"
    change = PolicyChange(args.rpm, args.tokens_per_day, args.tokens_per_month, args.on_limit)

    async def run() -> StoredPolicy:
        async with open_command(settings, Access.WRITE) as cmd, cmd.db.transaction() as session:
            stored = await QuotaPolicies(session, cmd.trail).set(cmd.actor, scope, name, change)
        await _announce(settings)
        return stored

    print(_line(asyncio.run(run())))
    return 0


def cmd_quota_list(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[StoredPolicy]:
        async with open_command(settings, Access.READ) as cmd, cmd.db.session() as session:
            return await QuotaPolicies(session).all()

    for policy in asyncio.run(run()):
        print(_line(policy))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quota = sub.add_parser("quota", help="quota policies per user, team or globally").add_subparsers(
        dest="quota_command", required=True
    )
    put = quota.add_parser("set", help="create or change a quota policy (0 clears a limit)")
    who = put.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a user's email")
    who.add_argument("--team", help="a team's name")
    who.add_argument("--global", dest="everyone", action="store_true", help="the limit for everyone together")
    put.add_argument("--rpm", type=int, help="requests per minute")
    put.add_argument("--tokens-per-day", type=int)
    put.add_argument("--tokens-per-month", type=int)
    put.add_argument("--on-limit", choices=["reject", "degrade"])
    put.set_defaults(func=cmd_quota_set)
    listing = quota.add_parser("list", help="list quota policies")
    listing.set_defaults(func=cmd_quota_list)
