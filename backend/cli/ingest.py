"""`expertgate ingest`: parse arguments, run ingestion jobs inline, print the outcome.

    expertgate ingest --domain legal [--groups g1,g2] PATH...   files and folders
    expertgate ingest --samples                                  the shipped sample sets
    expertgate ingest --delete [--domain legal] PATH...          remove documents (a folder:
                                                                 everything under it)
    expertgate ingest --rebuild [--domain legal]                 rebuild indexes from SQL (and
                                                                 safety-scan unscored chunks)
    expertgate ingest --release ID                               release a document from
                                                                 safety quarantine (audited)

A progress bar goes to stderr (when it is a terminal); one line per file that was
not unchanged and a summary per domain go to stdout. Exit status 1 when a file failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from backend.cli.context import Access, open_command
from backend.knowledge.samples import SAMPLE_SETS, SAMPLES_DIR
from backend.knowledge.types import FileInput, FileResult, FileStatus, JobView
from backend.knowledge.wiring import Knowledge, build_knowledge
from backend.settings import Settings
from experts.registry import ExpertRegistry
from retrieval.embedding import bundled_embedder
from retrieval.sources import FoundFile, RefusedPath, discover, source_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders")
    parser.add_argument("--domain", help="the knowledge domain (an expert's index: code, legal, ...)")
    parser.add_argument("--groups", default="", help="comma-separated groups allowed to see these documents")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--samples", action="store_true", help="ingest the shipped sample corpora")
    mode.add_argument("--delete", action="store_true", help="delete the documents at PATH...")
    mode.add_argument("--rebuild", action="store_true", help="rebuild indexes from the database")
    mode.add_argument(
        "--release", type=int, metavar="ID", help="release a document the safety scan quarantined (by its id)"
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    """The command's entry point (synchronous; builds what it needs, nothing more)."""
    if not (args.samples or args.rebuild or args.release is not None) and not args.paths:
        print("expertgate ingest: give at least one PATH (or --samples / --rebuild)", file=sys.stderr)
        return 2
    if not (args.samples or args.delete or args.rebuild or args.release is not None) and not args.domain:
        print("expertgate ingest: --domain is required to ingest files", file=sys.stderr)
        return 2
    registry = ExpertRegistry.from_yaml(settings.experts_file)
    # The model loads only when something must be embedded: re-runs on unchanged files
    # (make run) stay quick.
    embedder = bundled_embedder(lazy=True)

    async def main() -> int:
        async with open_command(settings, Access.WRITE) as cmd:
            knowledge = build_knowledge(settings, cmd.db, registry, embedder)
            if args.domain:
                knowledge.jobs.check_domain(args.domain)
            if args.rebuild:
                return await _rebuild(knowledge, args.domain)
            if args.release is not None:
                view, version = await knowledge.jobs.release_document(cmd.actor, cmd.trail, args.release)
                print(f"released {view.domain}: {view.source} (document {view.id}) · index {version or '-'}")
                return 0
            if args.delete:
                return await _delete(knowledge, args.paths, args.domain)
            if args.samples:
                return await _samples(knowledge)
            groups = frozenset(g.strip() for g in args.groups.split(",") if g.strip())
            found = discover(args.paths, knowledge.roots)
            return await _ingest(knowledge, args.domain, found, lambda _: groups)

    return asyncio.run(main())


async def _samples(knowledge: Knowledge) -> int:
    status = 0
    for sample in SAMPLE_SETS:
        if sample.domain not in knowledge.service.domains:
            continue
        restricted = f"{sample.domain}/restricted/"
        found = discover([sample.folder], [SAMPLES_DIR])

        def groups_for(source: str, prefix: str = restricted, group: str = sample.restricted_group) -> frozenset[str]:
            return frozenset({group}) if source.startswith(prefix) else frozenset()

        status = max(status, await _ingest(knowledge, sample.domain, found, groups_for))
    return status


async def _ingest(
    knowledge: Knowledge,
    domain: str,
    found: Sequence[FoundFile | RefusedPath],
    groups_for: Callable[[str], frozenset[str]],
) -> int:
    inputs = [FileInput(f.source, f.path, groups_for(f.source)) for f in found if isinstance(f, FoundFile)]
    refused = [
        FileResult(
            r.source,
            FileStatus.SKIPPED if r.skipped else FileStatus.FAILED,
            error_code=r.error.code,
            message=r.error.message,
        )
        for r in found
        if isinstance(r, RefusedPath)
    ]
    async with knowledge.db.transaction() as session:
        job_id = await knowledge.jobs.submit_files(session, domain, inputs, refused=refused)
    bar = ProgressBar(sys.stderr, label=domain)
    try:
        view = await knowledge.jobs.run(job_id, progress=bar)
    finally:
        bar.close()
    _print_job(view)
    return 1 if any(r.status is FileStatus.FAILED for r in view.results) else 0


async def _delete(knowledge: Knowledge, paths: Sequence[Path], domain: str | None) -> int:
    sources: list[str] = []
    failed = 0
    for path in paths:
        name = source_name(path, knowledge.roots)
        if name is None:
            print(f"  FAILED     {path}: outside_allowed_roots", file=sys.stdout)
            failed += 1
            continue
        folder = path.is_dir() or str(path).endswith("/")
        sources.append(name.rstrip("/") + "/" if folder else name)
    results = await knowledge.jobs.delete_sources(sources, domain=domain) if sources else []
    for result_domain, result in results:
        _print_result(result, prefix=f"{result_domain}: " if result_domain else "")
        failed += result.status is FileStatus.FAILED
    deleted = sum(r.status is FileStatus.DELETED for _, r in results)
    print(f"deleted {deleted} document(s); {failed} not found or refused")
    return 1 if failed else 0


async def _rebuild(knowledge: Knowledge, domain: str | None) -> int:
    for name in [domain] if domain else knowledge.service.domains:
        started = time.perf_counter()
        version = await knowledge.service.publish(name)
        print(f"{name}: rebuilt index {version} in {time.perf_counter() - started:.1f}s")
    return 0


def _print_job(view: JobView) -> None:
    for result in view.results:
        if result.status is not FileStatus.UNCHANGED:
            _print_result(result)
    counts = {s: sum(r.status is s for r in view.results) for s in FileStatus}
    parts = [f"{n} {s}" for s, n in counts.items() if n]
    chunks = sum(r.chunks for r in view.results if r.status is not FileStatus.FAILED)
    print(
        f"{view.domain}: {', '.join(parts) or 'no files'} · {chunks} chunks · "
        f"index {view.index_version or '-'} · job {view.id}"
    )


def _print_result(result: FileResult, prefix: str = "") -> None:
    label = "FAILED" if result.status is FileStatus.FAILED else str(result.status)
    detail = f"{result.chunks} chunks" if result.chunks else ""
    if result.error_code:
        detail = f"{result.error_code}: {result.message}"
    elif result.message:
        detail = result.message
    print(f"  {label:10} {prefix}{result.source}  {detail}".rstrip())


class ProgressBar:
    """A one-line progress bar on a terminal stream; silent when it is not a terminal."""

    WIDTH = 28

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        self._tty = stream.isatty()
        self._last = 0.0
        self._drawn = False

    def __call__(self, phase: str, done: int, total: int, detail: str) -> None:
        if not self._tty or total <= 0:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        filled = round(self.WIDTH * done / total)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        unit = "files" if phase == "read" else "chunks"
        text = f"\r{self._label:8} {phase:5} [{bar}] {done}/{total} {unit} {detail[-40:]}"
        self._stream.write(text.ljust(110)[:110])
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\r" + " " * 110 + "\r")
            self._stream.flush()
