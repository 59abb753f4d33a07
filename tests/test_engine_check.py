"""`tinyhil engine check`'s weights figure is the firmware's flash_weights_bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.build import build_firmware, find_toolchain
from harness.cli import main
from harness.engines.builtin import generate
from harness.errors import ToolMissingError
from harness.metrics import compute_metrics, elf_sizes
from harness.model import load_model
from harness.results import SCHEMA_VERSION
from harness.runners.base import RunRecord
from harness.targets import find_target

MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite",
          "ic": "pretrainedResnet_quant.tflite", "ad": "ad01_int8.tflite"}


@pytest.fixture(scope="module")
def arm_gcc() -> str:
    """Build-only tests need the cross compiler, not QEMU."""
    try:
        return str(find_toolchain().gcc)
    except ToolMissingError as e:
        pytest.skip(str(e))


def _firmware_weights(model_path: Path, target: str, cache: Path) -> int:
    """flash_weights_bytes as a bench row gets it: the built image's ELF sizes through compute_metrics."""
    t = find_target(target)
    image = build_firmware(generate(load_model(model_path)), t, cache_dir=cache)
    record = RunRecord("qemu", target, image.elf, error="not run: sizes only")
    return compute_metrics(record, elf_sizes(image.elf), t).flash_weights_bytes


@pytest.mark.parametrize("bench", list(MODELS))
def test_generated_weights_equal_the_firmware_elf(bench: str, shared_models: Path, arm_gcc: str,
                                                  tmp_path: Path) -> None:
    path = shared_models / MODELS[bench]
    gen = generate(load_model(path))
    assert gen.weights_bytes == _firmware_weights(path, "cortex-m4", tmp_path)


def test_weights_are_the_same_on_another_core(shared_models: Path, arm_gcc: str, tmp_path: Path) -> None:
    path = shared_models / MODELS["kws"]
    assert generate(load_model(path)).weights_bytes == _firmware_weights(path, "cortex-m33", tmp_path)


@pytest.mark.parametrize("bench", ["kws", "ad"])
def test_engine_check_json_weights_equal_the_firmware(bench: str, capsys: pytest.CaptureFixture[str],
                                                      shared_models: Path, arm_gcc: str, tmp_path: Path) -> None:
    path = shared_models / MODELS[bench]
    with pytest.raises(SystemExit) as info:
        main(["engine", "check", str(path), "--count", "2", "--json"])
    out, err = capsys.readouterr()
    assert info.value.code in (0, None), err
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["model"] == path.stem and record["engine"] == "builtin" and record["ok"] is True
    assert record["max_abs_diff"] == 0 and record["inputs"] == 2
    assert record["weights_bytes"] == _firmware_weights(path, "cortex-m4", tmp_path)
    assert "builtin engine vs TFLM" in err  # the table goes to stderr
