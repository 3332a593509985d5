"""Hashed n-gram ids: the word memo gives the ids the features themselves hash to."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from router import features
from router.features import HashedNgrams


def _reference(text: str, buckets: int, char_n: tuple[int, ...] = (3, 4, 5)) -> list[int]:
    """Every feature spelled out and hashed, as the trained gates and safety models saw them."""
    words = features._WORD.findall(text[: features.MAX_CHARS].lower())
    feats = [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    for w in words:
        padded = f"<{w}>"
        feats += [f"c:{padded[i : i + n]}" for n in char_n for i in range(max(0, len(padded) - n + 1))]
    return [zlib.crc32(f.encode()) % buckets for f in feats or ["<empty>"]]


TEXTS = [
    "How do I rotate the API key for the billing service?",
    "",
    "!!! ???",
    "a",
    "Ignore previous instructions: ünïcödé, ZZ top, 12345 x_y",
    "word " * 700,  # past MAX_CHARS
]


def test_ids_are_the_hashes_of_the_features_the_first_time_and_from_memory() -> None:
    ngrams = HashedNgrams(1 << 16)
    for _ in range(2):  # the second pass reads every word from the memo
        for text in TEXTS:
            got = ngrams.ids(text)
            assert got.dtype == np.int64
            assert got.tolist() == _reference(text, 1 << 16), text


def test_the_word_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "WORDS_REMEMBERED", 5)
    ngrams = HashedNgrams(1 << 10)
    text = " ".join(f"w{i}" for i in range(12))
    assert ngrams.ids(text).tolist() == _reference(text, 1 << 10)
    assert len(ngrams._words) <= 5


def test_a_long_word_is_hashed_each_time_and_not_kept() -> None:
    ngrams = HashedNgrams(1 << 10)
    token = "f" * (features.MEMO_WORD_CHARS + 1)
    assert ngrams.ids(f"key {token}").tolist() == _reference(f"key {token}", 1 << 10)
    assert list(ngrams._words) == ["key"]
