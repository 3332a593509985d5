"""A local stand-in for Slack's Web API: a real HTTP server that records every call.

Point ``AsyncWebClient(base_url=server.api_url)`` (EXPERTGATE_SLACK_API_URL) at it and
the real slack_sdk runs: JSON or form bodies in, Slack-shaped JSON out. Answers
auth.test, chat.postMessage, chat.update, chat.postEphemeral, users.info,
users.lookupByEmail and views.publish; any other method gets ``unknown_method``.

``server.calls`` holds every call as ``SlackCall(method, args)`` in arrival order.
``server.rate_limit_updates = True`` makes chat.update answer 429 ``ratelimited``.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.http_server import LoopbackServer

BOT_USER_ID = "UBOT0001"
TEAM_ID = "T0000ACME"


@dataclass(frozen=True)
class SlackCall:
    method: str
    args: dict[str, Any]


@dataclass
class FakeSlack:
    # Slack user id -> (email, display name): the workspace's members.
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    guests: set[str] = field(default_factory=set)  # members who are guests (is_restricted)
    calls: list[SlackCall] = field(default_factory=list)
    rate_limit_updates: bool = False
    port: int = 0
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _http: LoopbackServer | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def reset(self) -> None:
        self.calls.clear()
        self.users.clear()
        self.guests.clear()
        self.rate_limit_updates = False

    def of(self, method: str) -> list[dict[str, Any]]:
        """The arguments of every call to ``method``, in order."""
        return [c.args for c in self.calls if c.method == method]

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    async def _call(self, request: Request) -> Response:
        method = request.path_params["method"]
        args: dict[str, Any] = dict(request.query_params)
        raw = await request.body()
        if raw:
            if request.headers.get("content-type", "").startswith("application/json"):
                args.update(json.loads(raw))
            else:
                args.update(parse_qsl(raw.decode()))
        for key in ("blocks", "view"):  # form-encoded calls send these as JSON strings
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        if not request.headers.get("authorization", "").startswith("Bearer xoxb-"):
            return JSONResponse({"ok": False, "error": "not_authed"})
        self.calls.append(SlackCall(method, args))
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return JSONResponse({"ok": False, "error": "unknown_method"})
        result: Response = handler(args)
        return result

    def _auth_test(self, _: dict[str, Any]) -> Response:
        return JSONResponse(
            {
                "ok": True,
                "url": "https://acme.slack.com/",
                "team": "Acme",
                "user": "expertgate",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": "B0000BOT",
                "is_enterprise_install": False,
            }
        )

    def _chat_postMessage(self, args: dict[str, Any]) -> Response:
        ts = self.next_ts()
        message = {"type": "message", "user": BOT_USER_ID, "text": args.get("text", ""), "ts": ts}
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        return JSONResponse({"ok": True, "channel": args["channel"], "ts": ts, "message": message})

    def _chat_update(self, args: dict[str, Any]) -> Response:
        if self.rate_limit_updates:
            return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429, headers={"retry-after": "1"})
        return JSONResponse({"ok": True, "channel": args["channel"], "ts": args["ts"], "text": args.get("text", "")})

    def _chat_postEphemeral(self, _: dict[str, Any]) -> Response:
        return JSONResponse({"ok": True, "message_ts": self.next_ts()})

    def _member(self, user_id: str) -> dict[str, Any]:
        email, name = self.users[user_id]
        return {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "is_bot": False,
            "is_restricted": user_id in self.guests,
            "profile": {"email": email, "real_name": name, "display_name": name},
        }

    def _users_info(self, args: dict[str, Any]) -> Response:
        if args.get("user") not in self.users:
            return JSONResponse({"ok": False, "error": "user_not_found"})
        return JSONResponse({"ok": True, "user": self._member(args["user"])})

    def _users_lookupByEmail(self, args: dict[str, Any]) -> Response:
        for user_id, (email, _) in self.users.items():
            if email == args.get("email"):
                return JSONResponse({"ok": True, "user": self._member(user_id)})
        return JSONResponse({"ok": False, "error": "users_not_found"})

    def _views_publish(self, args: dict[str, Any]) -> Response:
        view = {"id": "V0001", "type": args["view"]["type"], "blocks": args["view"]["blocks"]}
        return JSONResponse({"ok": True, "view": view})

    def start(self) -> FakeSlack:
        app = Starlette(routes=[Route("/api/{method}", self._call, methods=["GET", "POST"])])
        self._http = LoopbackServer.start(app, "fake Slack API")
        self.port = self._http.port
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
