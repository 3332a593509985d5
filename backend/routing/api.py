"""/api/v1/feedback and /api/v1/admin/router: thin routes over the routing services."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.container import Container
from backend.deps import get_container, get_principal, require_admin, require_audit_reader
from backend.errors import NotFound
from backend.identity.types import Principal
from backend.routing.feedback import FeedbackService, feedback_audit_entry
from backend.routing.feedback_log import MAX_PAGE, FeedbackLog
from backend.routing.schemas import (
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
from backend.routing.training import train_config, train_from_all
from backend.routing.versions import GateVersions
from backend.routing.wiring import router_store
from router.errors import ArtifactError

router = APIRouter(prefix="/api/v1", tags=["routing"])

ContainerDep = Annotated[Container, Depends(get_container)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(require_admin)]
ReaderDep = Annotated[Principal, Depends(require_audit_reader)]


async def _audit_admin(container: Container, admin: Principal, action: str, payload: dict[str, object]) -> None:
    async with container.db.transaction() as session:
        await container.audit.append(
            session,
            AuditEntry(
                action=action,
                outcome=Outcome.OK,
                actor=Actor.of(admin),
                status=200,
                payload=payload,
            ),
        )


@router.post("/feedback", status_code=201, response_model=FeedbackOut, operation_id="sendFeedback")
async def send_feedback(body: FeedbackIn, principal: PrincipalDep, container: ContainerDep) -> FeedbackOut:
    async with container.db.transaction() as session:
        row = await FeedbackService(session, container.registry).submit(
            principal, body.request_id, body.rating, body.comment, body.expected_expert
        )
        await container.audit.append(session, feedback_audit_entry(principal, row))
        return FeedbackOut(id=row.id)


@router.get("/admin/router", response_model=RouterStatusOut, operation_id="routerStatus")
async def router_status(_: ReaderDep, container: ContainerDep) -> RouterStatusOut:
    store = router_store(container.settings)
    active, shadow = store.active(), store.shadow()
    stats = container.router.shadow_stats()
    versions = [
        GateVersionOut(
            version=m.version, created_at=m.created_at, experts=list(m.experts), architecture=m.architecture,
            data_hash=m.data_hash, metrics=dict(m.metrics), active=m.version == active, shadow=m.version == shadow,
        )
        for m in store.manifests()
    ]  # fmt: skip
    return RouterStatusOut(
        serving=container.router.version,
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


def _versions(session: AsyncSession, container: Container) -> GateVersions:
    return GateVersions(session, router_store(container.settings), container.audit)


def _not_found(exc: ArtifactError) -> NotFound:
    return NotFound(str(exc), code="router_version_not_found", param="version")


@router.post("/admin/router/promote", response_model=RouterStatusOut, operation_id="promoteRouter")
async def promote(body: VersionIn, admin: AdminDep, container: ContainerDep) -> RouterStatusOut:
    try:
        async with container.db.transaction() as session:
            await _versions(session, container).promote(Actor.of(admin), body.version)
    except ArtifactError as exc:
        raise _not_found(exc) from exc
    return await router_status(admin, container)


@router.post("/admin/router/rollback", response_model=RouterStatusOut, operation_id="rollbackRouter")
async def rollback(admin: AdminDep, container: ContainerDep) -> RouterStatusOut:
    try:
        async with container.db.transaction() as session:
            await _versions(session, container).rollback(Actor.of(admin))
    except ArtifactError as exc:
        raise NotFound(str(exc), code="nothing_to_roll_back") from exc
    return await router_status(admin, container)


@router.post("/admin/router/shadow", response_model=RouterStatusOut, operation_id="shadowRouter")
async def shadow(body: ShadowIn, admin: AdminDep, container: ContainerDep) -> RouterStatusOut:
    try:
        async with container.db.transaction() as session:
            await _versions(session, container).set_shadow(Actor.of(admin), body.version)
    except ArtifactError as exc:
        raise _not_found(exc) from exc
    return await router_status(admin, container)


@router.post("/admin/router/train", response_model=TrainOut, operation_id="trainRouter")
async def train(body: TrainIn, admin: AdminDep, container: ContainerDep) -> TrainOut:
    """Retrain inline (minutes on a laptop CPU with the encoder tuned, seconds without:
    the router_finetune setting); a worker runs the same service."""
    outcome = await train_from_all(
        container.db,
        container.registry,
        container.encoder,
        router_store(container.settings),
        promote=body.promote,
        config=train_config(container.settings.router_finetune),
    )
    version = outcome.manifest.version
    await _audit_admin(container, admin, "router.trained", {"version": version, "promoted": body.promote})
    return TrainOut(
        version=version,
        promoted=outcome.promoted,
        n_examples=outcome.n_seed + outcome.n_stored + outcome.n_files,
        validation=dict(outcome.manifest.metrics),
    )


@router.get("/admin/router/feedback", response_model=list[FeedbackQueueItem], operation_id="feedbackQueue")
async def feedback_queue(_: ReaderDep, container: ContainerDep) -> list[FeedbackQueueItem]:
    async with container.db.session() as session:
        items = await FeedbackService(session, container.registry).queue()
    return [
        FeedbackQueueItem(
            id=i.id, request_id=i.request_id, rating=i.rating, comment=i.comment,
            expected_expert=i.expected_expert, routed_expert=i.routed_expert, question=i.question,
        )
        for i in items
    ]  # fmt: skip


@router.get("/admin/feedback", response_model=FeedbackPageOut, operation_id="listFeedback")
async def list_feedback(
    _: ReaderDep,
    container: ContainerDep,
    rating: Annotated[Literal["up", "down"] | None, Query()] = None,
    with_comment: Annotated[bool, Query(description="only feedback with a comment")] = False,
    expert: Annotated[str | None, Query(max_length=32, description="the expert that answered")] = None,
    before: Annotated[int | None, Query(ge=1, description="feedback id: older than this")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> FeedbackPageOut:
    """Every user's feedback, newest first (admins and auditors): ratings and comments,
    thumbs-up and resolved included, unlike the relabel queue."""
    async with container.db.session() as session:
        page = await FeedbackLog(session).page(
            rating=rating, with_comment=with_comment, expert=expert, before=before, limit=limit
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
        next_before=page.next_before,
    )  # fmt: skip


@router.post("/admin/router/relabel", response_model=RelabelOut, operation_id="relabelRequest")
async def relabel(body: RelabelIn, admin: AdminDep, container: ContainerDep) -> RelabelOut:
    async with container.db.transaction() as session:
        example = await FeedbackService(session, container.registry).relabel(admin, body.request_id, body.domain)
        await container.audit.append(
            session,
            AuditEntry(
                action="router.relabeled", outcome=Outcome.OK, actor=Actor.of(admin), status=200,
                request_id=body.request_id, payload={"domain": body.domain, "example_id": example.id},
            ),
        )  # fmt: skip
        return RelabelOut(example_id=example.id, domain=example.domain)
