"""The safety check's second reading (router/safety/reader.py): a tuned encoder pass for
the requests the safety model is unsure of, which can raise a score and never lower one."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from bench.safety_reader import BANDS, WEIGHTS, _flags
from router.encoder import Encoder
from router.errors import ArtifactError
from router.safety.model import CATEGORIES, SHIPPED, SafetyModel, SafetyScores
from router.safety.reader import SHIPPED_READER, ReaderManifest, SafetyReader, blend, second_reading

MANIFEST = ReaderManifest(
    version="reader-test",
    base_encoder="all-MiniLM-L6-v2",
    categories=CATEGORIES,
    temperatures={c: 1.0 for c in CATEGORIES},
    band=0.2,
    threshold=0.8,
    safety_model="safety-v2",
    data_hash="",
    seed=0,
    created_at="",
)
THRESHOLD = 0.87  # the safety model's


def _scores(injection: float, jailbreak: float = 0.01, extraction: float = 0.01) -> SafetyScores:
    return SafetyScores({"injection": injection, "jailbreak": jailbreak, "extraction": extraction}, ("override",))


def test_a_category_the_reader_is_sure_of_is_raised_to_the_threshold_or_over() -> None:
    read = second_reading(_scores(0.4), [0.8, 0.1, 0.95], MANIFEST, THRESHOLD)
    assert read.scores["injection"] == pytest.approx(THRESHOLD)  # exactly at the reader's threshold
    assert THRESHOLD < read.scores["extraction"] < 1.0  # above it, by how far above
    assert read.scores["jailbreak"] == 0.01  # under the reader's threshold: as it was
    assert read.flagged({c: THRESHOLD for c in CATEGORIES}).keys() == {"injection", "extraction"}
    assert read.rules == ("override", "second_reading")


def test_the_reader_never_lowers_a_score_and_says_nothing_when_it_raised_none() -> None:
    before = _scores(0.86, 0.5)
    read = second_reading(before, [0.0, 0.79, 0.0], MANIFEST, THRESHOLD)
    assert read.scores == before.scores
    assert read.rules == before.rules  # no "second_reading" when nothing changed
    # A score already over where the reader would lift it stays.
    high = second_reading(_scores(0.99), [0.81, 0.0, 0.0], MANIFEST, THRESHOLD)
    assert high.scores["injection"] == 0.99 and high.rules == ("override",)


def test_the_blend_weighs_the_models_top_score_in() -> None:
    assert blend(0.9, 0.6, 0.0) == 0.9  # weight 0: the reader's own probability
    # the weighted mean of the logits: a model score over the reader's pulls it up,
    # under it pulls it down, and an even model score (0.5) halves the reader's logit
    assert 0.9 < float(blend(0.9, 0.99, 1.0)) < 0.99
    assert 0.6 < float(blend(0.9, 0.6, 1.0)) < 0.9
    assert float(blend(0.9, 0.5, 1.0)) == pytest.approx(0.75, abs=1e-5)  # logit ln 9 -> ln 3
    arrays = blend(np.array([0.9, 0.2]), np.array([0.6, 0.8]), 0.5)
    assert arrays.shape == (2,) and arrays[0] == pytest.approx(float(blend(0.9, 0.6, 0.5)))


def test_with_a_model_weight_the_model_being_surer_needs_less_from_the_reader() -> None:
    weighted = replace(MANIFEST, model_weight=1.0, threshold=0.7)
    # the same reading: flagged where the model's top score is high, not where it is low
    assert "second_reading" in second_reading(_scores(0.8), [0.75, 0.0, 0.0], weighted, THRESHOLD).rules
    assert second_reading(_scores(0.3), [0.75, 0.0, 0.0], weighted, THRESHOLD).rules == ("override",)
    # and the reader alone (weight 0) flags both at its threshold
    alone = replace(weighted, model_weight=0.0)
    assert "second_reading" in second_reading(_scores(0.3), [0.75, 0.0, 0.0], alone, THRESHOLD).rules


def test_a_manifest_without_a_model_weight_reads_as_weight_zero() -> None:
    raw = json.loads(MANIFEST.to_json())
    del raw["model_weight"]
    assert ReaderManifest.from_json(json.dumps(raw)).model_weight == 0.0


def test_the_bench_decides_as_the_server_does() -> None:
    """bench/safety_reader.py chooses the band, weight and threshold with ``_flags`` (the
    blend of the reader's highest category); the server flags with ``second_reading``
    per category. Over random readings the two agree."""
    rng = np.random.default_rng(3)
    for weight in WEIGHTS:
        manifest = replace(MANIFEST, model_weight=weight, threshold=0.8)
        model = rng.uniform(0, 1, size=(400, 3)).astype(np.float32)
        reader = rng.uniform(0, 1, size=(400, 3)).astype(np.float32)
        bench = _flags(model, reader, THRESHOLD, manifest.band, manifest.threshold, weight)
        for row in range(len(model)):
            scores = SafetyScores(dict(zip(CATEGORIES, map(float, model[row]), strict=True)))
            wanted = manifest.band <= max(scores.scores.values()) < THRESHOLD
            read = second_reading(scores, reader[row].tolist(), manifest, THRESHOLD) if wanted else scores
            assert bool(read.flagged({c: THRESHOLD for c in CATEGORIES})) == bool(bench[row]), (weight, row)


def test_a_negative_model_weight_is_refused(encoder: Encoder) -> None:
    reader = SafetyReader.load(SHIPPED_READER, encoder)
    with pytest.raises(ArtifactError, match="model_weight"):
        SafetyReader(replace(reader.manifest, model_weight=-1.0), reader.encoder, reader._w, reader._b)


@pytest.mark.parametrize(
    ("top", "asked"),
    [(0.01, False), (0.19, False), (0.2, True), (0.5, True), (0.869, True), (THRESHOLD, False), (0.99, False)],
)
def test_the_reader_is_asked_only_in_its_band(top: float, asked: bool) -> None:
    reader = SafetyReader.__new__(SafetyReader)
    reader.manifest = MANIFEST
    assert reader.wanted(_scores(top), THRESHOLD) is asked


def test_a_missing_or_corrupt_reader_is_an_artifact_error(tmp_path, encoder: Encoder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ArtifactError, match="safety reader"):
        SafetyReader.load(tmp_path / "nothing-here", encoder)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="safety reader"):
        SafetyReader.load(tmp_path / "broken", encoder)


def test_the_shipped_reader_was_chosen_for_the_shipped_model(encoder: Encoder) -> None:
    reader = SafetyReader.load(SHIPPED_READER, encoder)
    model = SafetyModel.load(SHIPPED)
    manifest = reader.manifest
    assert manifest.safety_model == model.version
    # chosen by bench/safety_reader.py --write: a band it offers, a threshold under 1,
    # temperatures fitted on validation rows (the trainer writes 1.0 and band 1.0)
    assert manifest.band in BANDS and manifest.band < model.manifest.threshold
    assert manifest.model_weight in WEIGHTS
    assert 0.5 <= manifest.threshold < 1.0
    assert all(t != 1.0 for t in manifest.temperatures.values())


def test_a_reader_chosen_for_another_model_fails_the_start(encoder: Encoder) -> None:
    """Its band and threshold hold beside one model: a reader never passed through
    bench/safety_reader.py --write, or a model retrained since, is refused at start."""
    from safetensors.numpy import load_file

    from backend.guard.safety import InputSafety
    from experts.registry import ExpertRegistry
    from router.safety.model import WEIGHTS
    from router.safety.reader import HEAD_FILE
    from tests.conftest import ROOT

    registry = ExpertRegistry.from_yaml(ROOT / "experts" / "experts.yaml")
    reader = SafetyReader.load(SHIPPED_READER, encoder)
    model = SafetyModel.load(SHIPPED)
    InputSafety(model, encoder, registry, reader)  # the shipped pair
    head = load_file(str(SHIPPED_READER / HEAD_FILE))
    untuned = SafetyReader(replace(reader.manifest, safety_model=""), reader.encoder, head["w"], head["b"])
    with pytest.raises(ValueError, match="tuned for the safety model"):
        InputSafety(model, encoder, registry, untuned)
    retrained = SafetyModel(replace(model.manifest, version="safety-v9"), load_file(str(SHIPPED / WEIGHTS)))
    with pytest.raises(ValueError, match="'safety-v9'"):
        InputSafety(retrained, encoder, registry, reader)
