"""FastAPI dependencies: the container, the authenticated principal, role checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from backend.audit.refusals import record_auth_failure, record_refusal
from backend.container import Container
from backend.errors import Forbidden, Unauthorized
from backend.identity.service import IdentityService
from backend.identity.types import Principal
from backend.oidc.sessions import CSRF_HEADER, SESSION_COOKIE, check_csrf


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def get_container(request: Request) -> Container:
    """The app's container. Async on purpose: FastAPI runs a plain ``def`` dependency in
    its thread pool, a thread hop on every request (seen in the load profile)."""
    return container_of(request)


def client_ip(request: Request) -> str | None:
    """The peer's address (behind a proxy, run uvicorn with --proxy-headers)."""
    return request.client.host if request.client else None


def _credentials(request: Request) -> tuple[str | None, str | None]:
    """(bearer key, session cookie): the key when one is presented, else the cookie."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    token = secret.strip() if scheme.lower() == "bearer" else None
    return token, None if token else request.cookies.get(SESSION_COOKIE)


async def authenticate(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer <key>`` or else the web session cookie
    (after SSO). Raises Unauthorized, or TooManyFailedLogins (429) while the client
    address has spent its failed-login budget (see backend.identity.throttle).

    A presented key that fails (forged, revoked, user disabled) is audited as
    ``auth.failed`` and counted against that budget. Reads headers only: the app's
    error handlers call it too, so that a request the framework refuses before any
    route runs (a body it cannot read) is answered 401 when it is not authenticated.
    """
    token, cookie = _credentials(request)
    container = container_of(request)
    throttle = container.web_auth.throttle
    if token:
        await throttle.check(client_ip(request))
    try:
        # Verified keys and sessions are cached for auth_cache_ttl_s (backend.identity.keycache).
        if cookie:
            principal = await container.auth.authenticate_session(cookie)
        else:
            principal = await container.auth.authenticate(token)
    except Unauthorized:
        if token:
            async with container.db.session() as session:
                reason, key = await IdentityService(session).why_refused(token)
            await record_auth_failure(
                container.db,
                container.audit,
                reason=reason,
                key=key,
                presented_prefix=token[:10],
                method=request.method,
                path=request.url.path,
                client=client_ip(request),
            )
            await throttle.failed(client_ip(request))
        raise
    return principal


async def get_principal(request: Request) -> AsyncIterator[Principal]:
    """:func:`authenticate`; then any error that ends the request is audited as
    ``http.refused`` (unless the pipeline already audited it with its trace), a
    cookie-authenticated unsafe request without the CSRF header included."""
    principal = await authenticate(request)
    container = container_of(request)
    _, cookie = _credentials(request)
    try:
        if cookie:
            check_csrf(request.method, request.headers.get(CSRF_HEADER))
        yield principal
    except Exception as exc:
        await record_refusal(
            container.db, container.audit, principal, exc,
            method=request.method, path=request.url.path,
        )  # fmt: skip
        raise


async def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    """The caller, if an admin. Raises Forbidden (audited by get_principal)."""
    if "admin" not in principal.roles:
        raise Forbidden("this action needs the admin role", code="admin_required")
    return principal


async def require_audit_reader(
    principal: Annotated[Principal, Depends(get_principal)],
) -> Principal:
    """The caller, if an admin or an auditor. Raises Forbidden."""
    if not principal.roles & {"admin", "auditor"}:
        raise Forbidden("reading the audit trail needs the auditor or admin role", code="auditor_required")
    return principal
