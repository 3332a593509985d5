"""A small OpenID Connect provider on loopback, for driving the real login flow in tests.

It serves discovery, a JWKS made from an RSA key generated at start, ``/authorize``
(auto-consent: it signs in ``provider.user`` at once and redirects back with a code)
and ``/token`` (checks the code, the redirect URI, the PKCE verifier and the client's
credentials, then returns an RS256 ID token carrying the nonce the login sent).

Misbehaviour for negative tests is set on the provider before a login:

    provider.tweak = Tweak(audience="someone-else")   # the next ID token only
    provider.deny = True                              # /authorize answers error=access_denied
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.http_server import LoopbackServer


@dataclass(frozen=True)
class FakeUser:
    sub: str
    email: str
    groups: tuple[str, ...] = ()
    name: str = "Test User"


@dataclass(frozen=True)
class Tweak:
    """How to spoil the next ID token (None: leave that part right)."""

    nonce: str | None = None
    audience: str | None = None
    issuer: str | None = None
    expires_in_s: int | None = None  # negative: already expired
    foreign_key: bool = False  # sign with a key the JWKS does not hold (same kid)
    omit_email_verified: bool = False  # as providers that never send the claim


@dataclass
class _Grant:
    nonce: str
    challenge: str
    redirect_uri: str
    user: FakeUser


@dataclass
class FakeOidcProvider:
    client_id: str = "expertgate-web"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    user: FakeUser = field(default_factory=lambda: FakeUser("u-1001", "sam@example.com", ("staff",)))
    tweak: Tweak | None = None
    deny: bool = False
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    kid: str = "test-key-1"
    _key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _http: LoopbackServer | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    async def _discovery(self, _: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, _: Request) -> Response:
        return JSONResponse({"keys": [self._public_jwk()]})

    async def _authorize(self, request: Request) -> Response:
        q = dict(request.query_params)
        self.authorize_requests.append(q)
        if q.get("client_id") != self.client_id or q.get("response_type") != "code":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "error_description": "PKCE required"}, status_code=400)
        back = {"state": q.get("state", "")}
        if self.deny:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            self._grants[code] = _Grant(q.get("nonce", ""), q["code_challenge"], q["redirect_uri"], self.user)
            back["code"] = code
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode(back)}", status_code=302)

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append(form)
        if request.headers.get("authorization") != _basic(self.client_id, self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self._grants.pop(form.get("code", ""), None)  # codes are single-use
        if grant is None or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse({"error": "invalid_grant", "error_description": "redirect_uri"}, status_code=400)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant.challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                             "id_token": self._id_token(grant)})  # fmt: skip

    def _id_token(self, grant: _Grant) -> str:
        tweak, self.tweak = self.tweak or Tweak(), None
        now = int(time.time())
        claims = {
            "iss": tweak.issuer or self.issuer,
            "sub": grant.user.sub,
            "aud": tweak.audience or self.client_id,
            "iat": now,
            "exp": now + (tweak.expires_in_s if tweak.expires_in_s is not None else 300),
            "nonce": tweak.nonce or grant.nonce,
            "email": grant.user.email,
            "email_verified": True,
            "name": grant.user.name,
            "groups": list(grant.user.groups),
        }
        if tweak.omit_email_verified:
            del claims["email_verified"]
        key = rsa.generate_private_key(65537, 2048) if tweak.foreign_key else self._key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def start(self) -> FakeOidcProvider:
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
            ]
        )
        self._http = LoopbackServer.start(app, "fake OIDC provider")
        self.port = self._http.port
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
