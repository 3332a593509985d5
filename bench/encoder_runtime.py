"""The encoder on torch (as served before) and on ONNX Runtime (float32, int8): speed, and
what each changes in routing and retrieval quality.

    .venv/bin/python -m bench.encoder_runtime [--dev PATH]

For each runtime (router/encoder.py, router/onnx_encoder.py; the ONNX artifacts come
from `make setup`): CPU-ms per short query one at a time and in batches of 8 (one
thread, as a server process runs it); the cosine of every held-out test query's vector
(base model and the shipped gate's tuned encoder) to torch float32's; the shipped gate,
served as the server serves it (its tuned encoder on that runtime), on the held-out test
split and the public dev set (docs/router-public-dev.md; skipped, loudly, when missing);
and bench/retrieval_quality.py's evaluation with that runtime embedding both the sample
corpora and the questions (recall@5, MRR@10 and their answer-level forms, for dense
search and the default hybrid). The acceptance rule of issue 24: a runtime may replace
today's default only if every one of those quality figures is within 0.005 of the
default's. Writes bench/results/encoder_runtime.json. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from bench.retrieval_corpus import DOMAINS, RESTRICTED_GROUP, load_corpus, load_questions
from bench.retrieval_quality import evaluate
from bench.router_bench import shipped_gate
from bench.router_common import dev_args, dev_set, machine, quality, splits, write_result
from retrieval.embedding import embed
from retrieval.fusion import FusionConfig, FusionMethod
from retrieval.index import DomainIndex, IndexConfig
from router.encoder import Encoder, SentenceTransformerEncoder, Vectors, bundled_minilm_path, native_bfloat16
from router.gate import TrainedScorer
from router.loading import scorer_for
from router.onnx_encoder import OnnxEncoder
from router.policy import DecisionPolicy
from router.service import Router
from router.types import RouteRequest

NAME = "all-MiniLM-L6-v2"
TOLERANCE = 0.005
ROUTING_KEYS = ("accuracy", "macro_f1")
RETRIEVAL_KEYS = ("recall@5", "mrr@10", "answer_recall@5", "answer_mrr@10")


def runtimes() -> dict[str, Callable[[], Encoder]]:
    path = bundled_minilm_path()
    return {
        # The reference vectors (first), then what `encoder_runtime: torch` serves
        # (precision auto: bfloat16 on AMX/AVX-512 BF16): the baseline of the verdicts.
        "torch float32": lambda: SentenceTransformerEncoder(path, name=NAME, precision="float32"),
        "torch (auto)": lambda: SentenceTransformerEncoder(path, name=NAME, precision="auto"),
        "onnx float32": lambda: OnnxEncoder(path, NAME, precision="float32", threads=1),
        "onnx int8": lambda: OnnxEncoder(path, NAME, precision="int8", threads=1),
    }


def cpu_ms_per_text(encode: Callable[[Sequence[str]], Vectors], texts: Sequence[str], batch: int) -> float:
    for i in range(0, min(len(texts), 4 * batch), batch):  # warm-up
        encode(texts[i : i + batch])
    started = time.process_time()
    for i in range(0, len(texts), batch):
        encode(texts[i : i + batch])
    return round((time.process_time() - started) * 1000 / len(texts), 3)


def retrieval(encoder: Encoder) -> dict[str, dict[str, float]]:
    """bench/retrieval_quality.py's figures, overall, for dense and the default fusion."""
    fusions = {"dense": FusionConfig(FusionMethod.DENSE), "default": IndexConfig().fusion}
    per: dict[str, list[tuple[int, dict[str, float]]]] = {name: [] for name in fusions}
    for domain in DOMAINS:
        corpus = load_corpus(domain)
        by_id = {c.chunk_id: c for c in corpus}
        questions = load_questions(domain)
        index = DomainIndex.build([c.entry() for c in corpus], embed(encoder, [c.chunk.embed_text for c in corpus]))
        qvecs = embed(encoder, [q.question for q in questions])
        for name, fusion in fusions.items():
            scores = evaluate(index, by_id, questions, qvecs, fusion, frozenset({RESTRICTED_GROUP[domain]}))
            per[name].append((len(questions), scores))
    out = {}
    for name, rows in per.items():
        total = sum(n for n, _ in rows)
        out[name] = {k: round(sum(n * s[k] for n, s in rows) / total, 4) for k in RETRIEVAL_KEYS}
    return out


def routing(encoder: Encoder, gate: TrainedScorer, sets: dict[str, tuple[list[str], list[str]]]) -> dict[str, object]:
    router = Router(encoder, scorer_for(gate, encoder, {}), DecisionPolicy(gate.manifest.policy, {}))
    out: dict[str, object] = {}
    for name, (texts, truth) in sets.items():
        report = quality(truth, [d.expert for d in router.route_many([RouteRequest(text=t) for t in texts])])
        out[name] = {k: report[k] for k in ROUTING_KEYS}
    return out


def within(results: dict[str, dict[str, object]], baseline: str, candidate: str) -> dict[str, object]:
    """Every quality figure of ``candidate`` minus ``baseline``'s, and whether all are
    within TOLERANCE (a drop beyond it fails; a gain never does)."""
    deltas: dict[str, float] = {}
    for part in ("routing", "retrieval"):
        base, cand = results[baseline][part], results[candidate][part]
        assert isinstance(base, dict) and isinstance(cand, dict)
        for group, figures in base.items():
            for key, value in figures.items():
                deltas[f"{part}.{group}.{key}"] = round(cand[group][key] - value, 4)
    return {"deltas": deltas, "accepted": all(d >= -TOLERANCE for d in deltas.values())}


# A split the settings offer (router_encoder_runtime: onnx-int8): the base model on torch,
# the gate's tuned encoder on ONNX int8. Its routing is "onnx int8"'s, its retrieval
# "torch (auto)"'s.
DEFAULT_SPLIT = "torch (auto) base + onnx int8 routing"


def verdicts_of(results: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """Each runtime, and the split, against torch (auto): :func:`within`."""
    verdicts = {label: within(results, "torch (auto)", label) for label in results if label != "torch (auto)"}
    split = {**results["torch (auto)"], "routing": results["onnx int8"]["routing"]}
    verdicts[DEFAULT_SPLIT] = within({**results, DEFAULT_SPLIT: split}, "torch (auto)", DEFAULT_SPLIT)
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    dev_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = splits()
    test = [e.text for e in data.test]
    sets = {"test": (test, [e.domain for e in data.test])}
    dev = dev_set(Path(args.dev))
    if dev is not None:
        sets["dev"] = ([r.text for r in dev], [r.domain for r in dev])
    gate = TrainedScorer.load(shipped_gate())
    timed = test[:200]
    results: dict[str, dict[str, object]] = {}
    reference: dict[str, Vectors] = {}
    for label, make in runtimes().items():
        encoder = make()
        tuned = scorer_for(gate, encoder, {}).encoder or encoder
        vectors = {"base": encoder.encode(test), "tuned": tuned.encode(test)}
        reference = reference or vectors
        started = time.perf_counter()
        results[label] = {
            "cpu_ms_per_query_batch_1": cpu_ms_per_text(encoder.encode, timed, 1),
            "cpu_ms_per_query_batch_8": cpu_ms_per_text(encoder.encode, timed, 8),
            "cosine_to_torch_float32": {
                k: {"min": round(float(c.min()), 5), "mean": round(float(c.mean()), 5)}
                for k, c in ((k, (v * reference[k]).sum(axis=1)) for k, v in vectors.items())
            },
            "routing": routing(encoder, gate, sets),
            "retrieval": retrieval(encoder),
        }
        r = results[label]
        print(
            f"{label:14s} {r['cpu_ms_per_query_batch_1']:6.2f} CPU-ms/query (batch 1) "
            f"{r['cpu_ms_per_query_batch_8']:6.2f} (batch 8)  cosine {r['cosine_to_torch_float32']}\n"
            f"{'':14s} routing {r['routing']}\n{'':14s} retrieval {r['retrieval']}  "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    verdicts = verdicts_of(results)
    for label, verdict in verdicts.items():
        print(f"{label}: {'accepted' if verdict['accepted'] else 'REJECTED'} against torch (auto): {verdict['deltas']}")
    path = write_result(
        "encoder_runtime",
        {
            "machine": machine(),
            "native_bfloat16": native_bfloat16(),
            "gate": gate.version,
            "sets": {k: len(v[0]) for k, v in sets.items()},
            "dev_set": str(args.dev) if dev is not None else None,
            "tolerance": TOLERANCE,
            "runtimes": results,
            "against_torch_auto": verdicts,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
