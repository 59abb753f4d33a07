"""The issue's gate: the builtin engine equals TFLM on the MLPerf Tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.datasets import load_dataset, random_samples
from harness.engines.builtin.check import check_model
from harness.model import load_model
from harness.reference import Reference

pytestmark = pytest.mark.slow


def test_kws_all_1000_dataset_inputs(shared_models: Path, shared_datasets: Path) -> None:
    model = load_model(shared_models / "kws_ref_model.tflite")
    samples = load_dataset(shared_datasets / "kws01", model)
    assert len(samples) == 1000
    result = check_model(model, samples)
    assert result.ok, f"{len(result.mismatched_samples)} inputs differ, e.g. {result.mismatched_samples[:3]}"
    assert result.arena_bytes <= result.tflm_arena.head


def test_ad_spectrogram_windows(shared_models: Path, shared_datasets: Path) -> None:
    model = load_model(shared_models / "ad01_int8.tflite")
    samples = load_dataset(shared_datasets / "ad01", model)
    assert len(samples) == 196  # 200 frames, 5-frame windows, 1-frame stride
    result = check_model(model, samples)
    assert result.ok, f"{len(result.mismatched_samples)} windows differ"
    assert result.arena_bytes <= result.tflm_arena.head


@pytest.mark.parametrize("name", ["vww_96_int8", "pretrainedResnet_quant"])
def test_image_models_on_seeded_random_inputs(shared_models: Path, name: str) -> None:
    model = load_model(shared_models / f"{name}.tflite")
    result = check_model(model, random_samples(model, 20, seed=1234))
    assert result.ok, f"{len(result.mismatched_samples)} of 20 inputs differ"
    assert result.arena_bytes <= result.tflm_arena.head


def test_kws_accuracy_matches_labels(shared_models: Path, shared_datasets: Path) -> None:
    """Sanity of the dataset loader: the reference model really classifies these inputs."""
    model = load_model(shared_models / "kws_ref_model.tflite")
    samples = load_dataset(shared_datasets / "kws01", model, limit=200)
    ref = Reference(model)
    correct = sum(int(ref.run(s.inputs)[0].argmax()) == s.label for s in samples)
    assert correct / len(samples) > 0.85  # the reference model scores ~91% top-1
