"""What the runtime holds for web sign-in, built from settings once per process."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import httpx
from redis.asyncio import Redis

from backend.identity.throttle import LoginThrottle, MemoryLoginThrottle, build_login_throttle
from backend.oidc.client import OidcClient, OidcConfig
from backend.oidc.service import RoleMapping
from backend.oidc.state import StateSigner
from backend.settings import Settings, SettingsError

log = logging.getLogger(__name__)

PROVIDER_TIMEOUT_S = 10.0
DEFAULT_FAILURES_PER_MINUTE = Settings.model_fields["auth_failures_per_minute"].default
DEFAULT_SESSION_HOURS = Settings.model_fields["web_session_hours"].default


@dataclass
class WebAuth:
    throttle: LoginThrottle
    signer: StateSigner
    session_ttl: timedelta
    mapping: RoleMapping
    oidc: OidcClient | None = None  # None: SSO is not configured

    @classmethod
    def without_sso(cls) -> WebAuth:
        """API keys only, failures throttled in-process at the default rate."""
        return cls(
            throttle=MemoryLoginThrottle(DEFAULT_FAILURES_PER_MINUTE),
            signer=StateSigner(secrets.token_bytes(32)),
            session_ttl=timedelta(hours=DEFAULT_SESSION_HOURS),
            mapping=RoleMapping(),
        )

    async def close(self) -> None:
        if self.oidc is not None:
            await self.oidc.aclose()


def build_web_auth(settings: Settings, redis: Redis | None) -> WebAuth:
    """``redis``: the process's client when configured (shares the failed-login budget).
    Raises SettingsError when only one of the issuer and the client id is set."""
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value().encode()
    else:
        key = secrets.token_bytes(32)
        if settings.oidc_enabled:
            log.warning(
                "EXPERTGATE_SECRET_KEY is not set: SSO login state is signed with a per-process key, "
                "so a login must finish on the replica that started it"
            )
    if bool(settings.oidc_issuer) != bool(settings.oidc_client_id):
        raise SettingsError("EXPERTGATE_OIDC_ISSUER and EXPERTGATE_OIDC_CLIENT_ID: set both for SSO, or neither")
    oidc = None
    if settings.oidc_issuer and settings.oidc_client_id:
        secret = settings.oidc_client_secret
        config = OidcConfig(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            scopes=settings.oidc_scopes,
            groups_claim=settings.oidc_groups_claim,
            redirect_url=settings.oidc_redirect_url,
        )
        oidc = OidcClient(config, httpx.AsyncClient(timeout=PROVIDER_TIMEOUT_S))
    return WebAuth(
        throttle=build_login_throttle(settings.auth_failures_per_minute, redis),
        signer=StateSigner(key),
        session_ttl=timedelta(hours=settings.web_session_hours),
        mapping=RoleMapping(settings.oidc_admin_groups, settings.oidc_auditor_groups),
        oidc=oidc,
    )
