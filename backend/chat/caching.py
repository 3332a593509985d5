"""The pipeline's side of the response cache (backend/cache/): look up after admission,
replay a hit (plain or streamed, audited and recorded in the conversation like any
answer), keep a delivered answer. The cache's rules live in backend/cache/; this module
only maps the pipeline's values to it.

A hit gives its admission back at once with no tokens used: the capacity slot is free
and the caller's token budgets are charged nothing (the request still counts against a
requests-per-minute limit, charged at admission). What it saved is counted in
``expertgate_cache_tokens_saved``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Mapping

import anyio

from backend.cache.service import Delivered, ResponseCache
from backend.cache.types import CacheLookup
from backend.chat.admission import Admission
from backend.chat.recorder import ChatRecorder
from backend.chat.types import ChatResult, Routed, StreamEvent, StreamFinished, StreamOpened
from backend.knowledge.types import Retrieval
from backend.review.types import HeldReview
from experts.types import Completion, ExpertAnswer, FallbackStep, TextDelta, Usage

log = logging.getLogger(__name__)

NOTHING_USED = Usage()
# A replayed stream sends the answer a few words per delta, as a model would.
_WORDS = re.compile(r"\S+\s*")
WORDS_PER_DELTA = 4


class ChatCache:
    """The response cache as the pipeline uses it; ``cache`` None: no cache at all."""

    def __init__(self, cache: ResponseCache | None, recorder: ChatRecorder) -> None:
        self._cache = cache
        self._recorder = recorder

    async def lookup(self, routed: Routed, use: bool) -> CacheLookup | None:
        """Stage 3d, after admission (the expert is final). None: the expert's cache is
        off. The cache never fails a request: an error here is logged and is a miss."""
        if self._cache is None:
            return None
        chat, query = routed.input, routed.query
        try:
            return await self._cache.lookup(
                routed.decision.expert,
                chat.last_user_text,
                use=use,
                conversation_id=chat.conversation_id,
                roles=[m.role for m in chat.messages],
                pii=bool(chat.pii.counts),
                temperature=chat.temperature,
                max_tokens=chat.max_tokens,
                encoder=None if query is None else query.model,
                vector=None if query is None else query.vector,
                groups=chat.principal.groups,
            )
        except Exception:
            log.exception("response cache lookup failed for %s; answering without it", chat.request_id)
            return None

    async def keep(
        self,
        routed: Routed,
        lookup: CacheLookup | None,
        *,
        expert: str,
        text: str,
        usage: Usage,
        upstream_model: str,
        finish_reason: str,
        fallbacks: tuple[FallbackStep, ...],
        retrieval: Retrieval,
        grounding: Mapping[str, object] | None,
        review: HeldReview | None,
        output: Mapping[str, int] | None,
    ) -> None:
        """Keep a delivered answer for later questions (the cache decides whether it may)."""
        if self._cache is None or lookup is None:
            return
        chat = routed.input
        delivered = Delivered(
            request_id=chat.request_id, decided=routed.decision.expert, expert=expert, text=text,
            upstream_model=upstream_model, usage=usage, fallbacks=len(fallbacks), finish_reason=finish_reason,
            held=review is not None, retrieval=retrieval, grounding=grounding, output=output,
        )  # fmt: skip
        try:
            await self._cache.store(lookup, chat.last_user_text, delivered)
        except Exception:
            log.exception("could not keep the answer of %s in the response cache", chat.request_id)

    async def replay(self, routed: Routed, admission: Admission, lookup: CacheLookup) -> ChatResult:
        """A hit as a plain answer: recorded (conversation and audit event) like any."""
        assert lookup.hit is not None
        cached = lookup.hit.answer
        await admission.release(0)
        retrieval = cached.retrieval()
        record = lookup.record()
        conversation_id = await self._record(routed, lookup, retrieval, stream=False)
        answer = ExpertAnswer(cached.expert, Completion(cached.text, cached.upstream_model, NOTHING_USED, "stop"))
        return ChatResult(
            routed, answer, conversation_id, retrieval, admission.headers, cached.grounding, None, cache=record
        )

    async def replay_stream(
        self, routed: Routed, admission: Admission, lookup: CacheLookup
    ) -> AsyncIterator[StreamEvent]:
        """A hit as a stream: StreamOpened, the text as deltas, StreamFinished once it is
        recorded: the same events a generated answer sends."""
        assert lookup.hit is not None
        cached = lookup.hit.answer
        await admission.release(0)
        retrieval = cached.retrieval()
        record = lookup.record()
        started = time.perf_counter()
        sent: list[str] = []
        try:
            yield StreamOpened(cached.expert, (), retrieval, cache=record)
            words = _WORDS.findall(cached.text)
            for start in range(0, len(words), WORDS_PER_DELTA):
                sent.append("".join(words[start : start + WORDS_PER_DELTA]))
                yield TextDelta(sent[-1])
        except (GeneratorExit, anyio.get_cancelled_exc_class()):
            # The client went away mid-replay: still one event for the request.
            with anyio.CancelScope(shield=True):
                await self._recorder.failure(
                    routed, None, started, stream=True, expert=cached.expert, partial="".join(sent)
                )
            raise
        conversation_id = await self._record(routed, lookup, retrieval, stream=True)
        yield StreamFinished(
            "stop", NOTHING_USED, cached.upstream_model, conversation_id, retrieval, cached.grounding, None,
            cache=record,
        )  # fmt: skip

    async def _record(self, routed: Routed, lookup: CacheLookup, retrieval: Retrieval, *, stream: bool) -> str:
        assert lookup.hit is not None
        cached = lookup.hit.answer
        started = time.perf_counter()
        try:
            return await self._recorder.exchange(
                routed, cached.expert, cached.text, NOTHING_USED, (),
                generate_ms=0.0, upstream_model=cached.upstream_model, finish_reason="stop", stream=stream,
                retrieval=retrieval, grounding=cached.grounding, cache=lookup.record(),
            )  # fmt: skip
        except Exception as exc:  # the database refused the write: nothing of it was kept
            await self._recorder.failure(routed, exc, started, stream=stream, expert=cached.expert)
            raise
