"""/auth/oidc/login, /auth/oidc/callback, /auth/logout and /api/v1/auth/config.

Browser-facing: login and callback answer with redirects and cookies, not JSON (a
refused callback answers with the usual JSON error and its status). Parse, call one
service, map.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from backend.api.deps import AuditDep, DbDep, KeyAuthDep, WebAuthDep, client_ip
from backend.api.schemas.auth import AuthConfigOut
from backend.identity.sessions import CSRF_HEADER, CSRF_VALUE, SESSION_COOKIE, WebSessionService, check_csrf
from backend.oidc.client import OidcClient
from backend.oidc.errors import SIGN_IN_ERRORS, ProviderUnavailable, SsoDisabled, SsoRefused
from backend.oidc.service import record_login_failure, record_logout, sign_in
from backend.oidc.state import LOGIN_STATE_COOKIE, LOGIN_STATE_TTL_S
from backend.oidc.wiring import WebAuth

routes = APIRouter(tags=["auth"])

LOGIN_URL = "/auth/oidc/login"
LOGOUT_URL = "/auth/logout"
STATE_COOKIE_PATH = "/auth/oidc"


def _oidc(web_auth: WebAuth) -> OidcClient:
    if web_auth.oidc is None:
        raise SsoDisabled()
    return web_auth.oidc


def _redirect_uri(request: Request, oidc: OidcClient) -> str:
    return oidc.config.redirect_url or str(request.url_for("oidc_callback"))


@routes.get("/api/v1/auth/config", response_model=AuthConfigOut, operation_id="getAuthConfig")
async def auth_config(web_auth: WebAuthDep) -> AuthConfigOut:
    """How the web UI may sign in (no credentials needed)."""
    enabled = web_auth.oidc is not None
    return AuthConfigOut(
        oidc_enabled=enabled,
        login_url=LOGIN_URL if enabled else None,
        logout_url=LOGOUT_URL,
        csrf_header=CSRF_HEADER,
        csrf_value=CSRF_VALUE,
    )


@routes.get(LOGIN_URL, operation_id="oidcLogin", status_code=302, response_class=RedirectResponse)
async def oidc_login(request: Request, web_auth: WebAuthDep) -> Response:
    """Start SSO: redirect to the provider, with the login state in a signed cookie."""
    oidc = _oidc(web_auth)
    login = web_auth.signer.new_state()
    redirect_uri = _redirect_uri(request, oidc)
    response = RedirectResponse(await oidc.authorization_url(login, redirect_uri), status_code=302)
    response.set_cookie(
        LOGIN_STATE_COOKIE,
        web_auth.signer.seal(login),
        max_age=LOGIN_STATE_TTL_S,
        path=STATE_COOKIE_PATH,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to us
        secure=redirect_uri.startswith("https://"),
    )
    return response


@routes.get("/auth/oidc/callback", operation_id="oidcCallback", status_code=303, response_class=RedirectResponse)
async def oidc_callback(
    request: Request,
    web_auth: WebAuthDep,
    db: DbDep,
    audit: AuditDep,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Finish SSO: check state, trade the code, validate the ID token, open a session.

    Refusals (400 sso_state_invalid, 401 sso_refused / sso_token_invalid, 502
    sso_provider_error) are audited as ``auth.login_failed``; all but the provider's
    own failures count against the client's failed-login budget (429 when spent).
    """
    web = web_auth
    client = client_ip(request)
    await web.throttle.check(client)
    oidc = _oidc(web_auth)
    redirect_uri = _redirect_uri(request, oidc)
    try:
        login = web.signer.open(request.cookies.get(LOGIN_STATE_COOKIE), state)
        if error is not None:
            raise SsoRefused(f"the identity provider refused the sign-in ({error})", reason="provider_denied")
        if not code:
            raise SsoRefused("the identity provider sent no authorization code", reason="no_code")
        id_token = await oidc.exchange(code, redirect_uri, login.verifier)
        claims = await oidc.validate(id_token, login.nonce)
        signed = await sign_in(db, audit, web.mapping, claims, web.session_ttl, client)
    except SIGN_IN_ERRORS as exc:
        await record_login_failure(db, audit, exc, client=client)
        if not isinstance(exc, ProviderUnavailable):
            await web.throttle.failed(client)
        raise
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        max_age=int(web.session_ttl.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=redirect_uri.startswith("https://"),
    )
    response.delete_cookie(LOGIN_STATE_COOKIE, path=STATE_COOKIE_PATH)
    return response


@routes.post(LOGOUT_URL, status_code=204, operation_id="logout", response_class=Response)
async def logout(request: Request, keys: KeyAuthDep, db: DbDep, audit: AuditDep) -> Response:
    """End the cookie session (revoked in SQL at once) and clear the cookie. Idempotent."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        check_csrf(request.method, request.headers.get(CSRF_HEADER))
        async with db.transaction() as session:
            principal = await WebSessionService(session).revoke(token)
            if principal is not None:
                await record_logout(audit, session, principal)
        keys.forget_session(token)  # committed: this process refuses the cookie from now on
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response
