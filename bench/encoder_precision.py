"""The encoder in float32 and in bfloat16, eager and traced: speed per query, and what it
changes downstream.

    .venv/bin/python -m bench.encoder_precision

For each precision (router/encoder.py; bfloat16 only where the CPU multiplies it
natively): CPU-ms per short query one at a time and in batches of 8 (one torch thread,
as a server process runs it), the cosine of every held-out test query's vector to its
float32 vector, and the shipped gate's quality on the held-out test split with that
encoder (the gate was trained on float32 vectors). Then, per precision, the transformer
eager and as the TorchScript trace the server runs: CPU-ms per query, and the wall time
of one encode while another Python thread keeps the GIL busy (a server's event loop
under load, with the encoder in a worker thread). Writes bench/results/encoder.json.
Timings are reported, never asserted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import torch

from bench.router_bench import shipped_gate
from bench.router_common import machine, quality, splits, write_result
from router.encoder import Precision, SentenceTransformerEncoder, Vectors, bundled_minilm_path, native_bfloat16
from router.gate import TrainedScorer
from router.loading import scorer_for
from router.policy import DecisionPolicy
from router.service import Router
from router.types import RouteRequest

PRECISIONS: tuple[Precision, ...] = ("float32", "bfloat16")


def cpu_ms_per_text(encode: Callable[[Sequence[str]], Vectors], texts: Sequence[str], batch: int) -> float:
    for i in range(0, min(len(texts), 4 * batch), batch):  # warm-up
        encode(texts[i : i + batch])
    started = time.process_time()
    for i in range(0, len(texts), batch):
        encode(texts[i : i + batch])
    return round((time.process_time() - started) * 1000 / len(texts), 3)


def wall_ms_beside_busy_thread(encode: Callable[[Sequence[str]], Vectors], text: str, calls: int = 50) -> float:
    """Wall ms of one encode while another thread runs Python without pause."""
    stop = threading.Event()

    def busy() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    encode([text])
    spinner = threading.Thread(target=busy)
    spinner.start()
    try:
        started = time.perf_counter()
        for _ in range(calls):
            encode([text])
        return round((time.perf_counter() - started) * 1000 / calls, 2)
    finally:
        stop.set()
        spinner.join()


def trace_effect(texts: Sequence[str], precision: Precision) -> dict[str, dict[str, float]]:
    out = {}
    for mode, trace in (("eager", False), ("traced", True)):
        enc = SentenceTransformerEncoder(bundled_minilm_path(), precision=precision, trace=trace)
        out[mode] = {
            "cpu_ms_per_query_batch_1": cpu_ms_per_text(enc.encode, texts, 1),
            "wall_ms_per_query_beside_a_busy_python_thread": wall_ms_beside_busy_thread(enc.encode, texts[0]),
        }
    return out


def main() -> None:
    torch.set_num_threads(1)
    texts = [e.text for e in splits().test]
    truth = [e.domain for e in splits().test]
    timed = texts[:200]
    gate = TrainedScorer.load(shipped_gate())
    results: dict[str, object] = {"machine": machine(), "native_bfloat16": native_bfloat16()}
    reference: Vectors | None = None
    for precision in PRECISIONS:
        if precision == "bfloat16" and not native_bfloat16():
            results[precision] = "not measured: this CPU has no native bfloat16"
            continue
        encoder = SentenceTransformerEncoder(bundled_minilm_path(), name="all-MiniLM-L6-v2", precision=precision)
        vectors = encoder.encode(texts)
        reference = vectors if reference is None else reference
        cosine = (vectors * reference).sum(axis=1)
        router = Router(encoder, scorer_for(gate, encoder, {}), DecisionPolicy(gate.manifest.policy, {}))
        decisions = router.route_many([RouteRequest(text=t) for t in texts])
        report = quality(truth, [d.expert for d in decisions])
        results[precision] = {
            "cpu_ms_per_query_batch_1": cpu_ms_per_text(encoder.encode, timed, 1),
            "cpu_ms_per_query_batch_8": cpu_ms_per_text(encoder.encode, timed, 8),
            "cosine_to_float32": {"min": round(float(cosine.min()), 6), "mean": round(float(cosine.mean()), 6)},
            "gate_test": {k: report[k] for k in ("accuracy", "macro_f1", "general_recall", "in_domain_abstain_rate")},
        }
        r = results[precision]
        assert isinstance(r, dict)
        print(
            f"{precision:9s} {r['cpu_ms_per_query_batch_1']:6.2f} CPU-ms/query (batch 1) "
            f"{r['cpu_ms_per_query_batch_8']:6.2f} (batch 8)  cosine min {r['cosine_to_float32']['min']}  "
            f"gate {r['gate_test']}"
        )
    for measured in PRECISIONS:
        if isinstance(results.get(measured), dict):
            effect = trace_effect(timed, measured)
            results[f"{measured}_eager_vs_traced"] = effect
            for mode, r in effect.items():
                print(
                    f"{measured:9s} {mode:6s} {r['cpu_ms_per_query_batch_1']:6.2f} CPU-ms/query (batch 1)  "
                    f"{r['wall_ms_per_query_beside_a_busy_python_thread']:8.2f} ms beside a busy Python thread"
                )
    print(f"wrote {write_result('encoder', results)}")


if __name__ == "__main__":
    main()
