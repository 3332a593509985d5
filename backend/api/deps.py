"""The web layer's dependencies, declared once: each service a route may take, the
authenticated caller, and the role checks.

A route names what it uses (``db: DbDep, audit: AuditDep``), never the whole runtime:
the signature says what a route touches, and a test can see it. Every dependency is
async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
hop on every request (seen in the load profile).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from backend.audit.chainer import AuditChainer
from backend.audit.refusals import record_auth_failure, record_refusal
from backend.audit.writer import AuditTrail
from backend.capacity.service import CapacityService
from backend.chat.pipeline import ChatPipeline
from backend.db.session import Database
from backend.errors import Forbidden, Unauthorized
from backend.identity.keycache import KeyAuthenticator
from backend.identity.service import IdentityService
from backend.identity.sessions import CSRF_HEADER, SESSION_COOKIE, check_csrf
from backend.knowledge.wiring import Knowledge
from backend.observability.metrics import Metrics
from backend.oidc.wiring import WebAuth
from backend.principal import Principal
from backend.quota.service import QuotaService
from backend.runtime import Runtime
from backend.settings import Settings
from backend.taskqueue import TaskQueue
from experts.registry import ExpertRegistry
from experts.service import ExpertService
from router.encoder import Encoder
from router.service import Router


def runtime_of(request: Request) -> Runtime:
    """The services the app's lifespan built (frozen). Only this module reads it."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _db(request: Request) -> Database:
    return runtime_of(request).db


async def _audit(request: Request) -> AuditTrail:
    return runtime_of(request).audit


async def _chainer(request: Request) -> AuditChainer:
    return runtime_of(request).chainer


async def _settings(request: Request) -> Settings:
    return runtime_of(request).settings


async def _registry(request: Request) -> ExpertRegistry:
    return runtime_of(request).registry


async def _pipeline(request: Request) -> ChatPipeline:
    return runtime_of(request).pipeline


async def _experts(request: Request) -> ExpertService:
    return runtime_of(request).experts


async def _gate(request: Request) -> Router:
    return runtime_of(request).gate


async def _encoder(request: Request) -> Encoder:
    return runtime_of(request).encoder


async def _knowledge(request: Request) -> Knowledge:
    return runtime_of(request).knowledge


async def _capacity(request: Request) -> CapacityService:
    return runtime_of(request).capacity


async def _quota(request: Request) -> QuotaService | None:
    return runtime_of(request).quota


async def _tasks(request: Request) -> TaskQueue | None:
    return runtime_of(request).tasks


async def _redis(request: Request) -> Redis | None:
    return runtime_of(request).redis


async def _metrics(request: Request) -> Metrics:
    return runtime_of(request).metrics


async def _key_auth(request: Request) -> KeyAuthenticator:
    return runtime_of(request).auth


async def _web_auth(request: Request) -> WebAuth:
    return runtime_of(request).web_auth


async def _started_at(request: Request) -> int:
    return runtime_of(request).started_at


DbDep = Annotated[Database, Depends(_db)]
AuditDep = Annotated[AuditTrail, Depends(_audit)]
ChainerDep = Annotated[AuditChainer, Depends(_chainer)]
SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[ExpertRegistry, Depends(_registry)]
PipelineDep = Annotated[ChatPipeline, Depends(_pipeline)]
ExpertsDep = Annotated[ExpertService, Depends(_experts)]
GateDep = Annotated[Router, Depends(_gate)]
EncoderDep = Annotated[Encoder, Depends(_encoder)]
KnowledgeDep = Annotated[Knowledge, Depends(_knowledge)]
CapacityDep = Annotated[CapacityService, Depends(_capacity)]
QuotaDep = Annotated[QuotaService | None, Depends(_quota)]  # None: no quotas configured
TasksDep = Annotated[TaskQueue | None, Depends(_tasks)]  # None: jobs run inline
RedisDep = Annotated[Redis | None, Depends(_redis)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
KeyAuthDep = Annotated[KeyAuthenticator, Depends(_key_auth)]
WebAuthDep = Annotated[WebAuth, Depends(_web_auth)]
StartedAtDep = Annotated[int, Depends(_started_at)]  # unix seconds the process started


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
    runtime = runtime_of(request)
    throttle = runtime.web_auth.throttle
    if token:
        await throttle.check(client_ip(request))
    try:
        # Verified keys and sessions are cached for auth_cache_ttl_s (backend.identity.keycache).
        if cookie:
            principal = await runtime.auth.authenticate_session(cookie)
        else:
            principal = await runtime.auth.authenticate(token)
    except Unauthorized:
        if token:
            async with runtime.db.session() as session:
                reason, key = await IdentityService(session).why_refused(token)
            await record_auth_failure(
                runtime.db,
                runtime.audit,
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
    runtime = runtime_of(request)
    _, cookie = _credentials(request)
    try:
        if cookie:
            check_csrf(request.method, request.headers.get(CSRF_HEADER))
        yield principal
    except Exception as exc:
        await record_refusal(
            runtime.db, runtime.audit, principal, exc,
            method=request.method, path=request.url.path,
        )  # fmt: skip
        raise


async def require_admin(principal: PrincipalDep) -> Principal:
    """The caller, if an admin. Raises Forbidden (audited by get_principal)."""
    if "admin" not in principal.roles:
        raise Forbidden("this action needs the admin role", code="admin_required")
    return principal


async def require_audit_reader(
    principal: PrincipalDep,
) -> Principal:
    """The caller, if an admin or an auditor. Raises Forbidden."""
    if not principal.roles & {"admin", "auditor"}:
        raise Forbidden("reading the audit trail needs the auditor or admin role", code="auditor_required")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(require_admin)]
AuditorDep = Annotated[Principal, Depends(require_audit_reader)]
