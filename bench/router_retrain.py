"""How long adding an expert takes: a new `finance` expert with a description and 20
examples, retrained into the gate together with the seed set.

Two figures: cold (no embedding cache: every seed example is encoded) and warm (the
cache a previous training left, as in a running deployment). Writes
bench/results/router_retrain.json. Never fails on a timing.

    .venv/bin/python -m bench.router_retrain
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from router.dataset import SEED_DIR, Example, load_jsonl
from router.encoder import SentenceTransformerEncoder, bundled_minilm_path
from router.evaluate import evaluate
from router.policy import DecisionPolicy
from router.service import Router
from router.train import train_gate

OUT = Path(__file__).resolve().parent / "results" / "router_retrain.json"

FINANCE = [
    "Company finance: budgets, expense reports, reimbursements, purchase orders and supplier payments.",
    "how do I submit an expense report for a client dinner",
    "what is the approval limit for a purchase order without the CFO",
    "when will my travel expenses be reimbursed",
    "which cost centre should I book the team offsite to",
    "can I expense a monitor for working from home",
    "the finance portal rejected my receipt because it is blurry",
    "how do I raise a PO for a new software vendor",
    "what is our per diem for a trip to Lisbon",
    "who approves budget changes in the middle of the quarter",
    "deadline for submitting expenses before month-end close",
    "is there a corporate card I can use for conference tickets",
    "how to split one receipt across two projects in the expense tool",
    "we were double charged by a supplier, how does finance get the money back",
    "what exchange rate is used for expenses paid in dollars",
    "need the budget vs actuals for my department for Q3",
    "Can I get an advance for a long business trip?",
    "mileage allowance for driving my own car to a customer site",
    "my reimbursement shows as paid but nothing arrived in my bank",
    "how do I add a new supplier to the payment system",
    "what counts as an entertainment expense for tax purposes",
]
HELD_OUT_FINANCE = [
    "I lost the receipt for a hotel night, can I still claim it?",
    "who signs off on purchase orders above 20k",
    "expense report for a taxi to the airport",
    "how long does finance take to pay a supplier invoice",
    "can the team budget cover a training course",
]


def main() -> None:
    encoder = SentenceTransformerEncoder(bundled_minilm_path(), name="all-MiniLM-L6-v2")
    experts = ["code", "legal", "support", "finance", "general"]
    examples = [*load_jsonl(SEED_DIR / "train.jsonl"), *(Example(t, "finance") for t in FINANCE)]
    runs = {}
    cache: dict[str, np.ndarray] = {}
    for label in ("cold", "warm"):
        if label == "warm":
            # The deployment case: seed embeddings cached by an earlier training; only the
            # new expert's examples are new.
            cache = {k: v for k, v in cache.items() if k not in FINANCE}
        start = time.perf_counter()
        result = train_gate(examples, encoder, experts, version=f"bench-{label}", vectors_by_text=cache)
        runs[label] = {"seconds": round(time.perf_counter() - start, 2), "val_macro_f1": result.val_metrics["macro_f1"]}
    scorer = result.scorer
    router = Router(encoder, scorer, DecisionPolicy(scorer.manifest.policy, {}))
    held = [Example(t, "finance") for t in HELD_OUT_FINANCE] + load_jsonl(SEED_DIR / "test.jsonl")
    quality = evaluate(router, held, latency_samples=20)
    finance_recall = quality.report.recall["finance"]
    out = {
        "new_expert": "finance",
        "new_examples": len(FINANCE),
        "seed_examples": len(examples) - len(FINANCE),
        "retrain_seconds": runs,
        "held_out_finance_recall": round(finance_recall, 3),
        "held_out_macro_f1_all_five": round(quality.report.macro_f1, 4),
        "load_average": os.getloadavg()[0],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
