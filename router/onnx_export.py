"""Building the encoder's ONNX Runtime artifacts from the local sentence-transformers model.

Run once at setup (``make setup`` runs it; it is idempotent), never at request time::

    .venv/bin/python -m router.onnx_export [--out DIR] [--force]

For the bundled all-MiniLM-L6-v2 and for the routing-tuned encoder of every bundled gate
version with ``encoder_tuning`` (router/artifacts/*/encoder.safetensors) and of every
bundled safety reader (router/safety/artifacts/*/encoder.safetensors), it writes::

    <out>/<digest>/model.onnx        the transformer + mean pooling + L2 normalisation,
                                     float32 (TorchScript exporter, no network)
    <out>/<digest>/model.int8.onnx   the same with its weight matrix products quantised
                                     to int8 per output channel (dynamic quantisation),
                                     but for :data:`FLOAT32_MATMULS`
    <out>/<digest>/manifest.json     what it was made from, and the check below

``digest`` is :func:`weights_digest` of the base model's weights, the tuned tensors
(if any) and :data:`INT8_RECIPE`: an encoder built from other weights, or an int8 build
made another way, can never pick up these files. Every
artifact is checked before it is written: its vectors against the torch model's on
:data:`CHECK_TEXTS` (cosine, float32 >= 0.9999, int8 >= :data:`INT8_MIN_COSINE`); a
failing check raises :class:`ExportError` and writes nothing.

Needs torch, sentence-transformers, onnx and onnxruntime (its quantisation tools); the
serving side (:mod:`router.onnx_encoder`) needs only onnxruntime and tokenizers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router.errors import RouterError

FLOAT32 = "model.onnx"
INT8 = "model.int8.onnx"
MANIFEST = "manifest.json"
OPSET = 17
# The default place of the artifacts: beside the package, ignored by git (built, not shipped).
DEFAULT_DIR = Path(__file__).resolve().parent / "encoder-onnx"
# Texts every artifact is checked on (lengths that differ: padding is exercised).
CHECK_TEXTS = (
    "How do I rotate the API key for the billing service?",
    "vpn",
    "Can a contractor's code ship in our product, and under which licence terms may we do so?",
    "my laptop will not connect to the office wifi since this morning",
    "What notice period applies if we terminate the supplier contract early?",
    "write a python function that merges two sorted lists",
    "What is the capital of Australia?",
    "reset my password",
)
FLOAT32_MIN_COSINE = 0.9999
# int8 weights move a vector by a little; measured on the project's test queries (bench/
# encoder_runtime.py) the mean cosine to float32 is ~0.996, and routing stays within 0.005
# (dense retrieval does not: the base model stays on torch by default). Below this
# something is broken, not merely rounded.
INT8_MIN_COSINE = 0.97
# Matrix products the int8 build keeps in float32: the feed-forward output projections of
# the first two layers. Measured one by one (bench/encoder_runtime.py's texts and the
# public dev set's), int8 there moved the vectors most: the mean cosine to float32 on
# 1,969 queries went from 0.990 to 0.997 and the lowest from 0.972 to 0.991, for 2.45
# instead of 2.29 CPU-ms a query (torch's bfloat16: 4.95). 2 of the 36 weight products.
FLOAT32_MATMULS = ("/layer.0/output/dense/", "/layer.1/output/dense/")
# Part of every artifact's digest: a build made by another recipe is never reused.
INT8_RECIPE = "int8-v2: dynamic, per output channel, MatMul with constant weights; float32: " + " ".join(
    FLOAT32_MATMULS
)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ExportError(RouterError):
    """An artifact could not be built, or its vectors differ from the torch model's."""


def weights_digest(model_dir: Path, tensors: Mapping[str, np.ndarray] | None) -> str:
    """Hex digest (24 chars) of the base model's weight file, the tuned tensors (names,
    shapes and float32 bytes, in name order) and :data:`INT8_RECIPE`. Raises
    FileNotFoundError without weights."""
    h = hashlib.sha256(INT8_RECIPE.encode())
    with (model_dir / "model.safetensors").open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    for name in sorted(tensors or {}):
        array = np.ascontiguousarray(np.asarray((tensors or {})[name], dtype=np.float32))
        h.update(f"\n{name}:{array.shape}\n".encode())
        h.update(array.tobytes())
    return h.hexdigest()[:24]


def _torch_model(model_dir: Path, tensors: Mapping[str, np.ndarray] | None) -> tuple[Any, Any, int]:
    """(embedding module: ids, mask, token types -> normalised vectors; tokenizer; max length)."""
    import torch
    from sentence_transformers import SentenceTransformer

    st: Any = SentenceTransformer(str(model_dir), device="cpu")
    names = [type(m).__name__ for m in st]
    if names != ["Transformer", "Pooling", "Normalize"] or getattr(st[1], "pooling_mode", None) != "mean":
        raise ExportError(f"{model_dir}: not a Transformer -> mean Pooling -> Normalize model ({names})")
    model = st[0].auto_model
    if tensors:
        from router.finetune import apply_tensors

        try:
            apply_tensors(model, tensors)
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
    model.float().eval()

    class Embedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return Embedding().eval(), st[0].tokenizer, int(st[0].max_seq_length)


def _features(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, np.ndarray]:
    encoded = tokenizer(
        list(texts), padding=True, truncation="longest_first", max_length=max_length, return_tensors="np"
    )
    ids = np.asarray(encoded["input_ids"], dtype=np.int64)
    types = encoded.get("token_type_ids")
    return {
        "input_ids": ids,
        "attention_mask": np.asarray(encoded["attention_mask"], dtype=np.int64),
        "token_type_ids": np.zeros_like(ids) if types is None else np.asarray(types, dtype=np.int64),
    }


def _run(model: bytes | str, features: Mapping[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    out = np.asarray(session.run(None, dict(features))[0], dtype=np.float32)
    unit: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
    return unit


def _float32_nodes(fp32_path: Path) -> list[str]:
    """The graph's MatMul nodes named by :data:`FLOAT32_MATMULS`. Raises ExportError when
    one of them matches none (a graph named otherwise would be quantised whole)."""
    import onnx

    names = [n.name for n in onnx.load(str(fp32_path), load_external_data=False).graph.node if n.op_type == "MatMul"]
    kept = [n for n in names if any(part in n for part in FLOAT32_MATMULS)]
    missing = [part for part in FLOAT32_MATMULS if not any(part in n for n in kept)]
    if missing:
        raise ExportError(f"no MatMul node named like {', '.join(missing)} in {fp32_path.name}")
    return kept


def _quantised(fp32_path: Path, out_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Only matrix products with a constant weight (the Linear layers): attention scores
    # and the embedding tables stay float32, and so do FLOAT32_MATMULS. Per output channel:
    # one scale per row of a weight, so a row of large weights does not coarsen its
    # neighbours.
    quantize_dynamic(
        str(fp32_path),
        str(out_path),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=_float32_nodes(fp32_path),
        extra_options={"MatMulConstBOnly": True},
    )


def build(
    model_dir: Path, out_root: Path, tensors: Mapping[str, np.ndarray] | None = None, *, force: bool = False
) -> Path:
    """The artifact directory for the model at ``model_dir`` (with ``tensors`` applied):
    built and checked unless it already exists (``force``: rebuilt). Raises ExportError."""
    import torch

    digest = weights_digest(model_dir, tensors)
    target = out_root / digest
    if (target / MANIFEST).is_file() and not force:
        return target
    started = time.perf_counter()
    module, tokenizer, max_length = _torch_model(model_dir, tensors)
    check = _features(tokenizer, CHECK_TEXTS, max_length)
    with torch.inference_mode():
        expected = module(*(torch.from_numpy(check[n]) for n in INPUTS)).numpy()
    out_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=out_root))
    try:
        probe = _features(tokenizer, CHECK_TEXTS[:3], max_length)
        axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS} | {"embedding": {0: "batch"}}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                tuple(torch.from_numpy(probe[n]) for n in INPUTS),
                str(work / FLOAT32),
                input_names=list(INPUTS),
                output_names=["embedding"],
                dynamic_axes=axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        _quantised(work / FLOAT32, work / INT8)
        cosines = {}
        for name, floor in ((FLOAT32, FLOAT32_MIN_COSINE), (INT8, INT8_MIN_COSINE)):
            got = _run(str(work / name), check)
            cosine = (got * expected).sum(axis=1)
            if float(cosine.min()) < floor:
                raise ExportError(f"{name} for {model_dir.name}: cosine to torch {cosine.min():.5f} < {floor}")
            cosines[name] = {"min": round(float(cosine.min()), 6), "mean": round(float(cosine.mean()), 6)}
        import onnxruntime

        manifest = {
            "digest": digest,
            "source": str(model_dir),
            "tuned_tensors": len(tensors or {}),
            "max_length": max_length,
            "dim": int(expected.shape[1]),
            "inputs": list(INPUTS),
            "opset": OPSET,
            "int8_recipe": INT8_RECIPE,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "check_cosine_to_torch": cosines,
            "built_s": round(time.perf_counter() - started, 1),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)  # whole or not at all: the manifest is written last
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def bundled_tuned_tensors() -> dict[str, dict[str, np.ndarray]]:
    """Per bundled gate version with a tuned encoder: its tuned tensors."""
    from router.artifacts import BUNDLED
    from router.gate import TrainedScorer

    out = {}
    for directory in sorted(p for p in BUNDLED.iterdir() if (p / "manifest.json").is_file()):
        gate = TrainedScorer.load(directory)
        if gate.manifest.encoder_tuning is not None:
            out[gate.version] = dict(gate.encoder_tensors)
    return out


def bundled_reader_tensors() -> dict[str, dict[str, np.ndarray]]:
    """Per bundled safety reader (router/safety/reader.py): its tuned tensors."""
    from safetensors.numpy import load_file

    from router.safety.reader import ARTIFACTS, ENCODER_FILE

    return {p.parent.name: load_file(str(p)) for p in sorted(ARTIFACTS.glob(f"*/{ENCODER_FILE}"))}


def main() -> None:
    from router.encoder import bundled_minilm_path

    parser = argparse.ArgumentParser(description="Build the encoder's ONNX Runtime artifacts (router/onnx_export.py).")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild artifacts that exist")
    args = parser.parse_args()
    model_dir = bundled_minilm_path()
    jobs: list[tuple[str, dict[str, np.ndarray] | None]] = [("all-MiniLM-L6-v2", None)]
    jobs += [(f"tuned encoder of {version}", tensors) for version, tensors in bundled_tuned_tensors().items()]
    jobs += [(f"safety reader {version}", tensors) for version, tensors in bundled_reader_tensors().items()]
    for label, tensors in jobs:
        target = build(model_dir, args.out, tensors, force=args.force)
        manifest = json.loads((target / MANIFEST).read_text())
        print(f"{label}: {target} (cosine to torch: {manifest['check_cosine_to_torch']})")


if __name__ == "__main__":
    main()
