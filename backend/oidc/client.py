"""The OpenID Connect provider, as a relying party sees it.

Discovery (``{issuer}/.well-known/openid-configuration``) is fetched on first use and
kept; so is the provider's JWKS, fetched again only when a token names a key id we do
not hold (key rotation), at most once per ``JWKS_REFRESH_S``. Only RS256 is accepted.

ID token checks (OpenID Connect Core 3.1.3.7): signature against the JWKS key named by
``kid``; ``iss`` equal to the configured issuer; ``aud`` containing our client id (and
``azp``, when present, equal to it); ``exp`` in the future and ``iat`` present (60 s of
clock skew allowed); ``nonce`` equal to the one this browser's login sent; ``sub`` and
``email`` present, ``email_verified`` not false.

The HTTP transport is httpx's, injected, so tests can point it anywhere; every call
has a timeout. Errors: ProviderUnavailable (network, 5xx, malformed metadata),
SsoRefused (the token endpoint refused the code), IdTokenInvalid (a check failed).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import jwt

from backend.oidc.errors import IdTokenInvalid, ProviderUnavailable, SsoRefused
from backend.oidc.state import LoginState

ALGORITHMS = ["RS256"]
CLOCK_SKEW_S = 60
JWKS_REFRESH_S = 30.0


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str | None
    scopes: str
    groups_claim: str
    redirect_url: str | None  # None: derived from the request's origin


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class IdClaims:
    """What a validated ID token says about the user."""

    issuer: str
    subject: str
    email: str
    name: str | None
    groups: tuple[str, ...] | None  # None: the token has no groups claim at all
    # True only when the token says so; many providers leave the claim out.
    email_verified: bool = False

    @property
    def linked_subject(self) -> str:
        """``sub`` is unique per issuer only, so the stored link names both."""
        return f"{self.issuer} {self.subject}"


class OidcClient:
    def __init__(self, config: OidcConfig, http: httpx.AsyncClient, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_fetched_at = float("-inf")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def metadata(self) -> ProviderMetadata:
        """The provider's discovery document (fetched once). Raises ProviderUnavailable."""
        if self._metadata is None:
            doc = await self._get_json(f"{self.config.issuer}/.well-known/openid-configuration")
            try:
                meta = ProviderMetadata(
                    issuer=str(doc["issuer"]),
                    authorization_endpoint=str(doc["authorization_endpoint"]),
                    token_endpoint=str(doc["token_endpoint"]),
                    jwks_uri=str(doc["jwks_uri"]),
                )
            except KeyError as exc:
                raise ProviderUnavailable(f"the provider's discovery document lacks {exc}") from exc
            if meta.issuer.rstrip("/") != self.config.issuer:
                raise ProviderUnavailable(
                    f"the provider says its issuer is {meta.issuer!r}, not the configured {self.config.issuer!r}"
                )
            self._metadata = meta
        return self._metadata

    async def authorization_url(self, login: LoginState, redirect_uri: str) -> str:
        meta = await self.metadata()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.config.scopes,
                "state": login.state,
                "nonce": login.nonce,
                "code_challenge": login.challenge,
                "code_challenge_method": "S256",
            }
        )
        sep = "&" if "?" in meta.authorization_endpoint else "?"
        return f"{meta.authorization_endpoint}{sep}{query}"

    async def exchange(self, code: str, redirect_uri: str, verifier: str) -> str:
        """Trade an authorization code for the raw ID token. Raises SsoRefused when the
        provider refuses the code, ProviderUnavailable when it cannot be asked."""
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": self.config.client_id,
        }
        # client_secret_basic for a confidential client; a public client sends only its id.
        auth = httpx.Auth()
        if self.config.client_secret is not None:
            auth = httpx.BasicAuth(self.config.client_id, self.config.client_secret)
        try:
            response = await self._http.post(meta.token_endpoint, data=form, auth=auth)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"the provider's token endpoint did not answer ({exc})") from exc
        if 400 <= response.status_code < 500:
            raise SsoRefused(
                f"the provider refused the authorization code ({_oauth_error(response)})", reason="code_rejected"
            )
        if response.status_code >= 500:
            raise ProviderUnavailable(f"the provider's token endpoint failed with HTTP {response.status_code}")
        try:
            token = response.json()["id_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable("the provider's token response holds no id_token") from exc
        if not isinstance(token, str):
            raise ProviderUnavailable("the provider's id_token is not a string")
        return token

    async def validate(self, id_token: str, nonce: str) -> IdClaims:
        """The claims of ``id_token`` if every check in the module docstring holds.
        Raises IdTokenInvalid (reason names the failed check) or ProviderUnavailable."""
        meta = await self.metadata()
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.InvalidTokenError as exc:
            raise IdTokenInvalid("the ID token is malformed", reason="malformed") from exc
        if header.get("alg") not in ALGORITHMS:
            raise IdTokenInvalid(f"ID token algorithm {header.get('alg')!r} is not accepted", reason="algorithm")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                id_token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.config.client_id,
                issuer=meta.issuer,
                leeway=CLOCK_SKEW_S,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise IdTokenInvalid("the ID token has expired", reason="expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise IdTokenInvalid("the ID token is not meant for this application", reason="audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise IdTokenInvalid("the ID token comes from another issuer", reason="issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise IdTokenInvalid("the ID token's signature is not valid", reason="signature") from exc
        except jwt.InvalidTokenError as exc:
            raise IdTokenInvalid(f"the ID token is not valid ({exc})", reason="invalid") from exc
        azp = claims.get("azp")
        if azp is not None and azp != self.config.client_id:
            raise IdTokenInvalid("the ID token was issued to another client", reason="audience")
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
            raise IdTokenInvalid("the ID token does not belong to this sign-in (nonce)", reason="nonce")
        return self._claims(claims, meta.issuer)

    def _claims(self, claims: dict[str, object], issuer: str) -> IdClaims:
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise IdTokenInvalid("the ID token carries no email (ask for the 'email' scope)", reason="no_email")
        if claims.get("email_verified") is False:
            raise IdTokenInvalid("the provider has not verified this email address", reason="email_unverified")
        raw = claims.get(self.config.groups_claim)
        if isinstance(raw, str):
            raw = [raw]
        groups = tuple(sorted({g for g in raw if isinstance(g, str) and g})) if isinstance(raw, list) else None
        name = claims.get("name")
        return IdClaims(
            issuer=issuer,
            subject=str(claims["sub"]),
            email=email,
            name=name if isinstance(name, str) else None,
            groups=groups,
            email_verified=claims.get("email_verified") is True,
        )

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys and self._clock() - self._keys_fetched_at >= JWKS_REFRESH_S:
            await self._fetch_keys()
        key = self._keys.get(kid)
        if key is None:
            raise IdTokenInvalid("the ID token is signed with a key the provider does not publish", reason="signature")
        return key

    async def _fetch_keys(self) -> None:
        meta = await self.metadata()
        doc = await self._get_json(meta.jwks_uri)
        try:
            jwks = jwt.PyJWKSet.from_dict(doc)
        except jwt.PyJWKSetError as exc:
            raise ProviderUnavailable(f"the provider's JWKS holds no usable key ({exc})") from exc
        self._keys = {k.key_id: k for k in jwks.keys if k.key_id and k.algorithm_name == "RS256"}
        self._keys_fetched_at = self._clock()

    async def _get_json(self, url: str) -> dict[str, object]:
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            doc = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"the identity provider could not be read at {url} ({exc})") from exc
        if not isinstance(doc, dict):
            raise ProviderUnavailable(f"the identity provider sent no JSON object at {url}")
        return doc


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return f"HTTP {response.status_code}"
