"""The encoder's direct mean-pooling path: the same vectors as sentence-transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import router.encoder as encoder_module
from router.encoder import SentenceTransformerEncoder, bundled_minilm_path

TEXTS = [
    "How do I rotate the API key for the billing service without downtime?",
    "   Can a contractor's GPL code ship inside our product?   ",  # outer spaces: ignored by WordPiece
    "vpn",
    "word " * 600,  # past the 256 word pieces: truncated
]


@pytest.fixture(scope="module")
def float32() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(bundled_minilm_path(), precision="float32")


def reference(enc: SentenceTransformerEncoder) -> np.ndarray:
    return np.asarray(enc._model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True))


def test_the_direct_path_matches_sentence_transformers(float32: SentenceTransformerEncoder) -> None:
    assert float32._mean_pool is not None  # the direct path, not sentence-transformers' encode
    ours = float32.encode(TEXTS)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    assert np.abs(ours - reference(float32)).max() < 1e-5
    # Batched or one by one: the same vectors (padding does not leak into the mean).
    alone = np.vstack([float32.encode([t]) for t in TEXTS])
    assert np.abs(ours - alone).max() < 1e-5


def test_bfloat16_stays_close_to_float32(float32: SentenceTransformerEncoder) -> None:
    bf16 = SentenceTransformerEncoder(bundled_minilm_path(), precision="bfloat16")
    assert bf16.precision == "bfloat16"
    ours = bf16.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # pooled in float32
    assert (ours * float32.encode(TEXTS)).sum(axis=1).min() > 0.999


def test_the_cpu_check_asks_for_bfloat16_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert encoder_module.native_bfloat16() is False  # e.g. AVX-512 without BF16: emulated
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert encoder_module.native_bfloat16() is True


def test_auto_takes_float32_without_native_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder_module, "native_bfloat16", lambda: False)
    assert SentenceTransformerEncoder(bundled_minilm_path(), precision="auto").precision == "float32"


def test_the_shipped_model_runs_traced_in_both_precisions(float32: SentenceTransformerEncoder) -> None:
    assert float32._mean_pool is not None and float32._mean_pool.traced
    bf16 = SentenceTransformerEncoder(bundled_minilm_path(), precision="bfloat16")
    assert bf16._mean_pool is not None and bf16._mean_pool.traced


class Toy(torch.nn.Module):
    """A stand-in embedding model: ids -> one unit vector per row (mask ignored)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(16, 4)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.embed(ids))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.hidden(ids).mean(1), dim=1)


def _probe() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[5, 6, 7, 8, 9], [3, 4, 0, 0, 0]])
    return ids, (ids > 0).long()


def test_a_trace_that_froze_a_shape_branch_is_not_used(caplog: pytest.LogCaptureFixture) -> None:
    class ShapeBranch(Toy):
        def hidden(self, ids: torch.Tensor) -> torch.Tensor:
            hidden = self.embed(ids)
            if ids.shape[1] > 3:  # a trace of the padded probe records only this branch
                hidden = hidden.flip(-1)
            return hidden

    module = ShapeBranch().eval()
    forward, traced = encoder_module._traced_or_eager(module, _probe())
    assert traced is False and forward is module
    assert "differs from the model" in caplog.text


def test_a_model_that_cannot_be_traced_runs_eagerly(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Toy):
        def hidden(self, ids: torch.Tensor) -> torch.Tensor:
            if torch.jit.is_tracing():  # stands for an operator the tracer refuses
                raise RuntimeError("no tracing here")
            return super().hidden(ids)

    module = Broken().eval()
    forward, traced = encoder_module._traced_or_eager(module, _probe())
    assert traced is False and forward is module
    assert "tracing failed" in caplog.text


def test_a_faithful_trace_is_used_and_follows_other_lengths() -> None:
    module = Toy().eval()
    forward, traced = encoder_module._traced_or_eager(module, _probe())
    assert traced is True and forward is not module
    longer = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    with torch.inference_mode():
        assert torch.allclose(forward(longer, torch.ones_like(longer)), module(longer, torch.ones_like(longer)))
