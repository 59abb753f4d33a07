"""Calibration data for the recipes: the benchmark's own dataset, as float32 inputs.

KWS: the kws01 inputs (int8) dequantized with the MLPerf reference int8 model's input
scale and zero point. AD: the ad01 spectrogram windows (float32 features). A float
model is matched to its benchmark by file name (or ``benchmark`` given).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.datasets import Sample, load_dataset
from harness.model import Tensor, load_model
from harness.recipes import Calibration, RecipeError

# Float model file stem -> MLPerf Tiny short name (harness.bench.MLPERF_TINY).
FLOAT_MODELS = {"kws_ref_model_float32": "kws", "ad01_fp32": "ad", "vww_96_float": "vww",
                "pretrainedResnet": "ic"}


def benchmark_of(float_model: Path) -> str | None:
    return FLOAT_MODELS.get(float_model.stem)


def reference_model(benchmark: str) -> Path | None:
    """The MLPerf reference int8 model of ``benchmark``, when the shared files are here."""
    from harness.bench import MLPERF_TINY, shared_dir

    shared = shared_dir()
    if shared is None or benchmark not in MLPERF_TINY:
        return None
    path = shared / "models" / "mlperf_tiny" / MLPERF_TINY[benchmark][0]
    return path if path.is_file() else None


def dataset_dir(benchmark: str) -> Path | None:
    from harness.bench import MLPERF_TINY, shared_dir

    shared = shared_dir()
    if shared is None or benchmark not in MLPERF_TINY:
        return None
    d = shared / "datasets" / MLPERF_TINY[benchmark][1]
    return d if d.is_dir() and any(d.glob("*.bin")) else None


def float_samples(benchmark: str, dataset: Path | None = None, limit: int | None = None) -> list[Sample]:
    """The dataset's samples with ``features`` = the float32 input values.

    Read through the reference int8 model (its input size, and its scale to dequantize).
    """
    ref = reference_model(benchmark)
    d = dataset or dataset_dir(benchmark)
    if ref is None or d is None:
        raise RecipeError(f"no calibration data for {benchmark!r}: the recipes calibrate on the benchmark's "
                          "dataset (../shared/datasets and the MLPerf reference int8 model); none found")
    model = load_model(ref)
    t = model.input_tensors()[0]
    out = []
    for s in load_dataset(d, model, limit=limit):
        feats = s.features if s.features is not None else _dequantize(s.inputs[0], t)
        out.append(Sample(s.name, s.inputs, s.label, np.asarray(feats, np.float32)))
    return out


def _dequantize(values: np.ndarray, t: Tensor) -> np.ndarray:
    assert t.quant is not None
    return (values.astype(np.float32) - np.float32(t.quant.zero_point)) * np.float32(t.quant.scale)


def calibration_for(benchmark: str | None, dataset: Path | None = None, limit: int | None = None
                    ) -> Calibration | None:
    """The benchmark's calibration set, or None (recipes that quantize then refuse)."""
    if benchmark is None:
        return None
    samples = float_samples(benchmark, dataset, limit)
    return Calibration(tuple((s.features,) for s in samples if s.features is not None),
                       f"{benchmark}:{dataset or dataset_dir(benchmark)}")
