"""What makes a firmware an MLPerf Tiny DUT for the official runner and EnergyRunner.

The reference firmware (mlcommons/tiny ``benchmark/api`` and the reference submissions)
names its benchmark in ``m-model-[...]`` (``kws01``, ``vww01``, ``ic01``, ``ad01``: the
runner's test names and dataset folders), converts the EnergyRunner file bytes it is
sent into the model's input on the device, and ends every ``infer`` with
``m-results-[...]``. tinyhil's firmware does the same for the four MLPerf Tiny models
(recognised by their sha256, wherever the file lives):

* ``ic01``/``vww01``: the files are uint8 RGB; the model takes int8 = byte - 128.
* ``ad01``: the runner sends float32 windows; the device quantizes them with the
  model's input scale and zero point (round half away from zero, as the reference's
  ``QuantizeFloatToInt8``) and reports one score, the mean squared error between the
  float window and the dequantized output.
* ``kws01``: int8 MFCCs, sent as they are.

``to_wire`` is the inverse on the host: the bytes tinyhil sends with ``db`` for a model
input it holds, so the device's conversion gives back exactly that input.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import numpy as np

from harness.model import Model

Wire = Literal["raw", "uint8", "float32"]

# The MLPerf Tiny benchmark id of each reference int8 model (harness/models.py pins them).
BENCHMARK_IDS = {"kws": "kws01", "vww": "vww01", "ic": "ic01", "ad": "ad01"}


@cache
def _ids_by_sha256() -> dict[str, str]:
    from harness.models import pinned_files

    return {f.sha256: BENCHMARK_IDS[f.benchmark] for f in pinned_files() if f.kind == "model"}


def mlperf_id(model: Model) -> str | None:
    """``kws01``/``vww01``/``ic01``/``ad01`` for the MLPerf Tiny reference int8 models
    (by sha256), else None."""
    return _ids_by_sha256().get(model.sha256)


def input_wire(model: Model) -> Wire:
    """How the EnergyRunner bytes of this model's input look on the wire."""
    ident = mlperf_id(model)
    if ident in ("ic01", "vww01"):
        return "uint8"
    if ident == "ad01":
        return "float32"
    return "raw"


def wire_bytes(wire: str, data: bytes) -> bytes:
    """The ``db`` bytes for model input ``data``: a uint8 model's get each byte + 128
    (mod 256), the device subtracting it again; raw and float32 models take their int8
    input as it is (a float32 model also takes int8 when the length says so)."""
    if wire == "uint8":
        return (np.frombuffer(data, dtype=np.uint8) ^ 0x80).tobytes()
    return data


def to_wire(model: Model, data: bytes) -> bytes:
    """:func:`wire_bytes` for ``model``'s wire."""
    return wire_bytes(input_wire(model), data)


def from_uint8(raw: bytes) -> np.ndarray:
    """An IC/VWW EnergyRunner file's uint8 RGB bytes as the model's int8 input (byte - 128)."""
    return (np.frombuffer(raw, dtype=np.uint8) ^ 0x80).view(np.int8)


def quantize_half_away(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float32 values -> int8 as the reference firmware does: ``round(v / scale) + zp``
    with C's round (half away from zero) on the float32 quotient, clamped."""
    q = values.astype(np.float32) / np.float32(scale)
    wide = q.astype(np.float64)  # exact: + 0.5 cannot round a float32 value here
    rounded = np.sign(wide) * np.floor(np.abs(wide) + 0.5)
    out: np.ndarray = np.clip(rounded + zero_point, -128, 127).astype(np.int8)
    return out


__all__ = ["BENCHMARK_IDS", "Wire", "from_uint8", "input_wire", "mlperf_id", "quantize_half_away", "to_wire",
           "wire_bytes"]
