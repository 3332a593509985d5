"""The application's services, built once per process and frozen.

:func:`build_runtime` is the wiring: settings in, services out, nothing built at import.
The API's lifespan, ``expertgate slack --socket`` and a worker's Slack jobs call it.
Routes never see the whole: backend/api/deps.py hands each route the services it names.
Commands that need only the database and the audit trail open those through
backend/cli/context.py.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from redis.asyncio import Redis

from backend.audit.chainer import AuditChainer
from backend.audit.writer import AuditTrail, build_audit_trail
from backend.cache.wiring import build_response_cache
from backend.capacity.service import CapacityService
from backend.capacity.wiring import build_capacity
from backend.chat.pipeline import ChatPipeline, Limits
from backend.chat.recorder import ChatRecorder
from backend.db.group_commit import GroupCommit
from backend.db.session import Database, migrate
from backend.db.writes import OwnTransaction, Writes
from backend.gate.batcher import RouteBatcher
from backend.gate.wiring import build_memo, build_router, bundled_encoder
from backend.grounding import GroundingChecker
from backend.guard.policy import PiiGuard
from backend.guard.safety import build_input_safety
from backend.identity.keycache import KeyAuthenticator
from backend.knowledge.wiring import Knowledge, build_knowledge
from backend.local_llm import LocalLLMServer, bundled_gguf
from backend.observability.metrics import Metrics
from backend.oidc.wiring import WebAuth, build_web_auth
from backend.quota.service import QuotaService
from backend.quota.wiring import build_quota
from backend.redis_conn import connect_redis
from backend.settings import Settings
from backend.taskqueue import TaskQueue, runs_on_workers
from experts.llm import LiteLLMClient
from experts.registry import ExpertRegistry
from experts.service import ExpertService, LLMClient
from experts.types import Endpoint
from router.encoder import Encoder
from router.service import Router

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    registry: ExpertRegistry
    encoder: Encoder
    gate: Router  # the learned gate (router/), reloaded in place on promote
    experts: ExpertService
    pipeline: ChatPipeline
    capacity: CapacityService
    local_llm: LocalLLMServer | None
    started_at: int
    audit: AuditTrail
    pii: PiiGuard
    knowledge: Knowledge
    metrics: Metrics
    # Chains the events `audit` leaves in the outbox; run by the API lifespan.
    chainer: AuditChainer
    auth: KeyAuthenticator
    quota: QuotaService | None = None
    # The Celery producer when jobs run on workers (Settings.job_runner), else None: inline.
    tasks: TaskQueue | None = None
    # The process's one Redis client (quotas, capacity, policy cache), when configured.
    redis: Redis | None = None
    # Web sign-in: SSO client, login-state signer, failed-login throttle (backend/oidc).
    web_auth: WebAuth = field(default_factory=WebAuth.without_sso)

    async def close(self) -> None:
        self.pipeline.close()
        if self.local_llm is not None:
            self.local_llm.stop()
        if self.tasks is not None:
            self.tasks.close()
        await self.web_auth.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()


def build_endpoints(
    registry: ExpertRegistry, environ: Mapping[str, str], local_api_base: str | None
) -> dict[str, Endpoint]:
    """Resolve each expert's LLM spec: ``local`` to the embedded server, key env vars to keys."""
    endpoints = {}
    for spec in registry:
        llm = spec.llm
        api_base = llm.api_base
        api_key = None
        if llm.is_local:
            if local_api_base is None:
                raise RuntimeError(
                    f"expert {spec.name!r} uses api_base 'local' but no local server runs"
                )
            api_base, api_key = local_api_base, "local"
        if llm.api_key_env:
            api_key = environ.get(llm.api_key_env)
            if not api_key:
                log.warning(
                    "expert %s: environment variable %s is not set", spec.name, llm.api_key_env
                )
        if api_key is None and api_base is not None:
            # Self-hosted OpenAI-compatible servers (vLLM, llama.cpp) often need no key,
            # but litellm's OpenAI client refuses to send a request without one.
            api_key = "unused"
        endpoints[spec.name] = Endpoint(
            model=llm.model, api_base=api_base, api_key=api_key, timeout_s=spec.timeout_s,
            connect_timeout_s=spec.connect_timeout_s,
            # The embedded llama.cpp server finishes a plain completion whose caller has
            # gone, and answers one request at a time: streamed, it stops when they go.
            stream_upstream=llm.api_base == "local",
        )  # fmt: skip
    return endpoints


def build_replica_endpoints(
    registry: ExpertRegistry, endpoints: Mapping[str, Endpoint]
) -> dict[str, list[Endpoint]]:
    """Each expert's ``replicas`` as endpoints: its own endpoint at each replica's address."""
    return {
        spec.name: [replace(endpoints[spec.name], api_base=r.api_base) for r in spec.replicas]
        for spec in registry
        if spec.replicas
    }


def build_runtime(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    encoder: Encoder | None = None,
    llm_client: LLMClient | None = None,
) -> Runtime:
    """Wire the application. Synchronous and slow (models load); call it once per process.

    ``environ`` supplies the API keys named by experts.yaml (defaults to the process
    environment, read here at the entrypoint boundary). ``encoder`` and ``llm_client``
    may be injected by tests or shared by the caller.
    """
    environ = os.environ if environ is None else environ
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = ExpertRegistry.from_yaml(settings.experts_file).with_local_context(settings.local_llm_ctx)
    url = settings.resolved_database_url
    migrate(url)
    db = Database(url, busy_timeout_s=settings.database_busy_timeout_s)
    encoder = encoder or bundled_encoder(settings, serving=True)
    # Repeated texts skip the encoder passes and the gate's scoring (router/memo.py).
    memo = build_memo(settings)
    query_encoder = encoder if memo is None else memo.wrap(encoder)
    router = build_router(settings, registry, encoder, memo)
    # The router's loaded encoder is also the knowledge embedder: one model per process.
    knowledge = build_knowledge(settings, db, registry, encoder)
    pii = PiiGuard()
    # Deferred: requests only write their event to the outbox; `chainer` chains it.
    audit = build_audit_trail(settings, pii, deferred=True)

    local = None
    if any(spec.llm.is_local for spec in registry):
        local = LocalLLMServer(
            settings.local_llm_model or bundled_gguf(),
            port=settings.local_llm_port,
            n_ctx=settings.local_llm_ctx,
            threads=settings.local_llm_threads,
            log_path=settings.data_dir / "local-llm.log",
        )
        local.start(settings.local_llm_startup_s)
    try:
        endpoints = build_endpoints(registry, environ, local.api_base if local else None)
        experts = ExpertService(
            registry, llm_client or LiteLLMClient(), endpoints, outbound=pii,
            replicas=build_replica_endpoints(registry, endpoints),
        )  # fmt: skip
    except Exception:
        if local is not None:
            local.stop()
        raise
    redis = connect_redis(settings)
    capacity = build_capacity(settings, registry, router, redis)
    quota = build_quota(settings, db, redis)
    svc = knowledge.service
    metrics = Metrics(
        router_version=lambda: router.version,
        index_versions=lambda: {d: svc.loaded_version(d) for d in svc.domains},
        breakers=experts.breakers,
        memo=memo,
    )
    pipeline = ChatPipeline(
        db, registry, experts, capacity,
        Limits(settings.max_input_chars, settings.max_messages, settings.request_deadline_s),
        # The base vector for cache, safety and retrieval; a named expert's request gets it
        # batched too while the safety check (which scores every request on it) is on.
        batcher=RouteBatcher(router, query_encoder=query_encoder, embed_named=settings.safety_check),
        recorder=ChatRecorder(db, build_writes(settings, db), audit, registry, experts, metrics),
        pii=pii, knowledge=knowledge.service, passages=settings.knowledge_passages, quota=quota,
        grounding=GroundingChecker(encoder),  # the same loaded model as the router's
        cache=build_response_cache(registry, db, knowledge.service, redis, metrics, encoder),  # backend/cache
        safety=(
            build_input_safety(
                settings.safety_model_dir, query_encoder, registry,
                reader=settings.safety_reader, reader_dir=settings.safety_reader_dir, reader_base=encoder,
            )
            if settings.safety_check
            else None
        ),
    )  # fmt: skip
    return Runtime(
        settings=settings,
        db=db,
        registry=registry,
        encoder=encoder,
        gate=router,
        experts=experts,
        pipeline=pipeline,
        capacity=capacity,
        local_llm=local,
        started_at=int(time.time()),
        audit=audit,
        pii=pii,
        knowledge=knowledge,
        metrics=metrics,
        chainer=AuditChainer(
            db, audit.key, audit.enqueued, anchors=audit.anchors, anchor_interval_s=settings.audit_anchor_interval_s
        ),  # signed chain heads written on a schedule (backend/audit/anchors.py)
        auth=KeyAuthenticator(db, settings.auth_cache_ttl_s),
        quota=quota,
        tasks=build_task_queue(settings),
        redis=redis,
        web_auth=build_web_auth(settings, redis),
    )


def build_writes(settings: Settings, db: Database) -> Writes:
    """How exchanges commit: an ordinary transaction each, or group commit when
    EXPERTGATE_GROUP_COMMIT is set (backend/db/writes.py)."""
    return GroupCommit(db) if settings.group_commit else OwnTransaction(db)


def build_task_queue(settings: Settings) -> TaskQueue | None:
    """The Celery producer when ingest jobs go to workers, else None (they run inline)."""
    if not runs_on_workers(settings.job_runner, settings.redis_url, variable="EXPERTGATE_JOB_RUNNER"):
        return None
    assert settings.redis_url is not None
    return TaskQueue(settings.redis_url)
