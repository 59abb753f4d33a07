"""Per-layer profile (bench --profile): the firmware's own stamps around every kernel
call, on stm32f405 (1 instruction per tick) and cortex-m4 (40 per tick)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bench import BenchCase, resolve_models, run_case
from harness.cli import main
from harness.dut import Dut
from harness.engines.builtin import lowering
from harness.errors import DutProtocolError
from harness.metrics import LayerOp, layer_rows
from harness.model import load_model
from harness.runners.qemu import QemuRunner
from harness.targets import find_target

# What docs/dut-protocol.md states: the layers sum to the whole inference plus one
# BEGIN/END pair per layer, within two timer ticks and this much call glue
# (tinyhil_invoke's own entry and exit, outside the first and last stamp).
GLUE_INSTRUCTIONS = 32


def test_layer_rows() -> None:
    ops = [LayerOp(0, "CONV_2D", (1, 4, 4, 8), 1000), LayerOp(1, "RESHAPE", (1, 128), 0),
           LayerOp(2, "SOFTMAX", (1, 128), 0)]
    rows = layer_rows(ops, [(0, 100), (2, 7)], 40)
    assert rows == [
        {"index": 0, "op": "CONV_2D", "output_shape": [1, 4, 4, 8], "macs": 1000, "count": 4000,
         "macs_per_count": 0.25},
        {"index": 2, "op": "SOFTMAX", "output_shape": [1, 128], "macs": 0, "count": 280, "macs_per_count": None},
    ]
    with pytest.raises(ValueError, match="op #5"):
        layer_rows(ops, [(5, 1)], 1)


def test_profile_reply_parsing() -> None:
    class Port:
        pending = (b"m-ready\r\nm-th-layer-[0,1234]\r\nm-th-layer-[2,56]\r\nm-th-profile-pairs-1000\r\n"
                   b"m-th-profile-pair-ticks-31000\r\nm-ready\r\ne-[th-profile: this firmware was built "
                   b"without TH_PROFILE]\r\nm-ready\r\n")

        def write(self, data: bytes) -> int:
            return len(data)

        def read(self, size: int = 1) -> bytes:
            out, self.pending = self.pending[:size], self.pending[size:]
            return out

        def close(self) -> None:
            pass

    dut = Dut(Port(), 1)
    dut.wait_boot()
    prof = dut.layer_profile()
    assert prof.layers == ((0, 1234), (2, 56)) and (prof.pairs, prof.pair_ticks) == (1000, 31000)
    with pytest.raises(DutProtocolError, match="without TH_PROFILE"):
        dut.layer_profile()


@pytest.mark.qemu
@pytest.mark.parametrize("target_name", ["stm32f405", "cortex-m4"])
def test_kws_profile(target_name: str, shared_models: Path, arm_tools: tuple[str, str]) -> None:
    target = find_target(target_name)
    assert target.qemu is not None
    tick = target.qemu.instructions_per_tick
    (bench, path, ds), = resolve_models(["kws"])
    row = run_case(BenchCase(bench, path, ds, target), QemuRunner(arm_tools[1]), 1, 0, 120, profile=True)
    assert row.status == "ok", row.error
    assert row.layers is not None and row.profile_overhead is not None and row.instructions is not None
    model = load_model(path)
    with_kernels = [op.index for op in model.operators if lowering.REGISTRY[op.name].lower is not None]
    assert [layer["index"] for layer in row.layers] == with_kernels  # RESHAPE has no kernel, no layer
    assert len(with_kernels) == len(model.operators) - 1

    # The hooks cost a few tens of instructions per layer (two timer reads and calls).
    assert 5 <= row.profile_overhead <= 100, row.profile_overhead
    total = sum(layer["count"] for layer in row.layers)
    residual = total - row.instructions - len(row.layers) * row.profile_overhead
    assert abs(residual) <= 2 * tick + GLUE_INSTRUCTIONS, (total, row.instructions, row.profile_overhead)

    for layer, op in zip(row.layers, (model.operators[i] for i in with_kernels)):
        assert layer["op"] == op.name and layer["macs"] == op.macs
        assert layer["output_shape"] == list(model.tensors[op.outputs[0]].shape)
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            assert layer["count"] > layer["macs"] and 0 < layer["macs_per_count"] < 1


@pytest.mark.qemu
def test_bench_profile_table(capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_models: Path,
                             arm_tools: tuple[str, str]) -> None:
    out = tmp_path / "rows.jsonl"
    with pytest.raises(SystemExit) as info:
        main(["bench", "--target", "stm32f405", "--model", "kws", "--profile", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert info.value.code == 0, err
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(row["layers"]) == 12 and row["profile_overhead"] > 0
    flat = " ".join(stdout.split())  # the title wraps at 100 columns
    assert "kws on stm32f405: per layer" in flat and "DEPTHWISE_CONV_2D" in stdout and "MACs/" in stdout
