"""--runner labgrid against a real labgrid coordinator and exporter on 127.0.0.1: the
exporter publishes the UART of a QEMU firmware (stm32f405's board build on QEMU's
netduinoplus2, `-serial pty`) through ser2net as a NetworkSerialPort, a place matches
it, and `tinyhil bench --runner labgrid` acquires it, benches over RFC 2217 and
releases it. Skipped, with the reason, without labgrid, ser2net or QEMU."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.build import build_firmware, variant_target
from harness.engines.builtin import generate
from harness.model import load_model
from harness.runners.renode import free_port
from harness.targets import find_target

SHARED = Path(os.environ.get("TINYHIL_SHARED", Path(__file__).resolve().parents[2] / "shared"))
KWS = SHARED / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name if (BIN / name).is_file() else shutil.which(name)
    if not path:
        pytest.skip(f"{name} not found: pip install 'tinyhil[labgrid]' (labgrid) and apt-get install ser2net")
    return str(path)


class Lab:
    def __init__(self, root: Path, coordinator: str, client: str) -> None:
        self.root, self.coordinator, self.client = root, coordinator, client

    def lg(self, *args: str, place: str = "qemu-place") -> str:
        return subprocess.run([self.client, "-x", self.coordinator, "-p", place, *args], capture_output=True,
                              text=True, timeout=60, check=True).stdout


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A coordinator, an exporter of one QEMU board's UART, and a place for it."""
    if not KWS.exists():
        pytest.skip(f"MLPerf Tiny models not found at {KWS.parent} (set TINYHIL_SHARED)")
    coordinator_bin, exporter_bin, client = (_tool(n) for n in
                                             ("labgrid-coordinator", "labgrid-exporter", "labgrid-client"))
    if shutil.which("ser2net") is None:
        pytest.skip("ser2net not found (the exporter's serial server): sudo apt-get install ser2net")
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        pytest.skip("qemu-system-arm not found: sudo apt-get install qemu-system-arm")
    target = find_target("stm32f405")
    image = build_firmware(generate(load_model(KWS)), variant_target(target, "board"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        board_log = tmp_path / "qemu.log"
        with board_log.open("wb") as log:
            procs.append(subprocess.Popen([qemu, "-M", "netduinoplus2", "-display", "none", "-monitor", "none",
                                           "-serial", "pty", "-kernel", str(image.elf)], stdout=log, stderr=log))
        deadline = time.monotonic() + 10
        while not (m := re.search(r"/dev/pts/\d+", board_log.read_text())):
            assert time.monotonic() < deadline, board_log.read_text()
            time.sleep(0.05)
        (tmp_path / "exporter.yaml").write_text(
            f"qemu-board:\n  RawSerialPort:\n    port: {m.group(0)}\n    speed: 115200\n")
        coordinator = f"127.0.0.1:{free_port()}"
        for cmd in ([coordinator_bin, "-l", coordinator],
                    [exporter_bin, "-c", coordinator, "-n", "exp1", "--hostname", "127.0.0.1", "exporter.yaml"]):
            with (tmp_path / f"{Path(cmd[0]).name}.log").open("wb") as log:
                procs.append(subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=log))
            time.sleep(1.5)
        lab = Lab(tmp_path, coordinator, client)
        deadline = time.monotonic() + 20
        while "exp1/qemu-board/NetworkSerialPort" not in subprocess.run(
                [client, "-x", coordinator, "resources"], capture_output=True, text=True).stdout:
            assert time.monotonic() < deadline, (tmp_path / "labgrid-exporter.log").read_text()
            time.sleep(0.3)
        lab.lg("create")
        lab.lg("add-match", "exp1/qemu-board/*")
        yield lab
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _bench(lab: Lab, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TINYHIL_RESULTS": str(lab.root / "results"), "TINYHIL_SHARED": str(SHARED)}
    return subprocess.run([sys.executable, "-m", "harness.cli", "bench", "--target", "stm32f405", "--model", "kws",
                           "--runner", "labgrid", "--coordinator", lab.coordinator, "--json", *extra],
                          capture_output=True, text=True, env=env, cwd=lab.root, timeout=600)


@pytest.mark.qemu
def test_bench_through_a_labgrid_place(lab: Lab) -> None:
    proc = _bench(lab, "--place", "qemu-place", "--labgrid-flash", "none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert row["runner"] == "labgrid" and row["status"] == "ok" and row["output_matches_reference"] is True
    assert row["latency_source"] == "timer"  # QEMU has no DWT: the board build times with TIM2
    assert "acquired: None" in lab.lg("show")  # released after the case


@pytest.mark.qemu
def test_a_place_that_fails_is_a_failed_row_and_is_released(lab: Lab) -> None:
    """Flashing with the target's flasher cannot work on a QEMU behind ser2net: the row
    fails with the reason, the suite goes on, and the place is free again."""
    proc = _bench(lab, "--place", "qemu-place")
    assert proc.returncode == 1, proc.stderr[-3000:]
    (row,) = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert row["status"] == "failed" and row["error"].startswith("place qemu-place: ")
    assert "acquired: None" in lab.lg("show")
    missing = _bench(lab, "--place", "no-such-place", "--labgrid-flash", "none")
    (row,) = [json.loads(ln) for ln in missing.stdout.splitlines()]
    assert row["status"] == "failed" and "no-such-place" in row["error"]


@pytest.mark.qemu
def test_sigterm_mid_run_releases_the_place(lab: Lab) -> None:
    """A CI timeout's SIGTERM unwinds like Ctrl-C: the place is released, not left held."""
    import signal

    env = {**os.environ, "TINYHIL_RESULTS": str(lab.root / "results"), "TINYHIL_SHARED": str(SHARED)}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "bench", "--target", "stm32f405", "--model", "kws",
                             "--runner", "labgrid", "--coordinator", lab.coordinator, "--place", "qemu-place",
                             "--labgrid-flash", "none"], env=env, cwd=lab.root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while "acquired: None" in lab.lg("show"):  # wait until the case holds the place
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert "acquired: None" in lab.lg("show")


def test_several_places_run_cases_at_once_each_released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two places, four cases on two threads: each case waits for a free place, runs on
    it alone, and every acquire is followed by its release (a fake labgrid-client logs)."""
    import threading

    from harness.runners import board
    from harness.runners.base import RunJob, RunRecord
    from harness.runners.labgrid import LabgridRunner

    log = tmp_path / "calls.log"
    client = tmp_path / "labgrid-client"
    client.write_text(f"""#!/bin/sh
echo "$4 $5" >> {log}
if [ "$5" = show ]; then
  echo "Acquired resource 'RawSerialPort' (exp1/b/NetworkSerialPort/RawSerialPort):"
  echo "  {{'cls': 'NetworkSerialPort', 'params': {{'host': '10.0.0.9', 'port': 3000, 'speed': 115200}}}}"
fi
""")
    client.chmod(0o755)
    lock = threading.Lock()
    urls: list[str] = []

    def fake_run(self: board.BoardRunner, elf: Path, target: object, job: RunJob, timeout_s: float) -> RunRecord:
        with lock:
            urls.append(self.port)
        time.sleep(0.1)
        return RunRecord(runner="board", target="stm32f405", elf=elf)

    monkeypatch.setattr(board.BoardRunner, "run", fake_run)
    runner = LabgridRunner(["a", "b"], "127.0.0.1:1", flash="none", client=str(client))
    target = find_target("stm32f405")

    def case() -> None:
        record = runner.run(Path("x.elf"), target, RunJob(), 10)
        assert record.runner == "labgrid" and not record.error

    threads = [threading.Thread(target=case) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = log.read_text().split("\n")[:-1]
    for place in ("a", "b"):
        mine = [c.split()[1] for c in calls if c.split()[0] == place]
        assert mine == ["acquire", "show", "release"] * 2  # two cases each, each acquired then released
    assert set(urls) == {"rfc2217://10.0.0.9:3000?ign_set_control"}
