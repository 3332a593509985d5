"""Ingestion throughput (chunks/s) against a plain SentenceTransformer.encode loop.

Ingests the three sample corpora into a fresh SQLite database exactly as
`expertgate ingest --samples` does (read, parse, chunk, embed, write SQL, publish the
index versions), and times a plain ``SentenceTransformer.encode`` over the same chunk
texts in the same run, before and after (their mean is the baseline). The ratio says
what ingestion costs on top of the embedding itself. Phases come from the ingestion's
own progress callbacks. Prints a table; writes bench/results/ingest_throughput.json.

    .venv/bin/python -m bench.ingest_throughput [--threads 2] [--batch 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path

from backend.db.session import Database, migrate
from backend.knowledge.samples import SAMPLE_SETS, SAMPLES_DIR
from backend.knowledge.types import FileInput
from backend.knowledge.wiring import build_knowledge
from backend.settings import Settings
from bench.retrieval_corpus import DOMAINS, load_corpus, write_result
from experts.registry import ExpertRegistry
from retrieval.embedding import MINILM_NAME, SentenceTransformerEmbedder, bundled_model_path
from retrieval.sources import FoundFile, discover


def plain_encode(texts: list[str], batch: int) -> float:
    """Seconds for SentenceTransformer.encode over ``texts`` (the baseline)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(bundled_model_path()), device="cpu")
    model.encode(texts[:8], batch_size=batch)  # warm up
    started = time.perf_counter()
    model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - started


async def ingest_samples(data_dir: Path, batch: int) -> dict[str, float]:
    settings = Settings(data_dir=data_dir, bootstrap_admin=False)
    db = Database(settings.resolved_database_url)
    embedder = SentenceTransformerEmbedder(bundled_model_path(), name=MINILM_NAME, batch_size=batch)
    embedder.encode(["warm up"])
    knowledge = build_knowledge(settings, db, ExpertRegistry.from_yaml(settings.experts_file), embedder)
    marks: dict[str, float] = {"read": 0.0, "embed": 0.0}
    chunks = 0
    started = time.perf_counter()
    try:
        for sample in SAMPLE_SETS:
            found = [f for f in discover([sample.folder], [SAMPLES_DIR]) if isinstance(f, FoundFile)]
            inputs = [FileInput(f.source, f.path, frozenset()) for f in found]
            phase_start = time.perf_counter()
            embed_start: float | None = None

            def progress(phase: str, done: int, total: int, _: str, t0: float = phase_start) -> None:
                nonlocal embed_start
                now = time.perf_counter()
                if phase == "read" and done == total:
                    marks["read"] += now - t0
                if phase == "embed" and done == 0:
                    embed_start = now
                if phase == "embed" and done == total and embed_start is not None:
                    marks["embed"] += now - embed_start

            async with db.transaction() as session:
                job_id = await knowledge.jobs.submit_files(session, sample.domain, inputs)
            view = await knowledge.jobs.run(job_id, progress=progress)
            chunks += sum(r.chunks for r in view.results)
    finally:
        await db.dispose()
    total = time.perf_counter() - started
    return {
        "chunks": chunks,
        "total_s": total,
        "read_parse_chunk_s": marks["read"],
        "embed_s": marks["embed"],
        "write_and_publish_s": total - marks["read"] - marks["embed"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    texts = [c.chunk.embed_text for d in DOMAINS for c in load_corpus(d)]
    before = plain_encode(texts, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        migrate(Settings(data_dir=data_dir).resolved_database_url)
        result = asyncio.run(ingest_samples(data_dir, args.batch))
    after = plain_encode(texts, args.batch)
    baseline_s = (before + after) / 2
    assert result["chunks"] == len(texts), (result["chunks"], len(texts))
    ingest_rate = result["chunks"] / result["total_s"]
    plain_rate = len(texts) / baseline_s
    print(f"{len(texts)} chunks, torch threads {args.threads}, batch {args.batch}, load {os.getloadavg()[0]:.1f}")
    print(f"{'':34} {'seconds':>8} {'chunks/s':>9}")
    print(
        f"{'plain SentenceTransformer.encode':34} {baseline_s:8.2f} {plain_rate:9.1f}   (runs: {before:.2f}, {after:.2f})"
    )
    print(f"{'expertgate ingestion (end to end)':34} {result['total_s']:8.2f} {ingest_rate:9.1f}")
    for phase in ("read_parse_chunk_s", "embed_s", "write_and_publish_s"):
        print(f"{'  ' + phase:34} {result[phase]:8.2f}")
    print(f"ingestion / plain encode throughput: {ingest_rate / plain_rate:.2f}")
    path = write_result(
        "ingest_throughput",
        {
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
            "load_average": list(os.getloadavg()),
            "torch_threads": args.threads,
            "batch_size": args.batch,
            "chunks": len(texts),
            "plain_encode_s": {"before": round(before, 3), "after": round(after, 3), "mean": round(baseline_s, 3)},
            "plain_chunks_per_s": round(plain_rate, 2),
            "ingestion": {k: round(v, 3) for k, v in result.items()},
            "ingestion_chunks_per_s": round(ingest_rate, 2),
            "ratio_ingestion_to_plain": round(ingest_rate / plain_rate, 3),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
