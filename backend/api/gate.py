"""/api/v1/feedback and /api/v1/admin/router: thin routes over the routing services."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from backend.api.deps import (
    AdminDep,
    AuditDep,
    AuditorDep,
    DbDep,
    EncoderDep,
    GateDep,
    PrincipalDep,
    RegistryDep,
    SettingsDep,
)
from backend.api.schemas.gate import (
    FeedbackEntryOut,
    FeedbackIn,
    FeedbackOut,
    FeedbackPageOut,
    FeedbackQueueItem,
    GateVersionOut,
    RelabelIn,
    RelabelOut,
    RouterStatusOut,
    ShadowIn,
    TrainIn,
    TrainOut,
    VersionIn,
)
from backend.api.schemas.paging import CursorParam
from backend.audit.types import Actor
from backend.audit.writer import AuditTrail
from backend.errors import NotFound
from backend.gate.feedback import FeedbackService
from backend.gate.feedback_log import MAX_PAGE, FeedbackLog
from backend.gate.training import train_config, train_from_all
from backend.gate.versions import GateVersions
from backend.gate.wiring import router_store
from backend.settings import Settings
from router.errors import ArtifactError

routes = APIRouter(prefix="/api/v1", tags=["routing"])


@routes.post("/feedback", status_code=201, response_model=FeedbackOut, operation_id="sendFeedback")
async def send_feedback(
    body: FeedbackIn, principal: PrincipalDep, db: DbDep, audit: AuditDep, registry: RegistryDep
) -> FeedbackOut:
    async with db.transaction() as session:
        row = await FeedbackService(session, registry, audit).submit(
            principal, body.request_id, body.rating, body.comment, body.expected_expert
        )
        return FeedbackOut(id=row.id)


@routes.get("/admin/router", response_model=RouterStatusOut, operation_id="routerStatus")
async def router_status(_: AuditorDep, settings: SettingsDep, gate: GateDep) -> RouterStatusOut:
    store = router_store(settings)
    active, shadow = store.active(), store.shadow()
    stats = gate.shadow_stats()
    versions = [
        GateVersionOut(
            version=m.version, created_at=m.created_at, experts=list(m.experts), architecture=m.architecture,
            data_hash=m.data_hash, metrics=dict(m.metrics), active=m.version == active, shadow=m.version == shadow,
        )
        for m in store.manifests()
    ]  # fmt: skip
    return RouterStatusOut(
        serving=gate.version,
        active=active,
        shadow=shadow,
        shadow_compared=stats.compared,
        shadow_agreement=stats.agreement,
        rollback_to=_rollback_target(store.history()),
        versions=versions,
    )


def _rollback_target(history: list[str]) -> str | None:
    """What GateStore.rollback would re-activate: the promotion before the last one."""
    return history[-2] if len(history) >= 2 else None


def _versions(session: AsyncSession, settings: Settings, audit: AuditTrail) -> GateVersions:
    return GateVersions(session, router_store(settings), audit)


def _not_found(exc: ArtifactError) -> NotFound:
    return NotFound(str(exc), code="router_version_not_found", param="version")


@routes.post("/admin/router/promote", response_model=RouterStatusOut, operation_id="promoteRouter")
async def promote(
    body: VersionIn, admin: AdminDep, settings: SettingsDep, gate: GateDep, db: DbDep, audit: AuditDep
) -> RouterStatusOut:
    try:
        async with db.transaction() as session:
            await _versions(session, settings, audit).promote(Actor.of(admin), body.version)
    except ArtifactError as exc:
        raise _not_found(exc) from exc
    return await router_status(admin, settings, gate)


@routes.post("/admin/router/rollback", response_model=RouterStatusOut, operation_id="rollbackRouter")
async def rollback(
    admin: AdminDep, settings: SettingsDep, gate: GateDep, db: DbDep, audit: AuditDep
) -> RouterStatusOut:
    try:
        async with db.transaction() as session:
            await _versions(session, settings, audit).rollback(Actor.of(admin))
    except ArtifactError as exc:
        raise NotFound(str(exc), code="nothing_to_roll_back") from exc
    return await router_status(admin, settings, gate)


@routes.post("/admin/router/shadow", response_model=RouterStatusOut, operation_id="shadowRouter")
async def shadow(
    body: ShadowIn, admin: AdminDep, settings: SettingsDep, gate: GateDep, db: DbDep, audit: AuditDep
) -> RouterStatusOut:
    try:
        async with db.transaction() as session:
            await _versions(session, settings, audit).set_shadow(Actor.of(admin), body.version)
    except ArtifactError as exc:
        raise _not_found(exc) from exc
    return await router_status(admin, settings, gate)


@routes.post("/admin/router/train", response_model=TrainOut, operation_id="trainRouter")
async def train(
    body: TrainIn,
    admin: AdminDep,
    db: DbDep,
    audit: AuditDep,
    registry: RegistryDep,
    encoder: EncoderDep,
    settings: SettingsDep,
) -> TrainOut:
    """Retrain inline (minutes on a laptop CPU with the encoder tuned, seconds without:
    the router_finetune setting); a worker runs the same service."""
    outcome = await train_from_all(
        db,
        audit,
        Actor.of(admin),
        registry,
        encoder,
        router_store(settings),
        promote=body.promote,
        config=train_config(settings.router_finetune),
    )
    version = outcome.manifest.version
    return TrainOut(
        version=version,
        promoted=outcome.promoted,
        n_examples=outcome.n_seed + outcome.n_stored + outcome.n_files,
        validation=dict(outcome.manifest.metrics),
    )


@routes.get("/admin/router/feedback", response_model=list[FeedbackQueueItem], operation_id="feedbackQueue")
async def feedback_queue(_: AuditorDep, db: DbDep, audit: AuditDep, registry: RegistryDep) -> list[FeedbackQueueItem]:
    async with db.session() as session:
        items = await FeedbackService(session, registry, audit).queue()
    return [
        FeedbackQueueItem(
            id=i.id, request_id=i.request_id, rating=i.rating, comment=i.comment,
            expected_expert=i.expected_expert, routed_expert=i.routed_expert, question=i.question,
        )
        for i in items
    ]  # fmt: skip


@routes.get("/admin/feedback", response_model=FeedbackPageOut, operation_id="listFeedback")
async def list_feedback(
    _: AuditorDep,
    db: DbDep,
    rating: Annotated[Literal["up", "down"] | None, Query()] = None,
    with_comment: Annotated[bool, Query(description="only feedback with a comment")] = False,
    expert: Annotated[str | None, Query(max_length=32, description="the expert that answered")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: CursorParam = None,
) -> FeedbackPageOut:
    """Every user's feedback, newest first (admins and auditors): ratings and comments,
    thumbs-up and resolved included, unlike the relabel queue."""
    async with db.session() as session:
        page = await FeedbackLog(session).page(
            rating=rating, with_comment=with_comment, expert=expert, cursor=cursor, limit=limit
        )
    return FeedbackPageOut(
        data=[
            FeedbackEntryOut(
                id=e.id, request_id=e.request_id, rating="up" if e.rating == "up" else "down", comment=e.comment,
                routed_expert=e.routed_expert, expected_expert=e.expected_expert, resolved=e.resolved,
                created_at=e.created_at, user_email=e.user_email, question=e.question,
            )
            for e in page.entries
        ],
        next_cursor=page.next_cursor,
    )  # fmt: skip


@routes.post("/admin/router/relabel", response_model=RelabelOut, operation_id="relabelRequest")
async def relabel(body: RelabelIn, admin: AdminDep, db: DbDep, audit: AuditDep, registry: RegistryDep) -> RelabelOut:
    async with db.transaction() as session:
        example = await FeedbackService(session, registry, audit).relabel(admin, body.request_id, body.domain)
        return RelabelOut(example_id=example.id, domain=example.domain)
