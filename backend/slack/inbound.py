"""What /slack/events checks before bolt sees a request: the signature, then the body.

In that order. An unsigned or badly signed request is refused (401, ``SlackSignatureInvalid``)
having cost one HMAC: its body is never decoded or parsed, and nothing touches the
database. A signed body that is not something Slack sends is refused with 400
(``SlackRequestMalformed``), never handed to bolt, whose parsers raise on such bodies
(500). What Slack sends, by shape:

- Events API: a JSON object with a string ``type``; an ``event_callback`` also carries
  an ``event`` object with a string ``type`` and an ``event_id`` of at most 64 characters;
- slash commands: a form with ``command``;
- interactivity: a form whose ``payload`` is a JSON object with a string ``type``; for
  ``block_actions``, a non-empty list of ``actions`` objects, each with an ``action_id``;
- ``ssl_check=1`` forms, which Slack does not sign (:func:`is_ssl_check`).

:func:`parse` returns the body as bolt would see it, with one difference on purpose:
bolt reads any form that merely contains the text "payload" (``/ask what is the payload
limit?``) as an interactivity payload, finds none and drops the command.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from backend.slack.errors import SlackRequestMalformed, SlackSignatureInvalid

# Slack's own bound (and bolt's): a signed request older or newer than this is refused,
# so a captured request can be replayed for at most this long (store.claim covers that).
MAX_SKEW_S = 5 * 60
EVENT_ID_MAX = 64  # slack_events.event_id


def verify(secret: bytes, body: bytes, timestamp: str | None, signature: str | None, now: float) -> None:
    """Raises SlackSignatureInvalid unless ``signature`` is Slack's v0 HMAC-SHA256 of
    ``v0:{timestamp}:{body}`` under ``secret`` and ``timestamp`` (Unix seconds) is within
    MAX_SKEW_S of ``now``. Header values are Starlette's (latin-1 decoded) strings."""
    if not timestamp or not signature:
        raise SlackSignatureInvalid("the request is not signed (X-Slack-Signature, X-Slack-Request-Timestamp)")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise SlackSignatureInvalid("X-Slack-Request-Timestamp is not a Unix time in seconds")
    if abs(now - int(timestamp)) > MAX_SKEW_S:
        raise SlackSignatureInvalid("the request timestamp is more than five minutes from now")
    digest = hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(b"v0=" + digest.encode(), signature.encode("latin-1")):
        raise SlackSignatureInvalid("the request signature does not match the signing secret")


def is_ssl_check(body: bytes) -> bool:
    """Slack's unsigned certificate probe for slash command URLs (answered 200, no work)."""
    try:
        return dict(parse_qsl(body.decode("ascii"))).get("ssl_check") == "1"
    except (UnicodeDecodeError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class SlackBody:
    text: str  # the body as sent (UTF-8 decoded)
    payload: dict[str, Any]  # what the listeners read: the JSON object, the form, or its payload


def parse(body: bytes, content_type: str | None) -> SlackBody:
    """The signed body as a Slack request; SlackRequestMalformed says what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SlackRequestMalformed("the request body is not UTF-8 text") from None
    if not text.strip():
        raise SlackRequestMalformed("the request body is empty")
    media = (content_type or "").partition(";")[0].strip().lower()
    if media == "application/json" or text.startswith("{"):  # as bolt decides
        payload = _json_object(text, "the request body")
        _check_event_envelope(payload)
        return SlackBody(text, payload)
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in form:
        payload = _json_object(form["payload"], "the interactivity payload")
        _check_interactivity(payload)
        return SlackBody(text, payload)
    if form.get("command") or form.get("ssl_check") == "1":  # bolt answers a signed probe itself
        return SlackBody(text, form)
    raise SlackRequestMalformed(
        "the request body is not a Slack request: expected an Events API JSON object, "
        "a slash command form or an interactivity payload"
    )


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise SlackRequestMalformed(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise SlackRequestMalformed(f"{what} is not a JSON object")
    return value


def _check_event_envelope(payload: dict[str, Any]) -> None:
    if not isinstance(payload.get("type"), str):
        raise SlackRequestMalformed("the Events API body has no type")
    if payload["type"] != "event_callback":
        return
    event, event_id = payload.get("event"), payload.get("event_id")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise SlackRequestMalformed("the event_callback has no event object with a type")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= EVENT_ID_MAX:
        raise SlackRequestMalformed(f"the event_callback has no event_id of 1-{EVENT_ID_MAX} characters")


def _check_interactivity(payload: dict[str, Any]) -> None:
    if not isinstance(payload.get("type"), str):
        raise SlackRequestMalformed("the interactivity payload has no type")
    if payload["type"] != "block_actions":
        return
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise SlackRequestMalformed("the block_actions payload has no actions")
    if not all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions):
        raise SlackRequestMalformed("a block action has no action_id")
