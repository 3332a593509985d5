"""FastAPI dependencies: the container and the authenticated principal."""

from __future__ import annotations

from fastapi import Request

from backend.container import Container
from backend.identity.service import IdentityService
from backend.identity.types import Principal


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def get_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    token = secret.strip() if scheme.lower() == "bearer" else None
    container = get_container(request)
    async with container.db.session() as session:
        return await IdentityService(session).authenticate(token)
