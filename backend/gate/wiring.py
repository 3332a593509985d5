"""Building the router from settings, the registry and the artifact store."""

from __future__ import annotations

from pathlib import Path

from backend.db.pointers import ROUTER, SqlPointers
from backend.settings import Settings
from experts.registry import ExpertRegistry
from router.artifacts import ArtifactStore
from router.encoder import Encoder
from router.loading import load_active
from router.memo import TextMemo
from router.onnx_encoder import OnnxPrecision
from router.policy import DecisionPolicy, PolicyConfig
from router.service import Router

# Both runtimes serve the same model under its own name: gates and indexes made with one
# are served by the other (router/onnx_encoder.py).
ENCODER_NAME = "all-MiniLM-L6-v2"
ONNX_PRECISION: dict[str, OnnxPrecision] = {"onnx-int8": "int8", "onnx-float32": "float32"}


def base_runtime(settings: Settings, native_bfloat16: bool) -> str:
    """The runtime that serves the base model: ``encoder_runtime`` as set, or for ``auto``
    torch where the CPU multiplies bfloat16 natively (or ``encoder_precision`` is set:
    precision is a torch setting) and ONNX float32 elsewhere, which gives torch float32's
    vectors for less CPU (bench/results/encoder_runtime.json, docs/load.md)."""
    if settings.encoder_runtime != "auto":
        return settings.encoder_runtime
    return "torch" if native_bfloat16 or settings.encoder_precision != "auto" else "onnx-float32"


def bundled_encoder(settings: Settings, *, serving: bool) -> Encoder:
    """The shipped MiniLM encoder on the settings' runtimes; loads it.

    ``encoder_runtime`` runs the base model, ``router_encoder_runtime`` the routing-tuned
    copies a gate asks for (router/onnx_encoder.py). ``serving``: an API process, which
    runs encodes in a thread pool of its own and so limits each runtime to
    ``settings.torch_threads`` threads (router/encoder.py says why). Batch work (a Celery
    worker's index builds, router training and evaluation) keeps the runtimes' defaults.

    An ONNX runtime needs the artifacts `make setup` builds (router/onnx_export.py);
    without them this raises OnnxArtifactMissing, naming the command, rather than
    quietly serving another runtime.
    """
    from router.encoder import SentenceTransformerEncoder, bundled_minilm_path, native_bfloat16
    from router.onnx_encoder import OnnxEncoder, TunedOnOnnx
    from router.onnx_export import DEFAULT_DIR

    threads = settings.torch_threads if serving else None
    artifacts = settings.encoder_onnx_dir or DEFAULT_DIR
    runtime = base_runtime(settings, native_bfloat16())
    base: SentenceTransformerEncoder | OnnxEncoder
    if runtime == "torch":
        base = SentenceTransformerEncoder(
            bundled_minilm_path(), name=ENCODER_NAME, threads=threads, precision=settings.encoder_precision
        )
    else:
        base = OnnxEncoder(
            bundled_minilm_path(), ENCODER_NAME, artifacts=artifacts, precision=ONNX_PRECISION[runtime], threads=threads
        )
    tuned = settings.router_encoder_runtime
    if tuned == "base" or tuned == runtime:
        return base
    return TunedOnOnnx(base, artifacts=artifacts, precision=ONNX_PRECISION[tuned], threads=threads)


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


def build_memo(settings: Settings) -> TextMemo | None:
    """The process's memo of recent texts' vectors and gate scores (router/memo.py);
    None when off."""
    return TextMemo(settings.text_memo_entries) if settings.text_memo_entries else None


def build_router(
    settings: Settings, registry: ExpertRegistry, encoder: Encoder, memo: TextMemo | None = None
) -> Router:
    """The router serving the active gate version (see router.loading.load_active)."""
    scorer, config = load_active(router_store(settings), encoder, expert_texts(registry))
    return Router(encoder, scorer, make_policy(registry, config), memo=memo)
