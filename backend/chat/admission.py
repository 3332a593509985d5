"""What admitting a request took, as one value that gives it back exactly once.

Admission (pipeline stages 3b and 3c) charges the caller's quotas with an estimate and
holds a capacity slot on the expert that will answer. Both must be returned on every way
out of the request: the answer was generated (the quota charge is corrected to the real
token count), generation failed, the client went away, or a stream was never read. An
:class:`Admission` is used as ``async with admission:`` around the work; its
:meth:`release` may also be called earlier (the slot is freed while the exchange is being
written) and any later release is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio

from backend.capacity.service import CapacityService
from backend.capacity.types import Slot
from backend.quota.service import Grant, QuotaService


@dataclass(eq=False)
class Admission:
    capacity: CapacityService
    quota: QuotaService | None
    slot: Slot | None
    grant: Grant | None
    _released: bool = field(default=False, init=False)

    @property
    def headers(self) -> Mapping[str, str]:
        """The caller's ``x-ratelimit-*`` headers (none without quotas)."""
        return self.grant.headers() if self.grant is not None else {}

    async def release(self, used_tokens: int = 0) -> None:
        """Free the slot and settle the quota charge at ``used_tokens`` (0: nothing was
        generated). Once; shielded from cancellation (a client that leaves must not
        leave a slot held)."""
        if self._released:
            return
        self._released = True
        with anyio.CancelScope(shield=True):
            await self.capacity.release(self.slot)
            if self.quota is not None and self.grant is not None:
                await self.quota.settle(self.grant, used_tokens)

    async def __aenter__(self) -> Admission:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.release()
