"""Routing concurrent requests in shared encoder calls.

The sentence encoder is the costliest step of routing, and most of one call's cost is
per call, not per text: on the 2-core development machine MiniLM took about 9 CPU-ms for
one short text and about 4 CPU-ms per text in a batch of 8. So, under load, requests
that arrive while a batch is being encoded wait for it to finish and then go together as
the next batch (up to ``max_batch``). There is no waiting window: a lone request on an
idle server is encoded at once, exactly as before.

Requests that name their expert need no gate: the router decides them without the
encoder (:meth:`router.service.Router.route_encoded`), at once, unless ``embed_named``
asks for their base-model vector too (the input safety check scores every request on it,
issue 23): then they join the batches, and the one encoder call makes their vectors with
the others' instead of one call per request in a thread of its own (issue 24's
pass-through cost). Their ACL errors reach their own caller either way (a batch that
fails is routed again one request at a time).

A batch that fails is routed again one request at a time, so that a request the encoder
cannot take fails alone and its neighbours are answered.

A gate with a routing-tuned encoder scores vectors that nothing after routing can use:
the response cache, the safety check and retrieval all want the base model's vector of
the same text, and each made it alone (one text per call, in its own worker thread; the
full pipeline's profile put a third of the server's CPU there, issue 24). With
``query_encoder`` (the base model) the batch's texts are encoded by it too, in the same
worker thread and in one call, and each route carries that vector instead: one encode
per text for all three, batched like the gate's. The base model's call runs in a thread
of its own beside the gate's (both runtimes release the GIL while they compute), so that
a lone request on an idle server waits for the longer of the two encodes, not their sum;
under load the two cores are busy either way and the work is the same.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import anyio

from router.encoder import Encoder, Vectors
from router.service import EncodedRoute, Router, Vector
from router.types import RouteRequest

log = logging.getLogger(__name__)


class RouteBatcher:
    """Routes on the event loop's behalf; encoder work runs in worker threads."""

    def __init__(
        self,
        router: Router,
        max_batch: int = 32,
        *,
        query_encoder: Encoder | None = None,
        embed_named: bool = False,
    ) -> None:
        """``query_encoder``: the base model, whose vector of each routed text replaces a
        tuned encoder's on the route (module docstring); None: routes keep the gate's.
        ``embed_named``: requests that name their expert get that vector too, batched."""
        self._router = router
        self._max_batch = max_batch
        self._query_encoder = query_encoder
        self._embed_named = embed_named and query_encoder is not None
        self._queue: list[tuple[RouteRequest, asyncio.Future[EncodedRoute]]] = []
        self._draining: asyncio.Task[None] | None = None
        # One thread: batches are routed one after the other (one drain task).
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="query-encoder") if query_encoder else None

    def close(self) -> None:
        """Stop the query encoder's thread (after the batch it runs, if any)."""
        if self._beside is not None:
            self._beside.shutdown(wait=False)

    async def route(self, request: RouteRequest) -> EncodedRoute:
        """The decision (and text vector) for ``request``. Raises what Router.route raises."""
        if request.requested is not None and not self._embed_named:
            return self._router.route_encoded(request)  # policy only: no encoder, no thread
        future: asyncio.Future[EncodedRoute] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._draining is None:
            # A context of its own: not the first caller's request id and trace span.
            self._draining = asyncio.create_task(self._drain(), context=contextvars.Context())
        return await future

    def _route_batch(self, requests: list[RouteRequest]) -> list[EncodedRoute | Exception]:
        """Each request's route, or the error of that request alone (worker thread)."""
        encoder, beside = self._query_encoder, self._beside
        if encoder is None or beside is None:
            return self._routes(requests)
        # The texts the gate will encode, whose base vectors are made beside its call
        # (module docstring); none when the gate scores the base model's own vectors. A
        # named expert's text (embed_named) has no gate call to overlap: it is encoded
        # after the routing, once its route stands (an ACL refusal is never encoded).
        early: list[int] = []
        if self._router.vector_model != encoder.name:
            early = [i for i, r in enumerate(requests) if r.requested is None]
        made: Future[Vectors] | None = None
        if early:
            try:
                made = beside.submit(encoder.encode, [requests[i].text for i in early])
            except RuntimeError:  # closed (the runtime is stopping): encoded after routing
                made = None
        outcomes = self._routes(requests)
        return self._with_query_vectors(requests, outcomes, early, made)

    def _with_query_vectors(
        self,
        requests: list[RouteRequest],
        outcomes: list[EncodedRoute | Exception],
        early: Sequence[int] = (),
        made: Future[Vectors] | None = None,
    ) -> list[EncodedRoute | Exception]:
        """``outcomes`` with the query encoder's vector in place of a tuned encoder's: those
        of ``early`` from ``made`` (started before the routing), the rest (a gate swapped
        in meanwhile) in one more call. If a call fails the routes keep the gate's vectors
        (each stage after routing then encodes the text itself, as without a query
        encoder)."""
        encoder = self._query_encoder
        assert encoder is not None
        todo = [
            i
            for i, o in enumerate(outcomes)
            if isinstance(o, EncodedRoute)
            and o.model != encoder.name
            and (o.vector is not None or (self._embed_named and requests[i].requested is not None))
        ]
        vectors: dict[int, Vector] = {}
        try:
            if made is not None:
                vectors.update(zip(early, made.result(), strict=True))
            late = [i for i in todo if i not in vectors]
            if late:
                vectors.update(zip(late, encoder.encode([requests[i].text for i in late]), strict=True))
        except Exception as exc:  # the routes stand; the stages after them encode for themselves
            log.warning("query encoder failed on a routed batch of %d: %s", len(todo), exc)
            return outcomes
        out = list(outcomes)
        for i in todo:
            routed = out[i]
            assert isinstance(routed, EncodedRoute)
            out[i] = replace(routed, vector=vectors[i], model=encoder.name)
        return out

    def _routes(self, requests: list[RouteRequest]) -> list[EncodedRoute | Exception]:
        """The router's routes, or each request's own error (module docstring)."""
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
