"""The encoder on ONNX Runtime: the same MiniLM, exported once at setup.

:class:`OnnxEncoder` serves the artifacts :mod:`router.onnx_export` builds (``make
setup``): the transformer, mean pooling and normalisation as one ONNX graph, run by
ONNX Runtime on the CPU, with the model's own fast tokenizer (``tokenizer.json`` in the
model directory). It is an :class:`~router.encoder.Encoder` and a
:class:`~router.encoder.TunableEncoder`, with the torch encoder's name: its vectors are
the same model's (float32: cosine 1.0; int8: ~0.994 on average, >= 0.99 on the
project's test queries but a 600-word filler and, tuned, an emoji/CJK line:
tests/router/test_onnx_encoder.py), so gates and indexes made with either runtime are
served by the other.

What it buys (bench/results/encoder_runtime.json, docs/load.md): a short query costs 4.5
CPU-ms in torch (bfloat16 on AMX) and 2.4 with int8 weights on this project's machine
(the int8 build keeps two of its 36 weight products in float32: router/onnx_export.py).
For the gate's routing-tuned encoder that is the default (``router_encoder_runtime:
onnx-int8``): routing moved by 0.0035 macro-F1 on the public dev set and not at all on the
test split, inside issue 24's 0.005. The base model is never on int8 by default: int8
moved dense retrieval's MRR@10 by 0.013. float32 gives torch's vectors (cosine 1.0) at
about torch-bfloat16's cost one query at a time, 1.3-1.6x less than torch's float32
(what torch runs on a CPU without native bfloat16), but not in batches, where bfloat16
on AMX is twice as fast. Hence the base model's ``encoder_runtime: auto``: torch where
bfloat16 is native, ONNX float32 elsewhere (backend/gate/wiring.py).

Nothing is downloaded or exported per request. A tuned encoder whose artifact was not
built at setup (a gate retrained after it) is exported once, when the gate is loaded,
into a temporary directory (torch is needed then), and logged.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from router.encoder import MAX_CHARS, TunableEncoder, Vectors
from router.onnx_export import DEFAULT_DIR, FLOAT32, INT8, MANIFEST, build, weights_digest

log = logging.getLogger(__name__)
OnnxPrecision = Literal["int8", "float32"]


class OnnxArtifactMissing(FileNotFoundError):
    """No ONNX artifact for these weights: run ``make setup`` (router/onnx_export.py)."""


class OnnxEncoder:
    """all-MiniLM-L6-v2 (or a routing-tuned copy) on ONNX Runtime, on the CPU."""

    def __init__(
        self,
        path: Path,
        name: str | None = None,
        *,
        artifacts: Path = DEFAULT_DIR,
        precision: OnnxPrecision = "int8",
        batch_size: int = 64,
        threads: int | None = None,
        tuned: Mapping[str, np.ndarray] | None = None,
        artifact: Path | None = None,
    ) -> None:
        """``path``: the base model's directory (its tokenizer and weights).
        ``artifacts``: where :mod:`router.onnx_export` put its builds; the one for these
        weights is found by digest (``artifact`` names a directory directly).
        ``threads``: ONNX Runtime's intra-op threads (None: its default, every core), and
        the same limit for the native thread pools loaded by then (numpy's OpenBLAS, whose
        idle threads spin: the gate's bank product beside a base model on ONNX cost a lone
        request twice its CPU without it); one per process is the better setting for a
        server (router/encoder.py says why).
        ``tuned``: tensors that replace the base model's (a routing-tuned encoder); give
        ``name`` too. Raises OnnxArtifactMissing when no artifact fits these weights.
        """
        import onnxruntime as ort
        from threadpoolctl import threadpool_limits
        from tokenizers import Tokenizer

        if threads is not None:
            threadpool_limits(limits=threads)  # process-wide, for as long as it runs

        self.path = path
        self.name = name or path.name
        self.precision: OnnxPrecision = precision
        self._artifacts = artifacts
        self._threads = threads
        # int8: one text per run. Dynamic quantisation scales each activation by the batch's
        # range, so a text batched with others got another vector (cosine ~0.99 to itself
        # alone) and a gate could decide it by its neighbours; one at a time is also the
        # cheaper way here (2.4 CPU-ms a query alone, 3.2 in batches of 8: no padding).
        self._batch_size = 1 if precision == "int8" else batch_size
        self._tuned: dict[str, OnnxEncoder] = {}
        self._tuned_lock = threading.Lock()
        if artifact is None:
            artifact = artifacts / weights_digest(path, tuned)
            if not (artifact / MANIFEST).is_file():
                raise OnnxArtifactMissing(
                    f"no ONNX encoder built for {self.name} under {artifacts} (digest {artifact.name}): "
                    "run `make setup` or `.venv/bin/python -m router.onnx_export`"
                )
        manifest = json.loads((artifact / MANIFEST).read_text())
        self.dim = int(manifest["dim"])
        self._max_length = int(manifest["max_length"])
        self._inputs = tuple(manifest["inputs"])

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Threads that spin while waiting for work take CPU from the server's other process.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = artifact / (INT8 if precision == "int8" else FLOAT32)
        self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # sentence-transformers' settings, not the file's (fixed padding to 128 there):
        # cut at the model's max_seq_length, pad a batch to its longest text.
        tokenizer.enable_truncation(max_length=self._max_length)
        pad_id = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        self._tokenizer = tokenizer

    def tuned(self, tensors: Mapping[str, np.ndarray], name: str) -> OnnxEncoder:
        """This encoder's base model with ``tensors`` in place of its own, in the same
        precision, named ``name`` (:func:`tuned_onnx`; once per name). Raises ValueError
        when the tensors do not fit the model."""
        with self._tuned_lock:
            made = self._tuned.get(name)
            if made is None:
                made = tuned_onnx(
                    self.path,
                    tensors,
                    name,
                    artifacts=self._artifacts,
                    precision=self.precision,
                    threads=self._threads,
                    batch_size=self._batch_size,
                )
                self._tuned[name] = made
            return made

    def _features(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encoded = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        features = {
            "input_ids": ids,
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.zeros_like(ids),
        }
        return {name: features[name] for name in self._inputs}

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Rows L2-normalised, shape (len(texts), dim), float32, in input order."""
        clipped = [t[:MAX_CHARS] for t in texts]
        out = np.empty((len(clipped), self.dim), dtype=np.float32)
        # Longest first, as sentence-transformers does: batches of like lengths pad less.
        order = sorted(range(len(clipped)), key=lambda i: -len(clipped[i]))
        for start in range(0, len(clipped), self._batch_size):
            rows = order[start : start + self._batch_size]
            vectors = np.asarray(self._session.run(None, self._features([clipped[i] for i in rows]))[0])
            out[rows] = vectors
        # int8 weights leave a row a hair off unit length; callers rely on unit rows.
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def tuned_onnx(
    path: Path,
    tensors: Mapping[str, np.ndarray],
    name: str,
    *,
    artifacts: Path = DEFAULT_DIR,
    precision: OnnxPrecision = "int8",
    threads: int | None = None,
    batch_size: int = 64,
) -> OnnxEncoder:
    """The model at ``path`` with ``tensors`` in place of its own, on ONNX Runtime: the
    artifact built at setup, or one exported now into a temporary directory (needs torch;
    logged). Raises ValueError when the tensors do not fit the model."""
    args: dict[str, Any] = {"precision": precision, "batch_size": batch_size, "threads": threads}
    try:
        return OnnxEncoder(path, name, artifacts=artifacts, tuned=tensors, **args)
    except OnnxArtifactMissing:
        pass
    from router.onnx_export import ExportError

    log.warning("encoder: no ONNX build of %s from setup; exporting it now (once per process)", name)
    scratch = Path(tempfile.mkdtemp(prefix="expertgate-onnx-"))
    try:
        artifact = build(path, scratch, tensors)
        return OnnxEncoder(path, name, artifact=artifact, **args)  # the session holds the model
    except ExportError as exc:
        raise ValueError(str(exc)) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class TunedOnOnnx:
    """A torch encoder of the base model whose routing-tuned copies (:meth:`tuned`, what a
    gate with ``encoder_tuning`` scores) run on ONNX Runtime.

    ``router_encoder_runtime: onnx-int8`` (the default) with the base on torch: the gate's
    encode at about half of torch's CPU for a lone short query, while the base model's
    vectors (retrieval, grounding, safety, prototypes, indexes) stay torch's. On the public
    dev set it moved routing by 0.0035 macro-F1, inside issue 24's 0.005
    (bench/results/encoder_runtime.json)."""

    def __init__(
        self,
        base: TunableEncoder,
        *,
        artifacts: Path = DEFAULT_DIR,
        precision: OnnxPrecision = "int8",
        threads: int | None = None,
    ) -> None:
        self._base = base
        self.name = base.name
        self.dim = base.dim
        self.path = base.path
        self.precision: OnnxPrecision = precision
        self._artifacts = artifacts
        self._threads = threads
        self._tuned: dict[str, OnnxEncoder] = {}
        self._tuned_lock = threading.Lock()
        # Fail at start, not at the first gate load, when setup did not build the export.
        if not any(artifacts.glob(f"*/{MANIFEST}")):
            raise OnnxArtifactMissing(
                f"no ONNX encoder built under {artifacts}: run `make setup` or `.venv/bin/python -m router.onnx_export`"
            )

    def encode(self, texts: Sequence[str]) -> Vectors:
        return self._base.encode(texts)

    def tuned(self, tensors: Mapping[str, np.ndarray], name: str) -> OnnxEncoder:
        """The base model with ``tensors``, on ONNX Runtime (:func:`tuned_onnx`; once per
        name). Raises ValueError when the tensors do not fit the model."""
        with self._tuned_lock:
            made = self._tuned.get(name)
            if made is None:
                made = tuned_onnx(
                    self.path, tensors, name, artifacts=self._artifacts, precision=self.precision, threads=self._threads
                )
                self._tuned[name] = made
            return made
