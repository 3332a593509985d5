"""`expertgate keys list|revoke` (``keys create`` lives in backend/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from datetime import datetime

from backend.audit.types import Actor
from backend.audit.writer import build_audit_trail
from backend.db.session import Database, migrate
from backend.guard.policy import PiiGuard
from backend.identity.admin import KeyAdmin
from backend.identity.service import IdentityService
from backend.identity.types import KeyInfo
from backend.settings import Settings


def _database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    migrate(url)
    return Database(url)


def _when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") if ts else "-"


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    db = _database(settings)

    async def run() -> list[KeyInfo]:
        try:
            async with db.session() as session:
                return await IdentityService(session).list_keys(args.user)
        finally:
            await db.dispose()

    keys = asyncio.run(run())
    print(f"{'ID':>4}  {'PREFIX':<10}  {'USER':<28}  {'ROLES':<14}  {'CREATED':<16}  "
          f"{'LAST USED':<16}  {'REVOKED':<16}  NAME")  # fmt: skip
    for k in keys:
        if k.revoked_at is not None and not args.all:
            continue
        print(
            f"{k.key_id:>4}  {k.prefix:<10}  {k.email:<28}  {','.join(k.roles):<14}  "
            f"{_when(k.created_at):<16}  {_when(k.last_used_at):<16}  "
            f"{_when(k.revoked_at):<16}  {k.name}"
        )
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    db = _database(settings)
    trail = build_audit_trail(settings, PiiGuard())

    async def run() -> tuple[KeyInfo, bool]:
        try:
            async with db.transaction() as session:
                key_id = await IdentityService(session).find_key_id(args.key)
                return await KeyAdmin(session, trail).revoke(Actor.cli(getpass.getuser()), key_id)
        finally:
            await db.dispose()

    info, changed = asyncio.run(run())
    state = "revoked" if changed else "was already revoked"
    print(f"key {info.key_id} ({info.prefix}…, {info.email}) {state}")
    return 0


def register(keys: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = keys.add_parser("list", help="list API keys (never the secrets)")
    listing.add_argument("--user", help="only this user's keys (email)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.set_defaults(func=cmd_keys_list)

    revoke = keys.add_parser("revoke", help="revoke an API key at once")
    revoke.add_argument("key", help="the key's id or prefix, as `keys list` prints them")
    revoke.set_defaults(func=cmd_keys_revoke)
