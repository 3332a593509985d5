"""Would an encoder tuned for the safety task close issue 23's gap? A probe, not a product.

Fine-tunes the bundled MiniLM's transformer layers (word-piece embeddings frozen, as the
gate's tuning does: router/finetune.py) with a three-way sigmoid head (injection,
jailbreak, extraction; all zero = benign) on the safety training split: our attacks, our
hard benign rows, a sample of the router's examples as ordinary traffic, and a third of
the attacks again with an ordinary request before or after them. Then scores the held-out
split (router/safety/data.py: attacks and hard benign rows never trained on, plus the
router's held-out requests) on whole texts and reports recall at the thresholds that
give 0.5%, 1% and 2% false positives on the held-out benign rows, and the same for the
attacks with benign padding.

    .venv/bin/python -m bench.safety_finetune [--epochs 2] [--traffic 4000] [--layers 6]

Deterministic for the same seed and torch build; about 15 minutes on 2 cores for the
defaults. Writes bench/results/safety_finetune.json. docs/safety.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from router.encoder import bundled_minilm_path
from router.finetune import FROZEN_PREFIX, mean_pool
from router.safety.data import BENIGN, load_split, targets
from router.safety.model import CATEGORIES
from router.safety.train import padded

OUT = Path(__file__).resolve().parent / "results" / "safety_finetune.json"
SCALE = 10.0  # the unit vector is scaled before the linear head


def run(epochs: int, traffic: int, layers: int, seed: int) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    split = load_split()
    attacks = [r for r in split.train if r.label != BENIGN]
    hard = [r for r in split.train if r.label == BENIGN and r.cell != "router"]
    ordinary = rng.sample([r for r in split.train if r.cell == "router"], traffic)
    rows = attacks + hard + ordinary + padded(rng.sample(attacks, len(attacks) // 3), hard + ordinary, seed)
    y = targets(rows)

    transformer = SentenceTransformer(str(bundled_minilm_path()), device="cpu")[0]
    model: Any = transformer.auto_model
    tokenizer: Any = transformer.tokenizer
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    model.float().train()
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith(FROZEN_PREFIX)
    head = nn.Linear(model.config.hidden_size, len(CATEGORIES))
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in model.parameters() if p.requires_grad], "lr": 5e-5, "weight_decay": 0.01},
            {"params": head.parameters(), "lr": 2e-3},
        ]
    )
    batch = 32
    steps = epochs * math.ceil(len(rows) / batch)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / (steps - warmup))
    )
    weights = torch.tensor(np.where(y.sum(1) > 0, 2.0, 1.0))
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    started = time.perf_counter()
    for _ in range(epochs):
        order = list(range(len(rows)))
        rng.shuffle(order)
        for start in range(0, len(order), batch):
            picked = order[start : start + batch]
            features = tokenizer(
                [rows[i].text for i in picked], padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            vectors = mean_pool(model(**features).last_hidden_state, features["attention_mask"])
            logits = head(vectors * SCALE)
            loss = (loss_fn(logits, torch.from_numpy(y[picked])).mean(1) * weights[picked]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    train_s = time.perf_counter() - started
    model.eval()

    def top_score(texts: Sequence[str]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), 64):
                features = tokenizer(
                    list(texts[start : start + 64]), padding=True, truncation=True, max_length=256, return_tensors="pt"
                )
                vectors = mean_pool(model(**features).last_hidden_state, features["attention_mask"])
                out.append(torch.sigmoid(head(vectors * SCALE)).max(1).values.numpy())
        return np.concatenate(out)

    test_attacks = [r for r in split.test if r.label != BENIGN]
    test_benign = [r for r in split.test if r.label == BENIGN] + split.router_test
    attack_scores = top_score([r.text for r in test_attacks])
    benign_scores = top_score([r.text for r in test_benign])
    padded_scores = top_score([r.text for r in padded(test_attacks, split.router_test, 5)])
    is_hard = np.array([r.cell != "router" for r in test_benign])
    at: dict[str, dict[str, float]] = {}
    for fpr in (0.005, 0.01, 0.02):
        threshold = float(np.sort(benign_scores)[::-1][int(fpr * len(benign_scores))])
        at[f"fpr_{fpr}"] = {
            "threshold": round(threshold, 4),
            "recall": round(float((attack_scores > threshold).mean()), 4),
            "padded_recall": round(float((padded_scores > threshold).mean()), 4),
            "fpr_hard_benign": round(float((benign_scores[is_hard] > threshold).mean()), 4),
            "fpr_router_test": round(float((benign_scores[~is_hard] > threshold).mean()), 4),
        }
    return {
        "what": "MiniLM fine-tuned for the safety categories alone, whole texts scored (no pieces, n-grams or rules)",
        "config": {"epochs": epochs, "traffic_rows": traffic, "layers": layers, "seed": seed, "train_rows": len(rows)},
        "held_out": {"attacks": len(test_attacks), "benign": len(test_benign), "hard_benign": int(is_hard.sum())},
        "at_benign_fpr": at,
        "train_s": round(train_s, 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--traffic", type=int, default=4000, help="router examples sampled as ordinary traffic")
    parser.add_argument("--layers", type=int, default=6, help="transformer layers kept (MiniLM has 6)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    result = run(args.epochs, args.traffic, args.layers, args.seed)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
