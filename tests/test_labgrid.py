"""--runner labgrid against a real labgrid coordinator and exporter on 127.0.0.1: the
exporter publishes the UART of a QEMU firmware (stm32f405's board build on QEMU's
netduinoplus2, its UART bridged to a pty: tests/labgrid_qemu_board.py) through ser2net
as a NetworkSerialPort, a place matches
it, and `tinyhil bench --runner labgrid` acquires it, benches over RFC 2217 and
releases it. Skipped, with the reason, without labgrid, ser2net or QEMU."""

from __future__ import annotations

import json
import os
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
from tests.labgrid_qemu_board import UartAdapter, start_board, stop_board

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


def _start_lab(tmp_path: Path, boot: bool) -> Iterator[Lab]:
    """A coordinator, an exporter of one QEMU board's UART, and a place for it; the board
    runs KWS's stm32f405 board build (``boot``) or nothing."""
    if not KWS.exists():
        pytest.skip(f"MLPerf Tiny models not found at {KWS.parent} (set TINYHIL_SHARED)")
    coordinator_bin, exporter_bin, client = (_tool(n) for n in
                                             ("labgrid-coordinator", "labgrid-exporter", "labgrid-client"))
    if shutil.which("ser2net") is None:
        pytest.skip("ser2net not found (the exporter's serial server): sudo apt-get install ser2net")
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        pytest.skip("qemu-system-arm not found: sudo apt-get install qemu-system-arm")
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    (board_dir / "board.json").write_text(json.dumps({"qemu": qemu, "uart_port": free_port()}))
    elf = None
    if boot:
        elf = build_firmware(generate(load_model(KWS)), variant_target(find_target("stm32f405"), "board")).elf
    procs: list[subprocess.Popen[bytes]] = []
    adapter = UartAdapter(json.loads((board_dir / "board.json").read_text())["uart_port"])
    try:
        start_board(board_dir, elf)
        (tmp_path / "exporter.yaml").write_text(
            f"qemu-board:\n  RawSerialPort:\n    port: {adapter.path}\n    speed: 115200\n")
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
        stop_board(board_dir)
        adapter.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """The lab with the board running KWS's image already."""
    yield from _start_lab(tmp_path, boot=True)


@pytest.fixture
def blank_lab(tmp_path: Path) -> Iterator[Lab]:
    """The lab with a board that runs no firmware until something flashes it."""
    yield from _start_lab(tmp_path, boot=False)


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
    assert "labgrid: cycles = the DWT hardware cycle counter" in proc.stderr and "Renode" not in proc.stderr
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


def _env_file(lab: Lab, place: str = "qemu-place") -> Path:
    """A labgrid environment file naming the place and the driver that flashes its board."""
    env = lab.root / "env.yaml"
    env.write_text(f"""targets:
  main:
    resources:
      RemotePlace:
        name: {place}
    drivers:
      QemuBoardDriver:
        board_dir: {lab.root / 'board'}
imports:
  - {Path(__file__).with_name('labgrid_qemu_board.py')}
""")
    return env


@pytest.mark.qemu
def test_flash_through_labgrid_drivers_on_a_place_from_an_env_file(blank_lab: Lab) -> None:
    """No --place: the environment file names the place; --labgrid-flash labgrid flashes
    with its BootstrapProtocol driver (`labgrid-client bootstrap`), and the board, which
    ran nothing, then runs the bench's image (th-info names its build)."""
    proc = _bench(blank_lab, "--labgrid-env", str(_env_file(blank_lab)), "--labgrid-flash", "labgrid")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert row["runner"] == "labgrid" and row["status"] == "ok" and row["output_matches_reference"] is True
    flashed = (blank_lab.root / "board" / "flashed.log").read_text().split()
    assert flashed[0] == "None" and len(flashed) == 2 and flashed[1].endswith(".elf")  # blank, then the image
    assert "acquired: None" in blank_lab.lg("show")


@pytest.mark.qemu
def test_labgrid_flash_without_a_bootstrap_driver_says_what_to_add(blank_lab: Lab) -> None:
    proc = _bench(blank_lab, "--place", "qemu-place", "--labgrid-flash", "labgrid")
    assert proc.returncode == 1, proc.stderr[-3000:]
    (row,) = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert row["status"] == "failed" and "bootstrap" in row["error"] and "BootstrapProtocol" in row["error"]
    assert "acquired: None" in blank_lab.lg("show")


def test_env_file_places_and_descriptor_places(tmp_path: Path) -> None:
    """Which places a target's cases use: --place, else its descriptor's [labgrid] places,
    else the environment file's RemotePlaces (mapping or list resources, labgrid's tags)."""
    from harness.errors import UserInputError
    from harness.runners.labgrid import LabgridRunner, env_places
    from harness.targets import DescriptorError, load_target

    env = tmp_path / "lab.yaml"
    env.write_text("""targets:
  f746:
    resources:
      - RemotePlace:
          name: rack1-f746
    drivers:
      OpenOCDDriver:
        config: !template "$LG_BASE/openocd.cfg"
  f405:
    resources:
      RemotePlace: {name: rack2-f405}
""")
    assert env_places(env) == ["rack1-f746", "rack2-f405"]
    (tmp_path / "empty.yaml").write_text("targets: {main: {drivers: {}}}\n")
    with pytest.raises(UserInputError, match="names no place"):
        env_places(tmp_path / "empty.yaml")

    src = find_target("stm32f405").path.read_text()
    mine = tmp_path / "stm32f405.toml"
    mine.write_text(src + '\n[labgrid]\nplaces = ["bench-a", "bench-b"]\n')
    f405 = load_target(mine)
    assert f405.labgrid_places == ("bench-a", "bench-b")
    mine.write_text(src + "\n[labgrid]\nplaces = []\n")
    with pytest.raises(DescriptorError, match=r"labgrid\.places: expected a non-empty array"):
        load_target(mine)

    client = tmp_path / "labgrid-client"
    client.write_text("#!/bin/sh\n")
    client.chmod(0o755)
    f746 = find_target("stm32f746")
    runner = LabgridRunner([], "127.0.0.1:1", client=str(client), env=env,
                           target_places={"stm32f405": f405.labgrid_places})
    assert runner.places_for(f405) == ["bench-a", "bench-b"] and runner.places_for(f746) == ["rack1-f746", "rack2-f405"]
    assert runner.all_places() == ["bench-a", "bench-b", "rack1-f746", "rack2-f405"]
    forced = LabgridRunner(["x"], "127.0.0.1:1", client=str(client), env=env)
    assert forced.places_for(f405) == ["x"]
    with pytest.raises(UserInputError, match="needs a place"):
        LabgridRunner([], "127.0.0.1:1", client=str(client))
    with pytest.raises(UserInputError, match="no place for stm32f746"):
        LabgridRunner([], "127.0.0.1:1", client=str(client), target_places={"stm32f405": ("a",)}).places_for(f746)


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
