"""Building the knowledge services from settings (called by the runtime and the CLI)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from backend.db.pointers import INDEX, SqlPointers
from backend.db.session import Database
from backend.knowledge.indexer import IndexPublisher
from backend.knowledge.ingest import IngestLimits
from backend.knowledge.jobs import IngestJobs
from backend.knowledge.safety import DocumentScanner, build_document_scanner
from backend.knowledge.samples import SAMPLES_DIR
from backend.knowledge.service import KnowledgeService
from backend.settings import Settings, SettingsError
from experts.registry import ExpertRegistry
from retrieval.embedding import Embedder
from retrieval.index import IndexConfig
from retrieval.store import IndexStore


@dataclass(frozen=True, slots=True)
class Knowledge:
    db: Database
    service: KnowledgeService
    jobs: IngestJobs
    publisher: IndexPublisher
    roots: tuple[Path, ...]
    scanner: DocumentScanner | None = None  # None: documents are not safety-scanned


def index_domains(registry: ExpertRegistry) -> list[str]:
    """The knowledge domains: the ``index`` of every expert that has one, in file order."""
    return list(dict.fromkeys(spec.index for spec in registry if spec.index))


def ingest_roots(settings: Settings) -> tuple[Path, ...]:
    """Folders the CLI may read: configured ones, else the working directory + samples."""
    roots = settings.ingest_roots or (Path.cwd(), SAMPLES_DIR)
    return tuple(root.resolve() for root in roots)


def build_knowledge(settings: Settings, db: Database, registry: ExpertRegistry, embedder: Embedder) -> Knowledge:
    # bm25s logs every index build (at DEBUG, with its own handler) and faiss logs its
    # CPU-feature probing at INFO: neither says anything an operator needs.
    for noisy in ("bm25s", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # With a database configured, its pointer table (not the CURRENT files) names the
    # live version of each index, so replicas on shared storage follow one source.
    pointers = SqlPointers(settings.resolved_database_url, INDEX) if settings.database_url else None
    store = IndexStore(settings.data_dir / "indexes", pointers=pointers)
    scanner = document_scanner(settings, registry, embedder)
    config = IndexConfig(hnsw_threshold=settings.index_hnsw_threshold)
    publisher = IndexPublisher(db, store, embedder, config, scanner)
    service = KnowledgeService(
        db, publisher, embedder, index_domains(registry), reload_s=settings.knowledge_reload_s, scanner=scanner
    )
    jobs = IngestJobs(
        db,
        service,
        embedder,
        IngestLimits(max_file_bytes=settings.ingest_max_file_bytes),
        settings.data_dir / "uploads",
        scanner=scanner,
    )
    return Knowledge(
        db=db, service=service, jobs=jobs, publisher=publisher, roots=ingest_roots(settings), scanner=scanner
    )


def document_scanner(settings: Settings, registry: ExpertRegistry, embedder: Embedder) -> DocumentScanner | None:
    """The documents' safety scanner (None: the safety check is off, or the embedder is
    not the model's encoder). Raises SettingsError for a policy naming an unknown
    domain, ArtifactError when the safety model cannot be loaded."""
    unknown = sorted(set(settings.safety_documents_domains) - set(index_domains(registry)))
    if unknown:
        raise SettingsError(
            f"EXPERTGATE_SAFETY_DOCUMENTS_DOMAINS names unknown knowledge domains: {', '.join(unknown)}"
        )
    if not settings.safety_check:
        return None
    return build_document_scanner(
        settings.safety_model_dir,
        embedder.name,
        default=settings.safety_documents,
        domains=settings.safety_documents_domains,
        threshold=settings.safety_documents_threshold,
    )
