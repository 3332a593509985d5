"""Selecting, de-duplicating, checking and writing the public dev set; the command line."""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.public_dev.snapshot import Candidate, Snapshot, SnapshotError, Source
from bench.public_dev.sources import SOURCES
from bench.public_dev.text import (
    DEFAULT_MIRROR,
    DEFAULT_OUT,
    DEFAULT_SEED,
    DOMAINS,
    MAX_SOURCE_SHARE,
    MIN_PER_DOMAIN,
    REPO_ROOT,
    norm_key,
    reject_reason,
)

# --- selection -----------------------------------------------------------------------------


def router_data_keys() -> set[str]:
    """Normalised texts of the repository's own router data, router/data/**/*.jsonl (never in the dev set)."""
    keys: set[str] = set()
    for path in sorted((REPO_ROOT / "router" / "data").rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if isinstance(row.get("text"), str):
                keys.add(norm_key(row["text"]))
            for turn in row.get("history", []) or []:
                if isinstance(turn, dict) and isinstance(turn.get("content"), str):
                    keys.add(norm_key(turn["content"]))
    return keys


def stratified_sample(items: list[Candidate], cap: int, rng: random.Random) -> list[Candidate]:
    """Round-robin over strata (each shuffled by ``rng``) until ``cap`` items are taken."""
    strata: dict[str, list[Candidate]] = defaultdict(list)
    for item in items:
        strata[item.stratum].append(item)
    queues = []
    for name in sorted(strata):
        bucket = sorted(strata[name], key=lambda c: c.text)
        rng.shuffle(bucket)
        queues.append(bucket)
    rng.shuffle(queues)
    taken: list[Candidate] = []
    depth = 0
    while len(taken) < cap and any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue) and len(taken) < cap:
                taken.append(queue[depth])
        depth += 1
    return taken


@dataclass
class SourceReport:
    source: Source
    loaded: int = 0
    eligible: int = 0
    kept: int = 0
    rejected: Counter[str] | None = None


def build(mirror: Path, seed: int) -> tuple[list[dict[str, str]], list[SourceReport]]:
    reports: list[SourceReport] = []
    eligible: dict[str, list[Candidate]] = {}
    domains_of_key: dict[str, set[str]] = defaultdict(set)
    excluded = router_data_keys()
    for source in SOURCES:
        snap = Snapshot(mirror, source.repo, source.commit)
        report = SourceReport(source, rejected=Counter())
        assert report.rejected is not None
        candidates = source.load(snap)
        report.loaded = len(candidates)
        seen: set[str] = set()
        keep: list[Candidate] = []
        for cand in candidates:
            reason = reject_reason(cand.text, names=source.names)
            if reason is None and "  " in cand.raw.strip():
                reason = "personal_data"  # ACID blanks removed numbers/names to double spaces
            if reason is None and source.cross_domain is not None and source.cross_domain.search(cand.text):
                reason = "other_domain_vocabulary"
            key = norm_key(cand.text)
            if reason is None and key in seen:
                reason = "duplicate"
            if reason is not None:
                report.rejected[reason] += 1
                continue
            seen.add(key)
            keep.append(cand)
            domains_of_key[key].add(source.domain)
        eligible[source.key] = keep
        reports.append(report)

    rows: list[dict[str, str]] = []
    taken_keys: set[str] = set()
    for source, report in zip(SOURCES, reports, strict=True):
        assert report.rejected is not None
        pool = []
        for cand in eligible[source.key]:
            key = norm_key(cand.text)
            if len(domains_of_key[key]) > 1:
                report.rejected["ambiguous_across_domains"] += 1
            elif key in taken_keys:
                report.rejected["duplicate_across_sources"] += 1
            else:
                pool.append(cand)
        report.eligible = len(pool)
        rng = random.Random(f"{seed}:{source.key}")
        chosen = []
        for cand in stratified_sample(pool, source.cap, rng):
            # Dropped after sampling, so that new training rows remove dev rows, not reshuffle them.
            if norm_key(cand.text) in excluded:
                report.rejected["in_router_data"] += 1
            else:
                chosen.append(cand)
        for cand in chosen:
            taken_keys.add(norm_key(cand.text))
            rows.append({"text": cand.text, "domain": source.domain, "source": source.key})
        report.kept = len(chosen)
    rows.sort(key=lambda r: (r["domain"], r["source"]))
    return rows, reports


def inside_repo(path: Path) -> bool:
    resolved = path.expanduser().resolve()
    root = REPO_ROOT.resolve()
    return resolved == root or root in resolved.parents


def write_jsonl(rows: Iterable[dict[str, str]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(out)


def print_report(rows: list[dict[str, str]], reports: list[SourceReport], out: Path) -> None:
    per_domain = Counter(r["domain"] for r in rows)
    per_source = Counter(r["source"] for r in rows)
    print(f"wrote {len(rows)} rows to {out}")
    print("\nper domain:")
    for domain in DOMAINS:
        n = per_domain[domain]
        sources = [rep for rep in reports if rep.source.domain == domain]
        top = max((per_source[rep.source.key] for rep in sources), default=0)
        share = top / n if n else 0.0
        flags = []
        if n < MIN_PER_DOMAIN:
            flags.append(f"below {MIN_PER_DOMAIN}")
        if share > MAX_SOURCE_SHARE:
            flags.append(f"largest source {share:.0%} > {MAX_SOURCE_SHARE:.0%}")
        note = f"  [warning: {'; '.join(flags)}]" if flags else ""
        print(f"  {domain:<8} {n:>4}  (largest source {share:.0%}){note}")
    print("\nper source:")
    print(f"  {'source':<19} {'domain':<8} {'loaded':>7} {'eligible':>8} {'kept':>5}  commit        rejected")
    for rep in reports:
        src = rep.source
        rejected = ", ".join(f"{k}={v}" for k, v in sorted((rep.rejected or Counter()).items()))
        print(
            f"  {src.key:<19} {src.domain:<8} {rep.loaded:>7} {rep.eligible:>8} {rep.kept:>5}  "
            f"{src.commit[:12]}  {rejected}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="root of the git snapshots")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output JSONL (outside the repository)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if inside_repo(args.out):
        print(f"refusing to write {args.out}: it is inside the repository {REPO_ROOT}", file=sys.stderr)
        return 2
    try:
        rows, reports = build(args.mirror, args.seed)
    except SnapshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_jsonl(rows, args.out)
    print_report(rows, reports, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
