"""Accuracy mode: the binary DUT transfers (th-dbb, th-batch) against canned replies and
on QEMU, the scores (top-1, AD score, AUC), and accuracy runs on target against the
host interpreter (a KWS slice, a few AD windows), plus the CLI's errors for bad input."""

from __future__ import annotations

import json
import shutil
import time
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from tests.test_dut import FakePort

from harness.bench import (BenchCase, accuracy_kind, input_bytes, plan_accuracy, reference_outputs,
                           resolve_models, run_case, score_accuracy)
from harness.build import build_firmware
from harness.cli import main
from harness.datasets import load_dataset
from harness.dut import Dut
from harness.engines.builtin import generate
from harness.errors import DatasetError, DutProtocolError
from harness.metrics import anomaly_score, predicted_class, roc_auc, top1_accuracy
from harness.model import load_model
from harness.reference import Reference
from harness.runners.base import RunJob
from harness.runners.qemu import QemuRunner
from harness.targets import find_target

# Every byte value a text protocol could trip over: '%' ends a command, CR/LF are
# skipped by the command reader, 0x00 ends a C string.
NASTY = bytes([0x25, 0x0D, 0x0A, 0x00, 0xFF, 0x25, 0x25, 0x0A])


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


# ----------------------------------------------------------------- scores (pure)

def test_top1_and_predicted_class() -> None:
    assert predicted_class(np.array([-128, 5, 5, -3], dtype=np.int8)) == 1  # first of equal maxima
    assert top1_accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    with pytest.raises(ValueError):
        top1_accuracy([1], [1, 2])


def test_roc_auc() -> None:
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5  # ties count half
    # 3 positives x 2 negatives: pairs ordered right = 5 of 6
    assert roc_auc([0.3, 0.1, 0.4, 0.35, 0.2], [1, 0, 1, 0, 1]) == pytest.approx(4 / 6)
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1, 1])


def test_anomaly_score_is_mse() -> None:
    assert anomaly_score(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 6.0])) == pytest.approx((4 + 9) / 3)
    with pytest.raises(ValueError):
        anomaly_score(np.zeros(3), np.zeros(4))


# ----------------------------------------------------------------- datasets (host only)

def test_plan_accuracy_kinds_and_missing_datasets(shared_models: Path, shared_datasets: Path,
                                                  tmp_path: Path) -> None:
    kws = load_model(shared_models / "kws_ref_model.tflite")
    ad = load_model(shared_models / "ad01_int8.tflite")
    ic = load_model(shared_models / "pretrainedResnet_quant.tflite")
    assert accuracy_kind("kws", kws) == "top1" and accuracy_kind("ad", ad) == "anomaly"
    assert accuracy_kind("my_autoencoder", ad) == "anomaly"  # output as big as the input

    plan = plan_accuracy("kws", kws, shared_datasets / "kws01", limit=7)
    assert plan.kind == "top1" and len(plan.samples) == 7 and not plan.unavailable
    assert [s.label for s in plan.samples[:3]] == [7, 2, 6]  # tst_000000_Stop_7.bin, ...

    # ic01 ships labels only: no accuracy, said plainly, not an error.
    plan = plan_accuracy("ic", ic, shared_datasets / "ic01")
    assert plan.samples == () and "no ic dataset available" in plan.unavailable
    assert "--dataset DIR" in plan.unavailable
    plan = plan_accuracy("mine", ic, None)
    assert plan.samples == () and "no dataset for mine" in plan.unavailable

    # A user's dataset that does not fit is the user's mistake.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.bin").write_bytes(bytes(10))
    with pytest.raises(DatasetError, match="10 bytes"):
        plan_accuracy("ic", ic, None, bad)
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    (unlabelled / "a.bin").write_bytes(bytes(ic.input_tensors()[0].nbytes))
    with pytest.raises(DatasetError, match="no label for a.bin"):
        plan_accuracy("ic", ic, None, unlabelled)


def test_ad_auc_over_normal_and_anomalous_clips(shared_models: Path, shared_datasets: Path,
                                                tmp_path: Path) -> None:
    """Two clips (normal = the shipped spectrogram, anomalous = it with a burst added):
    the per-clip score is the mean window MSE, and the AUC ranks the anomalous clip higher."""
    ad = load_model(shared_models / "ad01_int8.tflite")
    src = shared_datasets / "ad01" / "normal_id_01_00000000_hist_librosa.bin"
    floats = np.frombuffer(src.read_bytes(), dtype="<f4")[: 128 * 24].copy()  # 20 windows
    d = tmp_path / "clips"
    d.mkdir()
    (d / "normal.bin").write_bytes(floats.tobytes())
    burst = floats.copy()
    burst[::7] += 25.0
    (d / "anomaly.bin").write_bytes(burst.tobytes())
    (d / "y_labels.csv").write_text("normal.bin,2,0,2560,512\nanomaly.bin,2,1,2560,512\n")

    plan = plan_accuracy("ad", ad, None, d)
    assert plan.kind == "anomaly" and len(plan.samples) == 40
    assert all(s.features is not None and s.features.shape == (1, 640) for s in plan.samples)
    outputs = reference_outputs(ad, plan.samples)
    score = score_accuracy(plan, ad, outputs)
    assert score.metric == "auc" and score.value == 1.0

    # Without both labels the mean window score is reported; check it by hand.
    one = plan_accuracy("ad", ad, shared_datasets / "ad01", limit=5)
    outs = reference_outputs(ad, one.samples)
    t = ad.output_tensors()[0]
    assert t.quant is not None
    by_hand = []
    for s, raw in zip(one.samples, outs):
        y = (np.frombuffer(raw, np.int8).astype(np.float64) - t.quant.zero_point) * t.quant.scale
        assert s.features is not None
        by_hand.append(np.mean((s.features.reshape(-1).astype(np.float64) - y) ** 2))
    score = score_accuracy(one, ad, outs)
    assert score.metric == "anomaly_score_mean" and score.value == pytest.approx(np.mean(by_hand), rel=1e-12)


# ----------------------------------------------------------------- DUT client (canned replies)

class StreamPort:
    """Replies to th-dbb/th-batch the way the firmware does, from the raw bytes written."""

    def __init__(self, corrupt_input: int | None = None) -> None:
        self.pending = b"m-ready\r\n"
        self.rx = b""
        self.corrupt_input = corrupt_input

    def write(self, data: bytes) -> int:
        self.rx += data
        self._serve()
        return len(data)

    def _serve(self) -> None:
        while b"%" in self.rx:
            head, rest = self.rx.split(b"%", 1)
            cmd = head.decode()
            n = int(cmd.split()[1])
            if cmd.startswith("th-dbb"):
                if len(rest) < n:
                    return
                crc = zlib.crc32(rest[:n])
                self.pending += f"m-load-done\r\nm-th-crc-{crc:08x}\r\nm-ready\r\n".encode()
                self.rx = rest[n:]
            elif cmd.startswith("th-batch"):
                size = 4  # this fake's input size; it wants the whole batch in one write
                assert len(rest) >= n * size
                for i in range(n):  # each output is its input reversed
                    data = rest[i * size:(i + 1) * size]
                    crc = zlib.crc32(data) ^ (1 if i == self.corrupt_input else 0)
                    self.pending += f"m-th-out-[{i},{crc:08x},0,{data[::-1].hex()}]\r\n".encode()
                self.pending += b"m-ready\r\n"
                self.rx = rest[n * size:]

    def read(self, size: int = 1) -> bytes:
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def close(self) -> None:
        pass


def test_binary_load_checks_the_crc() -> None:
    dut = Dut(StreamPort(), 1)
    dut.wait_boot()
    dut.load_binary(NASTY)
    assert dut.transcript[-3:] == ["m-load-done", f"m-th-crc-{zlib.crc32(NASTY):08x}", "m-ready"]

    class Flipped(StreamPort):
        def write(self, data: bytes) -> int:
            return super().write(data[:-1] + bytes([data[-1] ^ 0x20]))

    dut = Dut(Flipped(), 1)
    dut.wait_boot()
    with pytest.raises(DutProtocolError, match="arrived corrupted"):
        dut.load_binary(NASTY)


def test_bench_load_is_binary_for_tinyhil_firmware_and_hex_for_others() -> None:
    """The bench's input load (runners.base.load_input): th-dbb with the model's own bytes
    when the firmware named its build (tinyhil's), the standard db lines with the wire's
    bytes (uint8 models: + 128) for firmware that did not."""
    from harness.runners.base import RunJob, load_input

    class Recording(StreamPort):
        def __init__(self) -> None:
            super().__init__()
            self.sent = b""

        def write(self, data: bytes) -> int:
            self.sent += data
            return super().write(data)

    data = bytes(range(0, 256, 3))
    port = Recording()
    dut = Dut(port, 1)
    dut.wait_boot()
    dut.build = "0123456789abcdef0123456789abcdef"
    load_input(dut, RunJob(data, wire="uint8"), 1)
    assert port.sent == f"th-dbb {len(data)}%".encode() + data

    hexport = FakePort("m-init-done\r\nm-ready\r\n", {"db load": "m-[Expecting 86 bytes]\r\nm-ready\r\n",
                                                         "db ": "m-load-done\r\nm-ready\r\n"})
    dut = Dut(hexport, 1)
    dut.wait_boot()
    assert dut.build == ""
    load_input(dut, RunJob(data, wire="uint8"), 1)
    assert hexport.written == [f"db load {len(data)}", "db " + bytes(b ^ 0x80 for b in data).hex()]


def test_batch_outputs_in_order_and_corruption_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.dut

    monkeypatch.setattr(harness.dut, "BATCH_WINDOW_BYTES", 1 << 20)  # the fake wants everything at once
    inputs = [bytes([i]) + NASTY[:3] for i in range(5)]
    progress: list[tuple[int, int]] = []
    dut = Dut(StreamPort(), 1)
    dut.wait_boot()
    outputs = dut.infer_batch(inputs, on_output=lambda d, t: progress.append((d, t)))
    assert outputs == [x[::-1] for x in inputs]
    assert progress == [(i, 5) for i in range(1, 6)]

    dut = Dut(StreamPort(corrupt_input=2), 1)
    dut.wait_boot()
    with pytest.raises(DutProtocolError, match="input 2 arrived corrupted"):
        dut.infer_batch(inputs)


# ----------------------------------------------------------------- on QEMU

@pytest.fixture
def kws_dut(shared_models: Path, arm_tools: tuple[str, str]) -> Iterator[tuple[Dut, Reference, object]]:
    """KWS firmware on cortex-m4 under QEMU, spoken to with harness.dut over socket://."""
    target = find_target("cortex-m4")
    model = load_model(shared_models / "kws_ref_model.tflite")
    image = build_firmware(generate(model), target)
    session = QemuRunner(arm_tools[1]).start(image.elf, target, time.monotonic() + 10)
    assert session.port is not None
    dut = Dut(session.port, timeout_s=60)
    dut.wait_boot(expect_build=image.build_id)
    try:
        yield dut, Reference(model), model
    finally:
        session.close()


@pytest.mark.qemu
def test_binary_transfer_on_qemu(kws_dut: tuple[Dut, Reference, object]) -> None:
    """Bytes '%', CR, LF, NUL arrive intact (CRC-32 and the inference agree); a wrong
    size is refused without its bytes being read as commands; db still works."""
    dut, ref, model = kws_dut
    data = (NASTY * 62)[:490]
    dut.load_binary(data)  # raises unless the device's CRC-32 matches
    dut.infer(1)
    expected = ref.run([np.frombuffer(data, np.int8).reshape(1, 49, 10, 1)])[0].tobytes()
    assert dut.output_bytes() == expected

    dut.port.write(b"th-dbb 8%" + NASTY)  # 8 bytes, not the model's 490: discarded
    with pytest.raises(DutProtocolError, match=r"th-dbb: expected 490 bytes, got 8 \(discarded\)"):
        dut.read_until_ready()
    assert dut.name() == "tinyhil"  # the 8 bytes were not taken as a command

    batch = [data, bytes(490), data[::-1]]
    outputs = dut.infer_batch(batch)
    assert outputs == [ref.run([np.frombuffer(x, np.int8).reshape(1, 49, 10, 1)])[0].tobytes() for x in batch]

    dut.load(bytes(490))  # the standard hex transfer after binary ones
    dut.infer(1)
    assert dut.output_bytes() == outputs[1]


@pytest.mark.qemu
def test_kws_slice_accuracy_on_cortex_m4(shared_models: Path, shared_datasets: Path,
                                         arm_tools: tuple[str, str]) -> None:
    """50 KWS inputs in one QEMU session: every output equals the host interpreter's."""
    target = find_target("cortex-m4")
    model = load_model(shared_models / "kws_ref_model.tflite")
    image = build_firmware(generate(model), target)
    samples = load_dataset(shared_datasets / "kws01", model, limit=50)
    batch = tuple(input_bytes(model, s) for s in samples)
    seen: list[int] = []
    record = QemuRunner(arm_tools[1]).run(image.elf, target, RunJob(batch[0], batch=batch,
                                          on_batch_output=lambda d, t: seen.append(d)), 120)
    assert record.ok, record.error
    host = reference_outputs(model, samples)
    assert list(record.batch_outputs) == host
    assert seen == list(range(1, 51))
    labels = [s.label for s in samples]
    fw_top1 = top1_accuracy([int(np.argmax(np.frombuffer(o, np.int8))) for o in record.batch_outputs], labels)
    host_top1 = top1_accuracy([int(np.argmax(np.frombuffer(o, np.int8))) for o in host], labels)
    assert fw_top1 == host_top1 and fw_top1 > 0.8


@pytest.mark.qemu
def test_streamed_batch_on_cortex_m55(shared_models: Path, shared_datasets: Path,
                                      arm_tools: tuple[str, str]) -> None:
    """mps3-an547: th-batch streams inputs through UART0's receive interrupt (33)
    while the previous input is inferred; outputs equal the host interpreter's."""
    target = find_target("cortex-m55")
    assert ("TH_UART_RX_IRQ", hex(33)) in target.board_defines
    model = load_model(shared_models / "kws_ref_model.tflite")
    image = build_firmware(generate(model), target)
    samples = load_dataset(shared_datasets / "kws01", model, limit=10)
    batch = tuple(input_bytes(model, s) for s in samples)
    record = QemuRunner(arm_tools[1]).run(image.elf, target, RunJob(batch[0], batch=batch), 120)
    assert record.ok, record.error
    assert list(record.batch_outputs) == reference_outputs(model, samples)


@pytest.mark.qemu
def test_bench_accuracy_rows(capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_models: Path,
                             shared_datasets: Path, arm_tools: tuple[str, str]) -> None:
    """`tinyhil bench --accuracy`: KWS (a slice) and AD (a few windows) rows carry both
    scores; the table and the rows agree."""
    out = tmp_path / "rows.jsonl"
    code, stdout, err = _run(capsys, "bench", "--target", "cortex-m4", "--model", "kws", "--model", "ad",
                             "--accuracy", "--limit", "12", "--out", str(out))
    assert code == 0, err
    rows = {r["benchmark"]: r for r in map(json.loads, out.read_text().splitlines())}
    kws, ad = rows["kws"], rows["ad"]
    assert kws["status"] == "ok" and kws["accuracy_metric"] == "top1" and kws["accuracy_samples"] == 12
    assert kws["predictions_match_reference"] is True and kws["accuracy"] == kws["accuracy_reference"]
    assert 0.5 < kws["accuracy"] <= 1.0
    assert ad["status"] == "ok" and ad["accuracy_metric"] == "anomaly_score_mean" and ad["accuracy_samples"] == 12
    assert ad["predictions_match_reference"] is True and ad["accuracy"] == ad["accuracy_reference"] > 0
    assert "accuracy: firmware on target" in stdout and "all equal" in stdout


@pytest.mark.qemu
def test_mismatch_is_a_failed_row_naming_the_input(monkeypatch: pytest.MonkeyPatch, shared_models: Path,
                                                   shared_datasets: Path, arm_tools: tuple[str, str]) -> None:
    import harness.bench

    real = harness.bench.reference_outputs

    def off_by_one(model: object, samples: list[object]) -> list[bytes]:
        outs = real(model, samples)  # type: ignore[arg-type]
        outs[3] = bytes([outs[3][0] ^ 1]) + outs[3][1:]
        return outs

    monkeypatch.setattr(harness.bench, "reference_outputs", off_by_one)
    (bench, path, ds), = resolve_models(["kws"])
    model = load_model(path)
    plan = plan_accuracy(bench, model, ds, limit=5)
    row = run_case(BenchCase(bench, path, ds, find_target("cortex-m4")), QemuRunner(arm_tools[1]), 1, 0, 120,
                   accuracy=plan)
    assert row.status == "failed" and row.predictions_match_reference is False
    assert "input tst_000003_Up_8.bin (#3 of 5)" in row.error
    assert row.accuracy is None and row.instructions is None


@pytest.mark.parametrize("argv,message", [
    (["--model", "kws", "--model", "ad", "--accuracy", "--dataset", "."], "--dataset . is for one model"),
    (["--model", "kws", "--dataset", "."], "--dataset and --limit apply to accuracy runs"),
    (["--model", "kws", "--accuracy", "--limit", "0"], "--limit 0"),
    (["--model", "kws", "--accuracy", "--dataset", "/nonexistent"], "/nonexistent: dataset directory not found"),
])
def test_accuracy_bad_input_exit_2(capsys: pytest.CaptureFixture[str], shared_models: Path, argv: list[str],
                                   message: str) -> None:
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("the bench checks its tools before the accuracy options")
    code, _, err = _run(capsys, "bench", "--target", "cortex-m4", *argv)
    assert code == 2, err
    assert message in err and "Traceback" not in err
