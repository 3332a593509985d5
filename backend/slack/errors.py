"""Slack-specific refusals (AppError subclasses: the same table maps them everywhere).

AppError
 ├── Unauthorized
 │    └── SlackSignatureInvalid   401  slack_signature_invalid  (unsigned, forged or stale)
 ├── BadRequest
 │    └── SlackRequestMalformed   400  slack_request_malformed  (signed, but not what Slack sends)
 └── Forbidden
      └── UnknownSlackUser        403  slack_user_unknown
SlackNotConfigured: a startup error (names the missing variable), never a response.
"""

from __future__ import annotations

from backend.errors import BadRequest, Forbidden, Unauthorized


class UnknownSlackUser(Forbidden):
    """403: the Slack user maps to no expertgate user and auto-provisioning is off."""

    code = "slack_user_unknown"


class SlackSignatureInvalid(Unauthorized):
    """401: /slack/events got a request without Slack's valid signature, or one signed
    more than five minutes ago. Nothing of its body was read."""

    code = "slack_signature_invalid"


class SlackRequestMalformed(BadRequest):
    """400: a correctly signed request whose body is not a Slack request (not UTF-8, not
    JSON or a form, a JSON value that is not an object, a required field missing)."""

    code = "slack_request_malformed"


class SlackNotConfigured(Exception):
    """A Slack entrypoint was started without the settings it needs (names the variable)."""
