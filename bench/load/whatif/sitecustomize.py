"""A what-if for bench/load/floor.py, never the product: expertgate with its LLM call
made by one shared ``httpx.AsyncClient`` instead of litellm.

ARCHITECTURE.md has every LLM call go through litellm; issue 10's throughput goal asks
for twice LiteLLM proxy's throughput. This measures how far expertgate's own work
(auth, quota, capacity, audit) would be from that goal without litellm's cost, so that
the choice between the two is made on a figure. Python imports this module at start-up
when its directory is on PYTHONPATH (bench/load/floor.py sets it for the ``eg-direct``
server only); it then replaces ``LiteLLMClient.complete`` for non-streamed calls to
endpoints with an ``api_base``. Nothing else changes.

A what-if, so two of the project's habits are set aside here: the replacement happens at
import (that is how Python runs a sitecustomize), and an endpoint's error is not mapped
onto :mod:`experts.errors` (an ``httpx`` error reaches the caller as it is; the run
counts errors, and a what-if with errors is not a figure).
"""

from __future__ import annotations

import sys
from typing import Any

import httpx

import experts.llm
from experts.types import Completion, Usage

MARK = "what-if: non-streamed LLM calls to self-hosted endpoints go by httpx, not litellm"
_litellm_complete = experts.llm.LiteLLMClient.complete


class _Http:
    """One client per process, made in its event loop on first use."""

    client: httpx.AsyncClient | None = None

    @classmethod
    def get(cls, timeout_s: float) -> httpx.AsyncClient:
        if cls.client is None:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
            cls.client = httpx.AsyncClient(limits=limits, timeout=timeout_s)
        return cls.client


async def _complete(self: Any, expert: str, endpoint: Any, messages: Any, params: Any) -> Completion:
    if endpoint.api_base is None:
        return await _litellm_complete(self, expert, endpoint, messages, params)
    r = await _Http.get(endpoint.timeout_s).post(
        endpoint.api_base.rstrip("/") + "/chat/completions",
        json={
            "model": endpoint.model.split("/", 1)[1],
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        },
        headers={"authorization": f"Bearer {endpoint.api_key}"},
    )
    r.raise_for_status()
    body = r.json()
    choice, usage = body["choices"][0], body.get("usage") or {}
    return Completion(
        text=choice["message"]["content"] or "",
        model=str(body.get("model") or endpoint.model),
        usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
        finish_reason=str(choice.get("finish_reason") or "stop"),
    )


experts.llm.LiteLLMClient.complete = _complete  # type: ignore[method-assign]
print(MARK, file=sys.stderr, flush=True)
