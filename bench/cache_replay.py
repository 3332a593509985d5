"""Response cache replay benchmark (issue 24, docs/cache.md).

Through the real pipeline (the app over ASGI: guard, the real router and encoder,
quota-free admission, retrieval, the response cache, the audit event and conversation
on SQLite), with the fake OpenAI server (tests/fakes/openai_server.py) as every expert's
LLM. The questions are bench/data/cache (2,004 written for this project, in paraphrase
groups; near-miss pairs that must never share an answer).

1. **Vectors**: every question is routed once; its expert and its vector
   (the base encoder's, what the cache compares) are kept.
2. **Calibration**: per expert, the lowest threshold at which at most ``--max-false`` of
   the near-miss pairs routed to that expert would match (pooled over all families):
   the threshold shipped in experts.yaml. Two-fold cross-validation tells how well that
   rule generalises: the families split in two (alternately by name), the threshold
   chosen on one half, its false-match rate and paraphrase recall measured on the other.
3. **Replay**: ``--requests`` questions drawn with a Zipf law over the paraphrase groups
   (``--zipf``), a wording drawn uniformly within the group: the share of repeats (the
   group asked before) and of exact repeats is reported next to the hit rate; a hit
   whose source request asked another group is a wrong hit. Server time of each request
   (in process, no network: the app's own time from its ASGI call to the response's last
   byte, ``ServerClock``; the in-process client's time beside it) for hits and misses,
   exact and semantic hits apart; the same sequence again with
   ``Cache-Control: no-cache`` on every request (the cache not read) for comparison.
4. **Near-miss pairs**: on a fresh app, for ``--pairs`` pairs of each half: ask A, then
   B; B answered with A's answer (or any other group's) is a wrong hit.

Writes bench/results/cache.json. Run: ``.venv/bin/python -m bench.cache_replay``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import numpy as np
import yaml
from sqlalchemy import select

from backend.app import create_app
from backend.chat.types import Question
from backend.db.models import AuditEvent
from backend.identity.service import IdentityService, principal_of
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder, SentenceTransformerEncoder, bundled_minilm_path
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "cache"
OUT = ROOT / "bench" / "results" / "cache.json"
GRID = [round(0.80 + 0.0025 * i, 4) for i in range(81)]  # 0.80 .. 1.00


def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    questions = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines()]
    pairs = [json.loads(line) for line in (DATA / "near_miss.jsonl").read_text().splitlines()]
    return questions, pairs


def experts_yaml(path: Path, api_base: str, thresholds: dict[str, float] | None) -> Path:
    """The shipped experts.yaml with every expert on the fake server, capacity high
    (the benchmark measures the pipeline, not a queue), the cache on and, if given,
    these thresholds (else the shipped ones)."""
    raw = yaml.safe_load((ROOT / "experts" / "experts.yaml").read_text())
    raw["defaults"]["llm"] = {"model": "openai/fake-model", "api_base": api_base}
    raw["defaults"]["retries"] = 0
    for name, body in raw["experts"].items():
        body["capacity"] = 256
        body["cache"] = {**raw["defaults"].get("cache", {}), **body.get("cache", {}), "enabled": True}
        if thresholds and name in thresholds:
            body["cache"]["threshold"] = thresholds[name]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class ServerClock:
    """The app's own time per request: from the ASGI call to the last byte of the
    response handed to the server (what a server's access log would time), without
    the in-process client's work of building the request and reading the response."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self.last_ms = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.last_ms = (time.perf_counter() - started) * 1000

        await self._app(scope, receive, timed_send)


class App:
    """A fresh runtime and client (own data dir: nothing cached)."""

    def __init__(self, work: Path, llm: FakeOpenAI, encoder: Encoder, thresholds: dict[str, float] | None) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.settings = Settings(
            data_dir=work / "data", experts_file=experts_yaml(work / "experts.yaml", llm.api_base, thresholds),
            bootstrap_admin=False,
        )  # fmt: skip
        self.runtime: Runtime = build_runtime(self.settings, encoder=encoder, environ={})
        self.client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> App:
        async with self.runtime.db.transaction() as session:
            identity = IdentityService(session)
            user = await identity.ensure_user("bench@example.com")
            key = (await identity.create_key(user)).secret
        app = create_app(self.settings, self.runtime)
        app.state.runtime = self.runtime
        self.clock = ServerClock(app)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.clock), base_url="http://bench", headers={"authorization": f"Bearer {key}"},
            timeout=60,
        )  # fmt: skip
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.client is not None
        await self.client.aclose()
        await self.runtime.close()

    async def ask(self, text: str, *, no_cache: bool = False) -> tuple[dict[str, Any], float]:
        assert self.client is not None
        headers = {"cache-control": "no-cache"} if no_cache else {}
        body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
        started = time.perf_counter()
        r = await self.client.post("/v1/chat/completions", json=body, headers=headers)
        client_ms = (time.perf_counter() - started) * 1000
        r.raise_for_status()
        return {**r.json()["expertgate"], "client_ms": client_ms}, self.clock.last_ms


async def vectors(
    app: App, questions: list[dict[str, Any]], encoder: Encoder
) -> tuple[dict[str, str], dict[str, np.ndarray], str]:
    """Each question's routed expert (stage 3 of the pipeline) and the vector the cache
    compares: the base encoder's (backend/cache/service.py)."""
    pipeline = app.runtime.pipeline
    async with app.runtime.db.transaction() as session:
        principal = principal_of(await IdentityService(session).ensure_user("bench@example.com"), "api")
    experts: dict[str, str] = {}
    for start in range(0, len(questions), 64):  # concurrent: the route batcher encodes them together
        chunk = questions[start : start + 64]
        routed_all = await asyncio.gather(
            *(pipeline.route(pipeline.guard(Question(principal, "auto", [("user", q["text"])]))) for q in chunk)
        )
        for q, routed in zip(chunk, routed_all, strict=True):
            experts[q["id"]] = routed.decision.expert
    rows = encoder.encode([q["text"] for q in questions])
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return experts, {q["id"]: rows[i] for i, q in enumerate(questions)}, encoder.name


def calibrate(
    questions: list[dict[str, Any]], pairs: list[dict[str, Any]], experts: dict[str, str],
    vecs: dict[str, np.ndarray], max_false: float,
) -> dict[str, Any]:  # fmt: skip
    families = sorted({q["family"] for q in questions})
    half = {f: ("calibration" if i % 2 == 0 else "held_out") for i, f in enumerate(families)}
    by_intent: dict[str, list[str]] = defaultdict(list)
    for q in questions:
        by_intent[q["intent"]].append(q["id"])
    fam = {q["id"]: q["family"] for q in questions}

    def sims(kind: str, part: str, expert: str) -> np.ndarray:
        out = []
        if kind == "near":
            for p in pairs:
                a, b = p["a"], p["b"]
                if half[p["family"]] == part and experts[a] == experts[b] == expert:
                    out.append(float(vecs[a] @ vecs[b]))
        else:
            for ids in by_intent.values():
                if half[fam[ids[0]]] != part:
                    continue
                for i, a in enumerate(ids):
                    for b in ids[i + 1 :]:
                        if experts[a] == experts[b] == expert:
                            out.append(float(vecs[a] @ vecs[b]))
        return np.array(out)

    def rate(a: np.ndarray, t: float) -> float | None:
        return None if len(a) == 0 else round(float(np.mean(a >= t)), 4)

    def lowest(near: np.ndarray) -> float:
        return next((t for t in GRID if len(near) == 0 or float(np.mean(near >= t)) <= max_false), GRID[-1])

    result: dict[str, Any] = {"split": half, "max_false": max_false, "experts": {}}
    for expert in sorted(set(experts.values())):
        near = {part: sims("near", part, expert) for part in ("calibration", "held_out")}
        para = {part: sims("para", part, expert) for part in ("calibration", "held_out")}
        pooled_near = np.concatenate([near["calibration"], near["held_out"]])
        pooled_para = np.concatenate([para["calibration"], para["held_out"]])
        chosen = lowest(pooled_near)
        folds = []
        for fit, test in (("calibration", "held_out"), ("held_out", "calibration")):
            t = lowest(near[fit])
            folds.append({"fit_on": fit, "threshold": t, "near_miss_false_match": rate(near[test], t),
                          "paraphrase_recall": rate(para[test], t), "near_miss_pairs": len(near[test])})  # fmt: skip
        result["experts"][expert] = {
            "threshold": chosen,
            "near_miss_pairs": len(pooled_near),
            "paraphrase_pairs": len(pooled_para),
            "near_miss_false_match": rate(pooled_near, chosen),
            "paraphrase_recall": rate(pooled_para, chosen),
            "cross_validated": folds,
            "curve": [{"t": t, "false_match": rate(pooled_near, t), "recall": rate(pooled_para, t)} for t in GRID[::4]],
        }
    return result


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(values, q)), 2)


def summary(ms: list[float]) -> dict[str, Any]:
    return {"n": len(ms), "p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99),
            "mean": round(statistics.fmean(ms), 2) if ms else None}  # fmt: skip


async def replay(app: App, sequence: list[dict[str, Any]], *, no_cache: bool) -> dict[str, Any]:
    intent_of: dict[str, str] = {}
    text_of: dict[str, str] = {}
    seen_intents: set[str] = set()
    seen_texts: set[str] = set()
    rows = []
    for q in sequence:
        info, ms = await app.ask(q["text"], no_cache=no_cache)
        intent_of[info["request_id"]] = q["intent"]
        text_of[info["request_id"]] = q["text"]
        cache = info.get("cache") or {}
        source = cache.get("source_request_id")
        rows.append({
            "request_id": info["request_id"], "intent": q["intent"], "repeat": q["intent"] in seen_intents, "exact_repeat": q["text"] in seen_texts,
            "status": cache.get("status"), "match": cache.get("match"), "ms": ms, "client_ms": info["client_ms"],
            "cache_ms": cache.get("ms"),
            "wrong": source is not None and intent_of.get(source) != q["intent"], "expert": info["expert"],
            "text": q["text"], "source_text": text_of.get(source) if source is not None else None,
            "tokens_saved": cache.get("tokens_saved") or 0,
        })  # fmt: skip
        seen_intents.add(q["intent"])
        seen_texts.add(q["text"])
    stages = await audited_latency(app)
    for r in rows:
        r["stages"] = stages.get(r["request_id"], {})
    hits = [r for r in rows if r["status"] == "hit"]
    misses = [r for r in rows if r["status"] != "hit"]
    n = len(rows)
    return {
        "requests": n,
        "share_of_repeats": round(sum(r["repeat"] for r in rows) / n, 4),
        "share_of_exact_repeats": round(sum(r["exact_repeat"] for r in rows) / n, 4),
        "hit_rate": round(len(hits) / n, 4),
        "hits_exact": sum(r["match"] == "exact" for r in hits),
        "hits_semantic": sum(r["match"] == "semantic" for r in hits),
        "hit_rate_of_repeats": round(len(hits) / max(1, sum(r["repeat"] for r in rows)), 4),
        "wrong_hits": sum(r["wrong"] for r in hits),
        "wrong_hit_rate_of_hits": round(sum(r["wrong"] for r in hits) / max(1, len(hits)), 4),
        # What was asked and whose answer it got: the cases to read before trusting a threshold.
        "wrong_hit_examples": [
            {"expert": r["expert"], "match": r["match"], "asked": r["text"], "answered_from": r["source_text"]}
            for r in hits
            if r["wrong"]
        ],
        "statuses": dict(Counter(str(r["status"]) for r in rows)),
        "tokens_saved": sum(r["tokens_saved"] for r in hits),
        "server_ms_hit": summary([r["ms"] for r in hits]),
        # An exact hit's text was seen before, so the text memo (router/memo.py) spares
        # it the encoder; a semantic hit is a new text and pays for routing.
        "server_ms_hit_exact": summary([r["ms"] for r in hits if r["match"] == "exact"]),
        "server_ms_hit_semantic": summary([r["ms"] for r in hits if r["match"] == "semantic"]),
        "server_ms_miss": summary([r["ms"] for r in misses]),
        "server_ms_all": summary([r["ms"] for r in rows]),
        # The same requests timed by the in-process client (its own work included).
        "client_ms_hit": summary([r["client_ms"] for r in hits]),
        "client_ms_miss": summary([r["client_ms"] for r in misses]),
        "lookup_ms_hit": summary([r["cache_ms"] for r in hits if r["cache_ms"] is not None]),
        # The pipeline's own clock (audit event latency_ms): guard + route, and the whole
        # request up to its record; a hit's time after routing is lookup + record.
        "pipeline_ms_hit": {k: summary([r["stages"][k] for r in hits if k in r["stages"]]) for k in ("route", "total")},
        "pipeline_ms_miss": {
            k: summary([r["stages"][k] for r in misses if k in r["stages"]]) for k in ("route", "generate", "total")
        },
        "pipeline_ms_hit_after_route": summary(
            [
                r["stages"]["total"] - r["stages"].get("route", 0) - r["stages"].get("guard", 0)
                for r in hits
                if "total" in r["stages"]
            ]
        ),
        "lookup_ms_miss": summary([r["cache_ms"] for r in misses if r["cache_ms"] is not None]),
        "per_expert": {
            e: {"requests": sum(r["expert"] == e for r in rows), "hits": sum(r["expert"] == e for r in hits)}
            for e in sorted({r["expert"] for r in rows})
        },
    }


async def audited_latency(app: App) -> dict[str, dict[str, float]]:
    """Each request's latency_ms as its audit event recorded it (the pipeline's clock)."""
    await app.runtime.chainer.drain()
    async with app.runtime.db.session() as session:
        rows = (await session.execute(select(AuditEvent.request_id, AuditEvent.payload))).all()
    return {rid: dict((payload or {}).get("latency_ms") or {}) for rid, payload in rows if rid}


async def near_miss(app: App, questions: list[dict[str, Any]], pairs: list[dict[str, Any]], split: dict[str, str],
                    n: int, rng: random.Random) -> dict[str, Any]:  # fmt: skip
    text = {q["id"]: q["text"] for q in questions}
    intent = {q["id"]: q["intent"] for q in questions}
    intent_of: dict[str, str] = {}
    out: dict[str, Any] = {}
    for part in ("calibration", "held_out"):
        chosen = rng.sample([p for p in pairs if split[p["family"]] == part], n)
        wrong = same_expert = 0
        for p in chosen:
            a_info, _ = await app.ask(text[p["a"]])
            intent_of[a_info["request_id"]] = intent[p["a"]]
            b_info, _ = await app.ask(text[p["b"]])
            intent_of[b_info["request_id"]] = intent[p["b"]]
            same_expert += a_info["expert"] == b_info["expert"]
            source = (b_info.get("cache") or {}).get("source_request_id")
            wrong += source is not None and intent_of.get(source) != intent[p["b"]]
        out[part] = {"pairs": n, "same_expert": same_expert, "wrong_hits": wrong, "wrong_hit_rate": round(wrong / n, 4)}
    return out


def zipf_sequence(questions: list[dict[str, Any]], n: int, s: float, rng: random.Random) -> list[dict[str, Any]]:
    by_intent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for q in questions:
        by_intent[q["intent"]].append(q)
    intents = sorted(by_intent)
    rng.shuffle(intents)
    weights = [1 / (rank + 1) ** s for rank in range(len(intents))]
    return [rng.choice(by_intent[i]) for i in rng.choices(intents, weights=weights, k=n)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    questions, pairs = load()
    rng = random.Random(args.seed)
    encoder = SentenceTransformerEncoder(bundled_minilm_path(), name="all-MiniLM-L6-v2")
    llm = FakeOpenAI().start()
    work = Path(tempfile.mkdtemp(prefix="eg-cache-bench-"))
    try:
        async with App(work / "vectors", llm, encoder, None) as app:
            started = time.perf_counter()
            experts, vecs, model = await vectors(app, questions, encoder)
            route_s = time.perf_counter() - started
        calibration = calibrate(questions, pairs, experts, vecs, args.max_false)
        thresholds = {e: c["threshold"] for e, c in calibration["experts"].items()}
        if args.shipped_thresholds:
            thresholds = {}
        sequence = zipf_sequence(questions, args.requests, args.zipf, rng)
        async with App(work / "replay", llm, encoder, thresholds or None) as app:
            used = {s.name: s.cache.threshold for s in app.runtime.registry}
            memo_entries = app.settings.text_memo_entries
            safety_check = app.settings.safety_check
            with_cache = await replay(app, sequence, no_cache=False)
        async with App(work / "no-cache", llm, encoder, thresholds or None) as app:
            without = await replay(app, sequence, no_cache=True)
        async with App(work / "near-miss", llm, encoder, thresholds or None) as app:
            pairs_result = await near_miss(app, questions, pairs, calibration["split"], args.pairs, rng)
    finally:
        llm.stop()
    return {
        "what": "response cache replay through the real pipeline (fake OpenAI server as the LLM, real encoder)",
        "data": {"questions": len(questions), "paraphrase_groups": len({q["intent"] for q in questions}),
                 "near_miss_pairs": len(pairs), "families": len({q["family"] for q in questions})},
        "encoder": model,
        "routing_s_per_question": round(route_s / len(questions), 4),
        "calibration": {k: v for k, v in calibration.items() if k != "split"},
        "thresholds_used": used,
        "replay": {"zipf": args.zipf, "seed": args.seed, "with_cache": with_cache, "no_cache_header": without},
        "near_miss": pairs_result,
        "conditions": {"cpu_count": os.cpu_count(), "store": "in-process (MemoryStore)", "db": "SQLite",
                       "text_memo_entries": memo_entries, "safety_check": safety_check,
                       "knowledge": "no documents ingested (answers cite nothing; see docs/cache.md)",
                       "llm": "tests/fakes/openai_server.py on loopback, no generation delay"},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=500, help="near-miss pairs per half")
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument(
        "--max-false", type=float, default=0.0025, help="near-miss false-match budget (half the 0.5%% target)"
    )
    parser.add_argument("--shipped-thresholds", action="store_true", help="replay with experts.yaml's thresholds")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("thresholds_used", "near_miss")}, indent=1))
    print(json.dumps({k: v for k, v in result["replay"]["with_cache"].items() if k != "per_expert"}, indent=1))


if __name__ == "__main__":
    main()
