"""An open streamed answer, and the admission it holds until it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

from backend.chat.admission import Admission
from backend.chat.types import Routed, StreamEvent, StreamFinished


class AnswerStream:
    """An open streamed answer: StreamOpened, TextDelta..., StreamFinished (or the
    failure, raised after the text so far). It holds the request's admission and gives
    it back when the stream ends, fails or is closed, and on :meth:`aclose` when it was
    never read (a client that left before the first byte)."""

    def __init__(self, routed: Routed, admission: Admission, events: AsyncIterator[StreamEvent]) -> None:
        self.routed = routed
        self.headers = admission.headers
        self._admission = admission
        self._events = events

    @property
    def request_id(self) -> str:
        return self.routed.request_id

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._run()

    async def _run(self) -> AsyncIterator[StreamEvent]:
        used = 0
        try:
            async for event in self._events:
                if isinstance(event, StreamFinished):
                    used = event.usage.total_tokens
                yield event
        finally:
            await self._admission.release(used)

    async def aclose(self) -> None:
        """End the stream wherever it is; gives the admission back (idempotent)."""
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()
        await self._admission.release()
