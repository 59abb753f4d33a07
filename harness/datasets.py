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
    """Float features -> the model's int8 input as the reference firmware quantizes them:
    round half away from zero, add zero point, clamp (harness/mlperf.py)."""
    if t.quant is None:
        raise DatasetError(f"input '{t.name}' is {t.dtype} without quantization: cannot quantize float data")
    from harness.mlperf import quantize_half_away

    return quantize_half_away(values, t.quant.scale, t.quant.zero_point)


def load_dataset(directory: str | Path, model: Model, limit: int | None = None) -> list[Sample]:
    """Read an EnergyRunner dataset directory (``*.bin`` + ``y_labels.csv``).

    Each ``.bin`` is one input in the model's input type (for the MLPerf ic01/vww01
    models: uint8 RGB, taken as byte - 128 like the reference firmware), or (AD) a
    float32 spectrogram cut into windows given by y_labels.csv's window/stride bytes.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DatasetError(f"{d}: dataset directory not found")
    if len(model.inputs) != 1:
        raise DatasetError(f"{d}: dataset inputs need a single-input model; {model.path} has {len(model.inputs)}")
    t = model.input_tensors()[0]
    label_file = d / "y_labels.csv"
    labels, line_of = _read_labels(label_file) if label_file.exists() else ({}, {})
    classes = _class_count(model)
    # A file without its own row is windowed like the dataset's other files.
    windowed = next((k for k, m in labels.items() if len(m) >= 4), None)
    default_window = labels[windowed][2:4] if windowed is not None else None
    from harness.mlperf import from_uint8, input_wire

    uint8 = input_wire(model) == "uint8"
    files = sorted(d.glob("*.bin"))
    if not files:
        raise DatasetError(f"{d}: no *.bin input files")
    samples: list[Sample] = []
    for path in files:
        raw = path.read_bytes()
        meta = labels.get(path.name, [])
        where = f"{label_file}: line {line_of.get(path.name)}"
        label = _int_field(meta[1], "label", path.name, where) if len(meta) >= 2 else None
        if label is not None and classes is not None and not 0 <= label < classes:
            raise DatasetError(f"{where}: input {path.name} has label {label}, but the model has {classes} "
                               f"classes (labels 0..{classes - 1}): fix the label or use the matching model")
        if len(raw) == t.nbytes:
            # ic01/vww01 files are uint8 RGB; the model takes byte - 128 (the reference firmware's).
            values = from_uint8(raw) if uint8 else np.frombuffer(raw, dtype=t.numpy_dtype)
            samples.append(Sample(path.name, (values.reshape(t.shape),), label))
        elif len(raw) % 4 == 0 and t.dtype == "int8" and (len(meta) >= 4 or default_window):
            fields = meta[2:4] if len(meta) >= 4 else default_window or []
            if len(meta) < 4 and windowed is not None:
                where = f"{label_file}: line {line_of[windowed]}"
            window, stride = (_int_field(v, what, path.name, where) for v, what in zip(fields, ("window", "stride")))
            wn, sn = window // 4, stride // 4
            if wn <= 0 or sn <= 0:
                raise DatasetError(f"{where}: window {window} and stride {stride} bytes of input {path.name} "
                                   "must each be at least 4 (one float32)")
            floats = np.frombuffer(raw, dtype="<f4")
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


def _read_labels(label_file: Path) -> tuple[dict[str, list[str]], dict[str, int]]:
    """y_labels.csv rows: file name -> the other fields, and file name -> line number."""
    try:
        raw = label_file.read_bytes()
    except OSError as e:
        raise DatasetError(f"{label_file}: cannot read ({e.strerror})") from e
    lines: list[str] = []
    for n, line in enumerate(raw.splitlines(), start=1):
        try:
            lines.append(line.decode("utf-8-sig" if n == 1 else "utf-8"))
        except UnicodeDecodeError as e:
            raise DatasetError(f"{label_file}: line {n} is not UTF-8 text (byte {e.start + 1}: "
                               f"0x{line[e.start]:02x}): y_labels.csv must be text lines "
                               "'file,classes,label'") from e
    labels: dict[str, list[str]] = {}
    line_of: dict[str, int] = {}
    reader = csv.reader(lines)
    try:
        for row in reader:
            if row:
                labels[row[0].strip()] = [c.strip() for c in row[1:]]
                line_of[row[0].strip()] = reader.line_num
    except csv.Error as e:
        raise DatasetError(f"{label_file}: line {reader.line_num}: not CSV ({e})") from e
    return labels, line_of


def _int_field(value: str, what: str, name: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DatasetError(f"{where}: {what} {value!r} of input {name} is not an integer") from None


def _class_count(model: Model) -> int | None:
    """Classes of a classifier (its first output's elements); None for an autoencoder,
    whose labels are normal/anomalous (the rule of harness.bench.accuracy_kind), or for
    a single-value output."""
    ins, outs = model.input_tensors(), model.output_tensors()
    if not outs or (len(ins) == len(outs) == 1 and ins[0].num_elements == outs[0].num_elements):
        return None
    n = outs[0].num_elements
    return n if n >= 2 else None
