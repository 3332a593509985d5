"""/api/v1/me and /api/v1/admin/keys. Parse, call one service, map."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import AdminDep, AuditDep, AuditorDep, DbDep, KeyAuthDep, PrincipalDep
from backend.api.schemas.identity import IssuedKeyOut, KeyCreate, KeyList, KeyOut, MeOut
from backend.audit.types import Actor
from backend.identity.admin import KeyAdmin
from backend.identity.service import IdentityService

routes = APIRouter(prefix="/api/v1", tags=["identity"])


@routes.get("/me", response_model=MeOut, operation_id="getMe")
async def me(principal: PrincipalDep, db: DbDep) -> MeOut:
    """Who the key belongs to: user, team, groups, roles, and the key itself."""
    key = None
    if principal.key_id is not None:
        async with db.session() as session:
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


@routes.get("/admin/keys", response_model=KeyList, operation_id="listKeys")
async def list_keys(
    _: AuditorDep,
    db: DbDep,
    user: Annotated[str | None, Query(description="only this user's keys (email)")] = None,
) -> KeyList:
    async with db.session() as session:
        keys = await IdentityService(session).list_keys(user)
    return KeyList(data=[KeyOut.of(k) for k in keys])


@routes.post("/admin/keys", response_model=IssuedKeyOut, status_code=201, operation_id="createKey")
async def create_key(
    principal: AdminDep, keys: KeyAuthDep, db: DbDep, audit: AuditDep, body: KeyCreate
) -> IssuedKeyOut:
    """Create the user if new and a key for it; the secret is in this response only."""
    async with db.transaction() as session:
        issued = await KeyAdmin(session, audit).create(
            Actor.of(principal),
            body.email,
            role=body.role,
            groups=set(body.groups),
            team=body.team,
            name=body.name,
        )
        info = await IdentityService(session).get_key(issued.key_id)
    keys.forget_user(issued.user_id)  # an existing user may have gained a role or group
    return IssuedKeyOut(key=KeyOut.of(info), secret=issued.secret)


@routes.post("/admin/keys/{key_id}/revoke", response_model=KeyOut, operation_id="revokeKey")
async def revoke_key(key_id: int, principal: AdminDep, keys: KeyAuthDep, db: DbDep, audit: AuditDep) -> KeyOut:
    """Revoke a key at once (idempotent); requests with it then get 401."""
    async with db.transaction() as session:
        info, _changed = await KeyAdmin(session, audit).revoke(Actor.of(principal), key_id)
    keys.forget_key(key_id)  # committed: this process refuses the key from now on
    return KeyOut.of(info)
