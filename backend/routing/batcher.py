"""Routing concurrent requests in shared encoder calls.

The sentence encoder is the costliest step of routing, and most of one call's cost is
per call, not per text: on the 2-core development machine MiniLM took about 9 CPU-ms for
one short text and about 4 CPU-ms per text in a batch of 8. So, under load, requests
that arrive while a batch is being encoded wait for it to finish and then go together as
the next batch (up to ``max_batch``). There is no waiting window: a lone request on an
idle server is encoded at once, exactly as before.

Requests that name their expert never wait here: the router decides them without the
encoder (:meth:`router.service.Router.route_encoded`), and their ACL errors must reach
their own caller, not a batch.

A batch that fails is routed again one request at a time, so that a request the encoder
cannot take fails alone and its neighbours are answered.
"""

from __future__ import annotations

import asyncio
import contextvars

import anyio

from router.service import EncodedRoute, Router
from router.types import RouteRequest


class RouteBatcher:
    """Routes on the event loop's behalf; encoder work runs in worker threads."""

    def __init__(self, router: Router, max_batch: int = 32) -> None:
        self._router = router
        self._max_batch = max_batch
        self._queue: list[tuple[RouteRequest, asyncio.Future[EncodedRoute]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def route(self, request: RouteRequest) -> EncodedRoute:
        """The decision (and text vector) for ``request``. Raises what Router.route raises."""
        if request.requested is not None:
            return self._router.route_encoded(request)  # policy only: no encoder, no thread
        future: asyncio.Future[EncodedRoute] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._draining is None:
            # A context of its own: not the first caller's request id and trace span.
            self._draining = asyncio.create_task(self._drain(), context=contextvars.Context())
        return await future

    def _route_batch(self, requests: list[RouteRequest]) -> list[EncodedRoute | Exception]:
        """Each request's route, or the error of that request alone (worker thread)."""
        try:
            return list(self._router.route_many_encoded(requests))
        except Exception as exc:  # which request failed is unknown: each goes alone
            if len(requests) == 1:
                return [exc]
        outcomes: list[EncodedRoute | Exception] = []
        for request in requests:
            try:
                outcomes.append(self._router.route_encoded(request))
            except Exception as exc:  # this request's own failure, handed to its caller
                outcomes.append(exc)
        return outcomes

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                outcomes = await anyio.to_thread.run_sync(self._route_batch, [r for r, _ in batch])
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller may have gone (client disconnect)
                        continue
                    if isinstance(outcome, EncodedRoute):
                        future.set_result(outcome)
                    else:
                        future.set_exception(outcome)
        finally:
            self._draining = None
