"""The login state cookie: binds a callback to the browser that started the login.

``/auth/oidc/login`` draws a random ``state``, ``nonce`` and PKCE ``verifier``, sends
the first two (and the verifier's S256 challenge) to the provider and keeps all three
in this cookie, HMAC-signed and valid for ``LOGIN_STATE_TTL_S``. The callback accepts
a code only if the cookie is present, its signature and expiry hold and its state
equals the ``state`` query parameter: a code injected from another browser, or a
callback replayed after the cookie was cleared, is refused. Nothing is stored
server-side, so any replica can finish a login another one started (given the same
secret key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.oidc.errors import LoginStateInvalid

LOGIN_STATE_COOKIE = "eg_oidc_login"
LOGIN_STATE_TTL_S = 600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class LoginState:
    state: str
    nonce: str
    verifier: str  # PKCE code_verifier (RFC 7636): 43 url-safe characters
    expires_at: float  # Unix seconds

    @classmethod
    def new(cls, now: float) -> LoginState:
        return cls(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(32),
            expires_at=now + LOGIN_STATE_TTL_S,
        )

    @property
    def challenge(self) -> str:
        """The S256 code_challenge for ``verifier``."""
        return _b64(hashlib.sha256(self.verifier.encode("ascii")).digest())


class StateSigner:
    """Signs and opens login state cookies with an HMAC-SHA256 key."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        # A key of its own, derived, so a state cookie can never pass for anything else.
        self._key = hmac.new(key, b"expertgate oidc login state", hashlib.sha256).digest()
        self._clock = clock

    def new_state(self) -> LoginState:
        return LoginState.new(self._clock())

    def seal(self, login: LoginState) -> str:
        body = _b64(json.dumps([login.state, login.nonce, login.verifier, login.expires_at]).encode())
        return f"{body}.{self._mac(body)}"

    def open(self, cookie: str | None, state: str | None) -> LoginState:
        """The login ``cookie`` holds, if its signature and expiry hold and its state is
        ``state``. Raises LoginStateInvalid (reason: missing, forged, expired, mismatch)."""
        if not cookie:
            raise LoginStateInvalid(
                "no sign-in is in progress in this browser (the login cookie is missing); start again",
                reason="state_cookie_missing",
            )
        body, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise LoginStateInvalid("the sign-in state cookie is not valid; start again", reason="state_forged")
        try:
            fields = json.loads(_unb64(body))
            login = LoginState(str(fields[0]), str(fields[1]), str(fields[2]), float(fields[3]))
        except (ValueError, IndexError, TypeError) as exc:
            raise LoginStateInvalid(
                "the sign-in state cookie is not valid; start again", reason="state_forged"
            ) from exc
        if login.expires_at < self._clock():
            raise LoginStateInvalid("the sign-in took too long; start again", reason="state_expired")
        if not state or not hmac.compare_digest(login.state, state):
            raise LoginStateInvalid(
                "the sign-in response does not belong to this browser's sign-in; start again",
                reason="state_mismatch",
            )
        return login

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
