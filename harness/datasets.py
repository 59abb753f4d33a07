"""Model inputs: EnergyRunner dataset directories and seeded random tensors."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DatasetError
from harness.model import Model, Tensor


@dataclass(frozen=True)
class Sample:
    """One inference's inputs (one array per model input) and its label if known.

    ``features`` keeps the float values a quantized input was made from (the
    anomaly-detection windows), which the MLPerf Tiny AD score compares the
    model's output with.
    """

    name: str
    inputs: tuple[np.ndarray, ...]
    label: int | None = None
    features: np.ndarray | None = None


def random_samples(model: Model, count: int, seed: int = 0) -> list[Sample]:
    """Seeded inputs covering each input's full range (int8: -128..127)."""
    rng = np.random.default_rng(seed)
    samples = []
    for k in range(count):
        arrays = []
        for t in model.input_tensors():
            arrays.append(_random_tensor(rng, t))
        samples.append(Sample(f"random-{seed}-{k}", tuple(arrays)))
    return samples


def _random_tensor(rng: np.random.Generator, t: Tensor) -> np.ndarray:
    if t.dtype in ("int8", "uint8", "int16"):
        info = np.iinfo(t.numpy_dtype)
        values: np.ndarray = rng.integers(info.min, info.max + 1, size=t.shape, dtype=np.int64)
        return values.astype(t.numpy_dtype)
    if t.dtype == "float32":
        return rng.uniform(-4.0, 4.0, size=t.shape).astype(np.float32)
    raise DatasetError(f"cannot make random input for tensor '{t.name}' of type {t.dtype}")


def quantize_input(values: np.ndarray, t: Tensor) -> np.ndarray:
    """Float features -> the model's int8 input: round to nearest, add zero point, clamp."""
    if t.quant is None:
        raise DatasetError(f"input '{t.name}' is {t.dtype} without quantization: cannot quantize float data")
    q = np.round(values.astype(np.float32) / np.float32(t.quant.scale)) + t.quant.zero_point
    out: np.ndarray = np.clip(q, -128, 127).astype(np.int8)
    return out


def load_dataset(directory: str | Path, model: Model, limit: int | None = None) -> list[Sample]:
    """Read an EnergyRunner dataset directory (``*.bin`` + ``y_labels.csv``).

    Each ``.bin`` is one input in the model's input type, or (AD) a float32
    spectrogram cut into windows given by y_labels.csv's window/stride bytes.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DatasetError(f"{d}: dataset directory not found")
    if len(model.inputs) != 1:
        raise DatasetError(f"{d}: dataset inputs need a single-input model; {model.path} has {len(model.inputs)}")
    t = model.input_tensors()[0]
    labels: dict[str, list[str]] = {}
    label_file = d / "y_labels.csv"
    if label_file.exists():
        with label_file.open() as f:
            for row in csv.reader(f):
                if row:
                    labels[row[0].strip()] = [c.strip() for c in row[1:]]
    # A file without its own row is windowed like the dataset's other files.
    default_window = next((m[2:4] for m in labels.values() if len(m) >= 4), None)
    files = sorted(d.glob("*.bin"))
    if not files:
        raise DatasetError(f"{d}: no *.bin input files")
    samples: list[Sample] = []
    for path in files:
        raw = path.read_bytes()
        meta = labels.get(path.name, [])
        label = int(meta[1]) if len(meta) >= 2 else None
        if len(raw) == t.nbytes:
            samples.append(Sample(path.name, (np.frombuffer(raw, dtype=t.numpy_dtype).reshape(t.shape),), label))
        elif len(raw) % 4 == 0 and t.dtype == "int8" and (len(meta) >= 4 or default_window):
            window, stride = (int(v) for v in (meta[2:4] if len(meta) >= 4 else default_window or []))
            floats = np.frombuffer(raw, dtype="<f4")
            wn, sn = window // 4, stride // 4
            if wn != t.num_elements:
                raise DatasetError(f"{path}: window of {wn} floats does not fit input '{t.name}' "
                                   f"of {t.num_elements} elements")
            for k, start in enumerate(range(0, len(floats) - wn + 1, sn)):
                window_floats = floats[start:start + wn]
                win = quantize_input(window_floats, t).reshape(t.shape)
                samples.append(Sample(f"{path.name}#{k}", (win,), label, window_floats.reshape(t.shape)))
        else:
            raise DatasetError(
                f"{path}: {len(raw)} bytes, but input '{t.name}' {list(t.shape)} {t.dtype} needs "
                f"{t.nbytes} (or a float32 file with window/stride bytes in y_labels.csv)"
            )
        if limit is not None and len(samples) >= limit:
            return samples[:limit]
    return samples
