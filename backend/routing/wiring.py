"""Building the router from settings, the registry and the artifact store."""

from __future__ import annotations

from pathlib import Path

from backend.db.pointers import ROUTER, SqlPointers
from backend.settings import Settings
from experts.registry import ExpertRegistry
from router.artifacts import ArtifactStore
from router.encoder import Encoder
from router.loading import load_active
from router.policy import DecisionPolicy, PolicyConfig
from router.service import Router


def bundled_encoder(settings: Settings, *, serving: bool) -> Encoder:
    """The shipped MiniLM encoder in the settings' precision; loads it.

    ``serving``: an API process, which runs encodes in a thread pool of its own and so
    limits torch to ``settings.torch_threads`` (router/encoder.py says why). Batch work
    (a Celery worker's index builds, router training and evaluation) keeps torch's
    default and uses every core.
    """
    from router.encoder import SentenceTransformerEncoder, bundled_minilm_path

    return SentenceTransformerEncoder(
        bundled_minilm_path(),
        name="all-MiniLM-L6-v2",
        threads=settings.torch_threads if serving else None,
        precision=settings.encoder_precision,
    )


def router_store(settings: Settings) -> ArtifactStore:
    """The gate versions on (shared) storage; with a database configured its pointer table
    says which version is active (every replica follows it), else the ACTIVE file does."""
    pointers = SqlPointers(settings.resolved_database_url, ROUTER) if settings.database_url else None
    return ArtifactStore(settings.router_dir or Path(settings.data_dir) / "router", pointers=pointers)


def expert_texts(registry: ExpertRegistry) -> dict[str, list[str]]:
    """Per expert, the texts its prototype is built from (description + examples)."""
    return {spec.name: [spec.description, *spec.examples] for spec in registry}


def make_policy(registry: ExpertRegistry, config: PolicyConfig) -> DecisionPolicy:
    return DecisionPolicy(config, {spec.name: spec.capacity for spec in registry})


def build_router(settings: Settings, registry: ExpertRegistry, encoder: Encoder) -> Router:
    """The router serving the active gate version (see router.loading.load_active)."""
    scorer, config = load_active(router_store(settings), encoder, expert_texts(registry))
    return Router(encoder, scorer, make_policy(registry, config))
