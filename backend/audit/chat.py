"""The audit event of one chat request, built from what the pipeline decided.

The pipeline fills a :class:`ChatTrace` as it goes (success or failure) and the trail
appends :func:`chat_entry` of it. Payload shape (stable keys; see docs/governance.md)::

    route:     expert, routed_to, reason, confidence, probabilities, top_k,
               router_version, ood_score, detail
    llm:       model (configured), upstream_model (reported), endpoint
    usage:     prompt_tokens, completion_tokens
    latency_ms: guard, route, generate, total
    fallbacks: [{expert, error}]
    guard:     pii (type -> count), pii_policy, pii_action
    retrieval: whatever the retrieval stage reports (chunk ids, index version)
    completeness: complete | cut_by_token_cap | interrupted | none (see completeness())
    grounding: score, checked, unsupported [{start, end, text, reason, detail}], action
    review:    id, trigger (on_fail | always | sample), delivery, status (sent to a person)
    output:    secrets_removed, instructions_withheld (backend/guard/output.py)
    cache:     status (hit | miss | bypass | skipped), ms; on a hit match, similarity,
               source_request_id, tokens_saved (backend/cache/)
    error:     code, message (failures only)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.errors import AppError
from backend.guard.policy import NO_PII, PiiReport, action_for
from backend.principal import Principal
from experts.registry import PiiPolicy
from experts.types import FallbackStep, Usage
from router.types import RoutingDecision

CHAT_ACTION = "chat.completion"
ROUTE_ACTION = "chat.route"  # /v1/route: a routing decision only, no answer


@dataclass(frozen=True, slots=True)
class ChatTrace:
    request_id: str
    principal: Principal
    prompt: str
    decision: RoutingDecision | None = None
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    pii: PiiReport = NO_PII
    pii_policy: PiiPolicy | None = None
    stream: bool = False
    expert: str | None = None
    model: str | None = None
    upstream_model: str | None = None
    endpoint: str | None = None
    usage: Usage | None = None
    fallbacks: tuple[FallbackStep, ...] = ()
    answer: str | None = None
    finish_reason: str | None = None
    conversation_id: str | None = None
    retrieval: Mapping[str, object] = field(default_factory=dict)
    error: AppError | None = None
    grounding: Mapping[str, object] | None = None  # the grounding check's record
    review: Mapping[str, object] | None = None  # the answer went to review (backend/review)
    output: Mapping[str, int] | None = None  # what the output check removed (counts)
    cache: Mapping[str, object] | None = None  # the response cache: status, source request
    safety: Mapping[str, object] | None = None  # the input safety check's verdict


def route_record(decision: RoutingDecision, expert: str | None = None) -> dict[str, object]:
    """The routing decision as it is recorded, in the audit event and with the stored
    answer alike (one shape: docs/governance.md). ``expert``: who answered, when a
    fallback or overflow changed it."""
    return {
        "expert": expert or decision.expert,
        "routed_to": decision.expert,
        "reason": str(decision.reason),
        "confidence": decision.confidence,
        "probabilities": dict(decision.probabilities),
        "top_k": list(decision.top_k),
        "router_version": decision.router_version,
        "ood_score": decision.ood_score,
        "detail": decision.detail,
    }


def completeness(trace: ChatTrace) -> str:
    """How whole the answer the caller got is: ``complete``; ``cut_by_token_cap`` (the
    model stopped at max_tokens: a success the caller asked for, but not the whole
    thought); ``interrupted`` (text was sent, then the request failed or the client left);
    ``none`` (no answer). Empty answers and streams cut by the server never reach a
    success: the experts package raises AnswerIncomplete for them."""
    if trace.error is not None:
        return "interrupted" if trace.answer else "none"
    return "cut_by_token_cap" if trace.finish_reason == "length" else "complete"


def chat_entry(trace: ChatTrace, redact: Callable[[str], str], action: str = CHAT_ACTION) -> AuditEntry:
    """The event for ``trace``. ``redact`` cleans free text that lands in the payload
    (error messages can quote the input); prompt and answer follow the text policy."""
    d = trace.decision
    payload: dict[str, object] = {
        "stream": trace.stream,
        "conversation_id": trace.conversation_id,
        "latency_ms": {k: round(v, 3) for k, v in trace.latency_ms.items()},
        "guard": {
            "pii": dict(trace.pii.counts),
            "pii_policy": trace.pii_policy,
            "pii_action": action_for(trace.pii_policy, trace.pii) if trace.pii_policy else None,
        },
        "fallbacks": [{"expert": f.expert, "error": f.error} for f in trace.fallbacks],
    }
    if d is not None:
        payload["route"] = route_record(d, trace.expert)
    if trace.model or trace.endpoint:
        payload["llm"] = {
            "model": trace.model,
            "upstream_model": trace.upstream_model,
            "endpoint": trace.endpoint,
        }
    if trace.usage is not None:
        payload["usage"] = {
            "prompt_tokens": trace.usage.prompt_tokens,
            "completion_tokens": trace.usage.completion_tokens,
        }
    if trace.finish_reason is not None:
        payload["finish_reason"] = trace.finish_reason
    if trace.retrieval:
        payload["retrieval"] = dict(trace.retrieval)
    if trace.grounding is not None:
        payload["grounding"] = dict(trace.grounding)
    if trace.review is not None:
        payload["review"] = dict(trace.review)
    if trace.output is not None:
        payload["output"] = dict(trace.output)
    if trace.cache is not None:
        payload["cache"] = dict(trace.cache)
    if trace.safety is not None:
        payload["safety"] = dict(trace.safety)
    status = 200
    if trace.error is not None:
        status = trace.error.status
        payload["error"] = {"code": trace.error.code, "message": redact(trace.error.message)}
    if action == CHAT_ACTION:
        payload["completeness"] = completeness(trace)
    return AuditEntry(
        action=action,
        outcome=Outcome.for_status(status),
        actor=Actor.of(trace.principal),
        request_id=trace.request_id,
        status=status,
        expert=trace.expert or (d.expert if d else None),
        reason=("fallback" if trace.fallbacks and trace.error is None else str(d.reason)) if d else None,
        payload=payload,
        prompt=trace.prompt,
        answer=trace.answer,
    )
