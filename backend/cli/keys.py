"""`expertgate keys list|revoke` (``keys create`` lives in backend/cli/main.py)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from backend.cli.context import Access, open_command
from backend.identity.admin import KeyAdmin
from backend.identity.service import IdentityService
from backend.identity.types import KeyInfo
from backend.settings import Settings


def _when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") if ts else "-"


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[KeyInfo]:
        async with open_command(settings, Access.READ) as cmd, cmd.db.session() as session:
            return await IdentityService(session).list_keys(args.user)

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
    async def run() -> tuple[KeyInfo, bool]:
        async with open_command(settings, Access.WRITE) as cmd, cmd.db.transaction() as session:
            key_id = await IdentityService(session).find_key_id(args.key)
            return await KeyAdmin(session, cmd.trail).revoke(cmd.actor, key_id)

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
