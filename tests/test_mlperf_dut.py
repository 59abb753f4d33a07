"""The firmware as the MLPerf Tiny reference DUT: EnergyRunner file bytes in (converted on
the device as the reference submissions do), the benchmark id and m-results out."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.build import build_firmware
from harness.datasets import load_dataset
from harness.engines.builtin import generate
from harness.mlperf import from_uint8, input_wire, mlperf_id, quantize_half_away, to_wire
from harness.model import load_model
from harness.reference import Reference
from harness.targets import find_target
from tests.conftest import MODELS
from tests.test_firmware import QemuDut, needs_arm_gcc, needs_qemu

CHUNK = 500  # bytes per "db <hex>" command (the firmware takes 1100 characters)


def _model(name: str):  # type: ignore[no-untyped-def]
    path = MODELS / name
    if not path.exists():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    return load_model(path)


def _load(dut: QemuDut, data: bytes) -> None:
    """What the runner's DUT.load does: db load N, then hex chunks."""
    assert dut.command(f"db load {len(data)}") == [f"m-[Expecting {len(data)} bytes]"]
    lines: list[str] = []
    for pos in range(0, len(data), CHUNK):
        lines = dut.command("db " + data[pos:pos + CHUNK].hex())
    assert lines == ["m-load-done"]


def _results(lines: list[str]) -> str:
    (line,) = [ln for ln in lines if ln.startswith("m-results-[")]
    return line


def test_the_four_models_are_known_by_their_benchmark_ids() -> None:
    ids = {name: mlperf_id(_model(name)) for name in ("kws_ref_model.tflite", "vww_96_int8.tflite",
                                                      "pretrainedResnet_quant.tflite", "ad01_int8.tflite")}
    assert ids == {"kws_ref_model.tflite": "kws01", "vww_96_int8.tflite": "vww01",
                   "pretrainedResnet_quant.tflite": "ic01", "ad01_int8.tflite": "ad01"}
    assert mlperf_id(SimpleNamespace(sha256="0" * 64)) is None  # type: ignore[arg-type]  # any other model
    assert [input_wire(_model(n)) for n in ("kws_ref_model.tflite", "vww_96_int8.tflite", "ad01_int8.tflite")] \
        == ["raw", "uint8", "float32"]


def test_half_away_from_zero_quantization_matches_c_round() -> None:
    values = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999997, -2.5000002, 1e9, -1e9], dtype=np.float32)
    assert quantize_half_away(values, 1.0, 0).tolist() == [1, 2, 3, -1, -2, 0, -3, 127, -128]
    assert quantize_half_away(np.array([0.25], dtype=np.float32), 0.5, -3).tolist() == [-2]  # 0.5 -> 1, -3


@pytest.mark.qemu
@needs_qemu
@needs_arm_gcc
@pytest.mark.parametrize("name,benchmark", [("pretrainedResnet_quant.tflite", "ic01"),
                                            ("vww_96_int8.tflite", "vww01")])
def test_uint8_energyrunner_file_is_shifted_on_the_device(name: str, benchmark: str, tmp_path: Path) -> None:
    """An IC- or VWW-shaped EnergyRunner file (uint8 RGB): the firmware subtracts 128 as the
    reference does, and its output equals the interpreter's on that converted input; the
    dataset reader converts the same way."""
    model = _model(name)
    target = find_target("cortex-m4")
    image = build_firmware(generate(model), target, cache_dir=tmp_path / "fw")
    t = model.input_tensors()[0]
    raw = np.random.default_rng(7).integers(0, 256, t.nbytes, dtype=np.uint8).tobytes()
    expected = Reference(model).run([from_uint8(raw).reshape(t.shape)])

    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "img_0.bin").write_bytes(raw)
    (tmp_path / "ds" / "y_labels.csv").write_text("img_0.bin,%d,1\n" % model.output_tensors()[0].num_elements)
    (sample,) = load_dataset(tmp_path / "ds", model)
    assert np.array_equal(sample.inputs[0], from_uint8(raw).reshape(t.shape))
    assert to_wire(model, sample.inputs[0].tobytes()) == raw  # what tinyhil's bench sends

    dut = QemuDut(target, image.elf)
    try:
        assert dut.command("profile")[1] == f"m-model-[{benchmark}]"
        _load(dut, raw)
        infer = dut.command("infer 1 0")
        results = dut.command("results")
        assert bytes.fromhex(results[1].removeprefix("m-th-output-")) == b"".join(a.tobytes() for a in expected)
        assert _results(infer) == results[0]
    finally:
        dut.close()


@pytest.mark.qemu
@needs_qemu
@needs_arm_gcc
def test_ad_float32_window_is_quantized_on_the_device_and_scored_like_the_reference(
        tmp_path: Path, shared_datasets: Path) -> None:
    model = _model("ad01_int8.tflite")
    t, o = model.input_tensors()[0], model.output_tensors()[0]
    assert t.quant is not None and o.quant is not None
    target = find_target("cortex-m4")
    image = build_firmware(generate(model), target, cache_dir=tmp_path / "fw")
    clip = (shared_datasets / "ad01" / "normal_id_01_00000000_hist_librosa.bin").read_bytes()
    window = np.frombuffer(clip[512 * 3:512 * 3 + 2560], dtype="<f4")  # the runner's 4th segment
    quantized = quantize_half_away(window, t.quant.scale, t.quant.zero_point)
    (out,) = Reference(model).run([quantized.reshape(t.shape)])
    deq = (out.reshape(-1).astype(np.float32) - o.quant.zero_point) * np.float32(o.quant.scale)
    score = float(np.mean((deq - window) ** 2))

    dut = QemuDut(target, image.elf)
    try:
        assert dut.command("profile")[1] == "m-model-[ad01]"
        _load(dut, window.tobytes())  # db load 2560: float32, as the runner sends it
        line = _results(dut.command("infer 1 0"))
        assert abs(float(line[len("m-results-["):-1]) - score) <= 0.0006, (line, score)
        assert len(line[len("m-results-["):-1].split(",")) == 1  # one score, not 640 numbers
        results = dut.command("results")
        assert bytes.fromhex(results[1].removeprefix("m-th-output-")) == out.tobytes()
        # tinyhil's own path: the int8 input of the same size is taken as it is.
        _load(dut, quantized.tobytes())
        dut.command("infer 1 0")
        assert bytes.fromhex(dut.command("results")[1].removeprefix("m-th-output-")) == out.tobytes()
        assert dut.command("db load 3201")[0] == "e-[db load: 3201 bytes; the input buffer holds 1 to 3200]"
    finally:
        dut.close()
