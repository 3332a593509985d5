"""`expertgate slack --socket`: the bot over Socket Mode (no public HTTP endpoint).

Needs EXPERTGATE_SLACK_BOT_TOKEN and the app-level token EXPERTGATE_SLACK_APP_TOKEN
(xapp-..., scope connections:write); the signing secret is not used in this mode.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from backend.settings import Settings
from backend.slack.errors import SlackNotConfigured


def app_token(settings: Settings) -> str:
    """The app-level token, checked before anything heavy is built. Raises SlackNotConfigured."""
    if settings.slack_bot_token is None:
        raise SlackNotConfigured("EXPERTGATE_SLACK_BOT_TOKEN: the Slack bot token (xoxb-...) is not set")
    if settings.slack_app_token is None:
        raise SlackNotConfigured("EXPERTGATE_SLACK_APP_TOKEN: Socket Mode needs the app-level token (xapp-...)")
    return settings.slack_app_token.get_secret_value()


def socket_handler(token: str, bolt: Any) -> Any:
    """bolt's Socket Mode handler (aiohttp) for ``bolt``; connects on ``start_async``."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    return AsyncSocketModeHandler(bolt, token)


def cmd_slack(settings: Settings, args: argparse.Namespace) -> int:
    if not args.socket:
        print(
            "expertgate: HTTP mode needs no command: `expertgate serve` answers at /slack/events "
            "when EXPERTGATE_SLACK_SIGNING_SECRET and EXPERTGATE_SLACK_BOT_TOKEN are set; "
            "use --socket for Socket Mode",
            file=sys.stderr,
        )
        return 2
    try:
        token = app_token(settings)
    except SlackNotConfigured as exc:
        print(f"expertgate: {exc}", file=sys.stderr)
        return 2
    from backend.runtime import build_runtime
    from backend.slack.wiring import build_slack

    async def run() -> None:
        runtime = await asyncio.to_thread(build_runtime, settings)
        slack = build_slack(settings, runtime, socket_mode=True)
        chainer = asyncio.create_task(runtime.chainer.run())  # audit outbox -> chain
        try:
            await socket_handler(token, slack.bolt).start_async()
        finally:
            await slack.close()
            chainer.cancel()
            await runtime.chainer.settle()
            await runtime.close()

    asyncio.run(run())
    return 0


def register(sub: Any) -> None:
    slack = sub.add_parser("slack", help="run the Slack bot over Socket Mode (--socket)")
    slack.add_argument("--socket", action="store_true", help="connect to Slack over Socket Mode")
    slack.set_defaults(func=cmd_slack)
