"""Fine-tuning the encoder for routing.

A frozen sentence encoder places texts by topic *and* by style; a gate over frozen
vectors learns the style of whoever wrote its training set. Tuning the transformer's
layers on the routing labels moves texts of one domain together whatever their style
(forum title, search query, voice command, customer chat), which is what carries over
to traffic written by other people (docs/router.md, "Choosing the gate").

The tuning is a cosine classifier on the encoder's own output (mean-pooled,
L2-normalised): ``logits = scale * cos(vector, class_weight)``. The tuned vectors stay
unit vectors in a cosine space, so the in-domain score (nearest training neighbours)
and the gate head (:mod:`router.train`) work on them unchanged. The word-piece
embedding table stays frozen: it is half the model's parameters, words the training
set never uses keep their places, and the artifact stores only the six transformer
layers (:func:`tuned_tensors`).

Deterministic for the same examples, base model, config and torch build (seeded
shuffles and initialisation; one CPU thread order of operations is not guaranteed
across machines, so two machines may differ in the last bits).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router.dataset import Example

Tensors = dict[str, npt.NDArray[np.float32]]

# Parameters under these prefixes (the word-piece, position and token-type embeddings;
# the pooler, which mean pooling never uses) are never tuned and never stored: they are
# read from the base model.
FROZEN_PREFIX = ("embeddings.", "pooler.")


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 1
    batch_size: int = 32
    lr: float = 5e-5  # the transformer's layers
    head_lr: float = 5e-3  # the class weights, freshly initialised
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1  # linear warm-up, then linear decay to 0
    max_length: int = 64  # word pieces per training text: routing texts are short
    scale: float = 20.0  # cosine-classifier logit scale
    seed: int = 7


def finetune_encoder(
    model_path: Path,
    examples: Sequence[Example],
    labels: Sequence[str],
    config: FinetuneConfig | None = None,
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> Tensors:
    """Tune the sentence-transformers model at ``model_path`` on ``examples``.

    Returns the tuned transformer tensors (names as in the Hugging Face model's
    ``state_dict``, embeddings excluded), to be applied over the same base model with
    :func:`apply_tensors`. ``progress(step, steps, loss)`` is called after each step.
    Raises ValueError for an example whose label is not in ``labels``.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from torch import nn

    config = config or FinetuneConfig()
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({e.domain for e in examples} - set(index))
    if unknown:
        raise ValueError(f"examples use unknown labels: {', '.join(unknown)}")
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    transformer = SentenceTransformer(str(model_path), device="cpu")[0]
    model: Any = transformer.auto_model  # a Hugging Face BertModel for MiniLM
    tokenizer: Any = transformer.tokenizer
    model.float().train()
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith(FROZEN_PREFIX)
    dim = int(model.config.hidden_size)
    head = nn.Parameter(torch.randn(len(labels), dim) * 0.02)

    y_all = [index[e.domain] for e in examples]
    counts = np.bincount(y_all, minlength=len(labels)).astype(np.float32)
    weights = torch.tensor(counts.sum() / (len(labels) * np.maximum(counts, 1)))
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    tuned = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [
            {"params": tuned, "lr": config.lr, "weight_decay": config.weight_decay},
            {"params": [head], "lr": config.head_lr, "weight_decay": 0.0},
        ]
    )
    per_epoch = math.ceil(len(examples) / config.batch_size)
    steps = per_epoch * config.epochs
    warmup = max(1, int(steps * config.warmup_fraction))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    rng = random.Random(config.seed)
    step = 0
    for _ in range(config.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            features = tokenizer(
                [examples[i].text for i in rows],
                padding=True,
                truncation="longest_first",
                max_length=config.max_length,
                return_tensors="pt",
            )
            hidden = model(**features).last_hidden_state
            vectors = mean_pool(hidden, features["attention_mask"])
            logits = config.scale * vectors @ nn.functional.normalize(head, dim=1).T
            loss = loss_fn(logits, torch.tensor([y_all[i] for i in rows]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if progress is not None:
                progress(step, steps, loss.item())
    model.eval()
    return tuned_tensors(model)


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Mean over the real tokens, L2-normalised: the sentence vector of a MiniLM model."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def tuned_tensors(model: Any) -> Tensors:
    """The model's tensors outside the frozen embeddings, as float32 numpy arrays."""
    return {
        name: tensor.detach().float().numpy().copy()
        for name, tensor in model.state_dict().items()
        if not name.startswith(FROZEN_PREFIX)
    }


def apply_tensors(model: Any, tensors: Mapping[str, np.ndarray]) -> None:
    """Overwrite ``model``'s parameters with ``tensors`` (a Hugging Face model).

    Raises ValueError when a name is unknown, a shape differs, or a tuned tensor would
    replace a frozen embedding: the artifact was made for another base model.
    """
    import torch

    state = model.state_dict()
    bad = sorted(n for n in tensors if n not in state or n.startswith(FROZEN_PREFIX))
    if bad:
        raise ValueError(f"tuned tensors do not fit the base model: {', '.join(bad[:5])}")
    wrong = sorted(n for n, t in tensors.items() if tuple(t.shape) != tuple(state[n].shape))
    if wrong:
        raise ValueError(f"tuned tensors have other shapes than the base model: {', '.join(wrong[:5])}")
    with torch.no_grad():
        for name, tensor in tensors.items():
            state[name].copy_(torch.from_numpy(np.asarray(tensor, dtype=np.float32)).to(state[name].dtype))
