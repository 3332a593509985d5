"""/api/v1/me and /api/v1/admin/keys. Parse, call one service, map."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backend.audit.types import Actor
from backend.container import Container
from backend.deps import get_container, get_principal, require_admin, require_audit_reader
from backend.identity.admin import KeyAdmin
from backend.identity.schemas import IssuedKeyOut, KeyCreate, KeyList, KeyOut, MeOut
from backend.identity.service import IdentityService
from backend.identity.types import Principal

router = APIRouter(prefix="/api/v1", tags=["identity"])

ContainerDep = Annotated[Container, Depends(get_container)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(require_admin)]
ReaderDep = Annotated[Principal, Depends(require_audit_reader)]


@router.get("/me", response_model=MeOut, operation_id="getMe")
async def me(principal: PrincipalDep, container: ContainerDep) -> MeOut:
    """Who the key belongs to: user, team, groups, roles, and the key itself."""
    key = None
    if principal.key_id is not None:
        async with container.db.session() as session:
            key = KeyOut.of(await IdentityService(session).get_key(principal.key_id))
    return MeOut(
        user_id=principal.user_id,
        email=principal.email,
        team=principal.team,
        groups=sorted(principal.groups),
        roles=sorted(principal.roles),
        channel=principal.channel,
        key=key,
    )


@router.get("/admin/keys", response_model=KeyList, operation_id="listKeys")
async def list_keys(
    _: ReaderDep,
    container: ContainerDep,
    user: Annotated[str | None, Query(description="only this user's keys (email)")] = None,
) -> KeyList:
    async with container.db.session() as session:
        keys = await IdentityService(session).list_keys(user)
    return KeyList(data=[KeyOut.of(k) for k in keys])


@router.post("/admin/keys", response_model=IssuedKeyOut, status_code=201, operation_id="createKey")
async def create_key(principal: AdminDep, container: ContainerDep, body: KeyCreate) -> IssuedKeyOut:
    """Create the user if new and a key for it; the secret is in this response only."""
    async with container.db.transaction() as session:
        issued = await KeyAdmin(session, container.audit).create(
            Actor.of(principal),
            body.email,
            role=body.role,
            groups=set(body.groups),
            team=body.team,
            name=body.name,
        )
        info = await IdentityService(session).get_key(issued.key_id)
    container.auth.forget_user(issued.user_id)  # an existing user may have gained a role or group
    return IssuedKeyOut(key=KeyOut.of(info), secret=issued.secret)


@router.post("/admin/keys/{key_id}/revoke", response_model=KeyOut, operation_id="revokeKey")
async def revoke_key(key_id: int, principal: AdminDep, container: ContainerDep) -> KeyOut:
    """Revoke a key at once (idempotent); requests with it then get 401."""
    async with container.db.transaction() as session:
        info, _changed = await KeyAdmin(session, container.audit).revoke(Actor.of(principal), key_id)
    container.auth.forget_key(key_id)  # committed: this process refuses the key from now on
    return KeyOut.of(info)
