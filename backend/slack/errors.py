"""Slack-specific refusals (AppError subclasses: the same table maps them everywhere)."""

from __future__ import annotations

from backend.errors import Forbidden


class UnknownSlackUser(Forbidden):
    """403: the Slack user maps to no expertgate user and auto-provisioning is off."""

    code = "slack_user_unknown"


class SlackNotConfigured(Exception):
    """A Slack entrypoint was started without the settings it needs (names the variable)."""
