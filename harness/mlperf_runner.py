"""The official MLPerf Tiny runner (mlcommons/tiny ``benchmark/runner``) against tinyhil firmware.

tinyhil never copies the runner into its repository: :func:`fetch_runner` fetches
``benchmark/runner`` at the pinned commit (the one the models come from,
harness.models.TINY_COMMIT) into ``~/.cache/tinyhil/mlperf-runner/<commit>``, and
:func:`runner_dir` finds it (``TINYHIL_MLPERF_RUNNER``, an explicit path, the cache).

The runner runs as shipped, in its own process (:mod:`harness.mlperf_shim`), with
only its device discovery pointed at one port: QEMU's UART for a tinyhil firmware
(:func:`serve_firmware`), or a board's serial port. Its performance mode (loops of 5
windows, ``infer N W`` timed by the device's ``m-lap-us``) and accuracy mode (every
line of the dataset's ``y_labels.csv``) then give their own figures, which
:func:`parse_output` reads back from its ``sessions/<time>/results.txt`` and
``results.json`` into a :class:`RunnerResult`.

The runner's dataset directory (``--dataset_path``) holds ``kws01/``, ``ad01/``,
``ic01/``, ``vww01/`` in EnergyRunner's layout; :func:`make_runner_datasets` writes
one from tinyhil's datasets (a slice of kws01, the ToyADMOS clip of ad01) and seeded
random EnergyRunner-format images for ic01 and vww01 (no images are published).
See docs/mlperf-runner.md.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from harness.engines.tflm.trees import DEFAULT_URL_TEMPLATE, FetchError
from harness.errors import RunnerError, ToolMissingError, UserInputError
from harness.export import LapScale
from harness.firmware import cache_dir
from harness.models import TINY_COMMIT, TINY_REPO
from harness.targets import TargetDescriptor

Progress = Callable[[str], None]

# The runner comes from the commit the models come from.
RUNNER_REPO = TINY_REPO
RUNNER_COMMIT = TINY_COMMIT
RUNNER_SUBDIR = "benchmark/runner"
ENV_VAR = "TINYHIL_MLPERF_RUNNER"
FETCH_COMMAND = "tinyhil mlperf fetch"
COMMIT_FILE = ".tinyhil-commit"
# What is fetched: the runner's files and its power_manager package; not its
# directories of recordings and pictures (sd_card/, sww_data_dir/, img/: megabytes of
# WAV files for the streaming wake-word test, which needs an interface board).
SPARSE = (f"/{RUNNER_SUBDIR}/*", f"!/{RUNNER_SUBDIR}/*/", f"/{RUNNER_SUBDIR}/power_manager/")

# import name -> the package that provides it: what main.py and its modules import.
DEPENDENCIES = {"yaml": "pyyaml", "numpy": "numpy", "sklearn": "scikit-learn", "matplotlib": "matplotlib",
                "usb": "pyusb", "serial": "pyserial"}

# tinyhil's benchmark names -> the runner's test names (its tests_*.yaml keys and dataset folders).
BENCHMARK_IDS = {"kws": "kws01", "vww": "vww01", "ic": "ic01", "ad": "ad01"}
# What the runner's device lists say about baud rates: AD's is the one with 921600.
DEVICE_LISTS = {"ad01": "devices_ad.yaml", "kws01": "devices_kws_ic_vww.yaml",
                "ic01": "devices_kws_ic_vww.yaml", "vww01": "devices_kws_ic_vww.yaml"}
TEST_SCRIPTS = {"p": "tests_performance.yaml", "a": "tests_accuracy.yaml"}
MODES = {"p": "performance", "a": "accuracy"}

# EnergyRunner inputs tinyhil generates where none are published: bytes per file and classes.
GENERATED = {"ic01": (32 * 32 * 3, 10), "vww01": (96 * 96 * 3, 2)}
PERFORMANCE_WINDOWS = 5  # the runner's `loop 5` in tests_performance.yaml


# --------------------------------------------------------------------------- where the runner is

def runner_cache() -> Path:
    """Where :func:`fetch_runner` puts the runner (under TINYHIL_CACHE when set)."""
    return cache_dir() / "mlperf-runner" / RUNNER_COMMIT


def is_runner(directory: Path) -> bool:
    """Whether ``directory`` looks like ``benchmark/runner``."""
    return all((directory / f).is_file() for f in ("main.py", "script.py", "device_manager.py",
                                                   "serial_device.py", *TEST_SCRIPTS.values(),
                                                   *set(DEVICE_LISTS.values())))


def runner_dir(explicit: str | Path | None = None) -> Path | None:
    """The runner's directory: ``explicit``, else ``TINYHIL_MLPERF_RUNNER``, else the fetch
    cache; None when the cache has none. A named directory that is not the runner is the
    user's mistake (UserInputError)."""
    for value, what in ((explicit, "--runner"), (os.environ.get(ENV_VAR), ENV_VAR)):
        if value:
            path = Path(value).expanduser()
            if not is_runner(path):
                raise UserInputError(f"{what} {path}: not the MLPerf Tiny runner (expected main.py, script.py, "
                                     f"tests_performance.yaml ... of mlcommons/tiny {RUNNER_SUBDIR}); "
                                     f"`{FETCH_COMMAND}` fetches it")
            return path
    cached = runner_cache()
    return cached if is_runner(cached) else None


def runner_commit(directory: Path) -> str | None:
    """The commit a fetched runner came from (None for a directory tinyhil did not fetch)."""
    try:
        return (directory / COMMIT_FILE).read_text().strip() or None
    except OSError:
        return None


def missing_dependencies() -> list[str]:
    """The runner's Python packages that are not installed (``pip install tinyhil[mlperf]``)."""
    return [pkg for mod, pkg in DEPENDENCIES.items() if importlib.util.find_spec(mod) is None]


def fetch_runner(dest: Path | None = None, url_template: str = DEFAULT_URL_TEMPLATE, force: bool = False,
                 progress: Progress | None = None) -> Path:
    """Fetch ``benchmark/runner`` of mlcommons/tiny at the pinned commit into ``dest``
    (default: :func:`runner_cache`); returns ``dest``.

    git fetches only that commit's tree and the runner's blobs (a blob-filtered,
    sparse checkout, as `tinyhil models fetch` does; a local mirror may be a partial
    clone). The commit must be the pinned one (no other is taken). The files go to a
    temporary directory next to ``dest`` and are renamed into place when complete.
    Already there (and not ``force``): nothing is fetched.

    Raises:
        ToolMissingError: git is not installed.
        FetchError: the repository is unreachable, lacks the commit or the runner.
        UserInputError: a bad ``url_template``.
    """
    from harness.models import Source, _checkout, _url, display

    say = progress or (lambda _m: None)
    dest = dest or runner_cache()
    if not force and is_runner(dest):
        say(f"{RUNNER_REPO} {RUNNER_SUBDIR} at {RUNNER_COMMIT[:12]}: present in {display(dest)}")
        return dest
    url = _url(url_template, RUNNER_REPO)
    if shutil.which("git") is None:
        raise ToolMissingError(f"git not found: install it (e.g. `sudo apt-get install git`) to fetch the "
                               f"MLPerf Tiny runner into {display(dest)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest.parent))
    try:
        source = Source(RUNNER_REPO, RUNNER_COMMIT, "Apache-2.0", ())
        commit = _checkout(source, url, staging / "git", False, say, sparse=SPARSE)
        src = staging / "git" / RUNNER_SUBDIR
        if commit != RUNNER_COMMIT or not is_runner(src):
            raise FetchError(f"{url} at {commit[:12]} has no complete {RUNNER_SUBDIR} (expected main.py, "
                             f"script.py, the tests_*.yaml and devices_*.yaml): nothing was written")
        (src / COMMIT_FILE).write_text(commit + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(src, dest)
        say(f"{RUNNER_REPO} {RUNNER_SUBDIR} at {commit[:12]}: installed in {display(dest)}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


# --------------------------------------------------------------------------- datasets

def _read_lines(labels: Path) -> list[list[str]]:
    with labels.open(newline="") as f:
        return [row for row in csv.reader(f) if row and row[0].strip()]


def _write_lines(labels: Path, rows: Sequence[Sequence[str]]) -> None:
    labels.write_text("".join(",".join(r) + "\n" for r in rows))


def _stratified(rows: list[list[str]], limit: int) -> list[list[str]]:
    """``limit`` rows in file order: the first of every class, then the next ones (the
    runner's AUC needs every class in the slice)."""
    chosen: set[int] = set()
    seen: set[str] = set()
    for i, r in enumerate(rows):
        if len(r) > 2 and r[2] not in seen and len(chosen) < limit:
            seen.add(r[2])
            chosen.add(i)
    for i in range(len(rows)):
        if len(chosen) >= limit:
            break
        chosen.add(i)
    return [rows[i] for i in sorted(chosen)]


def _link(src: Path, dst: Path) -> None:
    if not dst.exists():
        try:
            dst.symlink_to(src.resolve())
        except OSError:
            shutil.copyfile(src, dst)


def make_runner_datasets(dest: Path, datasets_root: Path | None, benchmarks: Sequence[str] = tuple(DEVICE_LISTS),
                         limit: int | None = None, generated: int = PERFORMANCE_WINDOWS,
                         seed: int = 0) -> Path:
    """Write the runner's ``--dataset_path`` at ``dest``: one EnergyRunner folder per
    benchmark id in ``benchmarks`` (``kws01``, ``ad01``, ``ic01``, ``vww01``), each a
    ``y_labels.csv`` and its files (symlinks to ``datasets_root``'s, or generated).

    - kws01: the first ``limit`` inputs of ``datasets_root/kws01`` (all when None),
      every class among them (the runner's AUC needs each class once);
    - ad01: the clips of ``datasets_root/ad01`` that are there (one ToyADMOS clip is
      published), each a line ``file,2,label,2560,512`` as the real y_labels.csv has
      them, repeated up to 5 lines: the runner's performance loop takes the first
      window of a new clip each of its 5 windows;
    - ic01, vww01: ``generated`` seeded random uint8 RGB files (32x32x3, 96x96x3
      bytes), ``file,10,label`` / ``file,2,label``, labels cycling over the classes.

    Raises UserInputError when a published folder is missing from ``datasets_root``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for bench in benchmarks:
        out = dest / bench
        out.mkdir(exist_ok=True)
        if bench in GENERATED:
            size, classes = GENERATED[bench]
            count = limit if limit is not None else generated
            rows = []
            for i in range(max(count, 1)):
                name = f"tinyhil_random_{i:04d}.bin"
                (out / name).write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
                rows.append([name, str(classes), str(i % classes)])
            _write_lines(out / "y_labels.csv", rows)
            continue
        src = (datasets_root / bench) if datasets_root is not None else None
        if src is None or not (src / "y_labels.csv").is_file():
            raise UserInputError(f"no {bench} dataset (y_labels.csv) under {datasets_root}: run `tinyhil models "
                                 "fetch`, or pass --dataset-path DIR holding kws01/ ad01/ ic01/ vww01/")
        rows = _read_lines(src / "y_labels.csv")
        if bench == "ad01":
            template = rows[0] if rows else ["", "2", "0", "2560", "512"]
            present = [r for r in rows if (src / r[0]).is_file()]
            if not present:
                present = [[p.name, template[1], "1" if p.name.startswith("anomaly") else "0", *template[3:5]]
                           for p in sorted(src.glob("*.bin"))]
            if not present:
                raise UserInputError(f"no ToyADMOS clip (*.bin) in {src}: run `tinyhil models fetch`")
            rows = [present[i % len(present)] for i in range(max(len(present), PERFORMANCE_WINDOWS))]
            if limit is not None:
                rows = rows[:max(limit, 1)]
        elif limit is not None:
            rows = _stratified(rows, limit)
        for r in rows:
            if not (src / r[0]).is_file():
                raise UserInputError(f"{src / 'y_labels.csv'} names {r[0]}, which is not in {src}")
            _link(src / r[0], out / r[0])
        _write_lines(out / "y_labels.csv", rows)
    return dest


# --------------------------------------------------------------------------- the firmware

@dataclass(frozen=True)
class RunnerImage:
    """The firmware the runner talks to, and how its m-lap-us maps to the target's time."""

    elf: Path
    lap_scale: LapScale | None  # None: m-lap-us is QEMU's virtual time (1 instruction = 1 ns)


def runner_image(target: TargetDescriptor, model_path: Path, progress: Progress | None = None,
                 timeout_s: float = 900.0, dataset_dir: Path | None = None, scaled: bool = True) -> RunnerImage:
    """The image the runner talks to for ``model_path`` on ``target``: the bench's own
    firmware (builtin engine, the emulator build) built, as ``tinyhil build`` does, with
    m-lap-us in the target's estimated time (``scaled``; harness/export.py), so the
    runner's inferences/s is clock / est. cycles. The one place that chooses it."""
    from harness.engines.dispatch import BUILTIN, build_image, check_model
    from harness.export import measure_lap_scale, with_lap_scale
    from harness.hosting import prepare_runner
    from harness.model import load_model

    say = progress or (lambda _m: None)
    model = load_model(model_path)
    check_model(BUILTIN, model, [target])
    qemu = prepare_runner("qemu", None, [target])
    scale = measure_lap_scale(model, target, BUILTIN, qemu, timeout_s, say, dataset_dir) if scaled else None
    built = build_image(BUILTIN, model, with_lap_scale(target, scale) if scale else target, qemu, timeout_s, say)
    return RunnerImage(built.image.elf, scale)


@contextmanager
def serve_firmware(elf: Path, target: TargetDescriptor, qemu: str | None = None,
                   timeout_s: float = 60.0) -> Iterator[str]:
    """QEMU running ``elf`` for ``target`` (``-icount shift=0``, no cycle model) for as
    long as the ``with`` lasts; yields its UART as a ``unix:///path`` URL
    (:func:`harness.mlperf_shim.open_port`).

    The UART is tinyhil's private Unix socket. We connect first, read the boot banner
    up to ``m-ready`` (checking the build id it names against the ELF) and disconnect,
    so the runner finds a booted device, as with a board; QEMU takes the runner's
    connections (and reconnections: the runner closes its port between identifying the
    device and running the test) on the same socket. QEMU is stopped at the end.
    """
    from harness.dut import firmware_build_id
    from harness.runners.qemu import QemuRunner

    session = QemuRunner(qemu).start(elf, target, time.monotonic() + timeout_s, icount=True)
    try:
        port = session.port
        assert port is not None
        banner = b""
        deadline = time.monotonic() + timeout_s
        while b"m-ready" not in banner:
            if time.monotonic() > deadline or session.proc.poll() is not None:
                raise RunnerError(f"{elf.name} on QEMU ({target.name}): no boot banner ending in m-ready "
                                  f"within {timeout_s:.0f} s (received {banner[-200:]!r}; QEMU: "
                                  f"{session.stderr().strip()[-200:] or 'no message'})")
            banner += port.read(4096)
        expect = firmware_build_id(elf)
        if expect and f"m-th-build-[{expect}]".encode() not in banner:
            raise RunnerError(f"QEMU's firmware names another build than {elf} ({expect}): {banner[-300:]!r}")
        port.close()
        session.port = None
        yield f"unix://{session.uart}"
    finally:
        session.close()


# --------------------------------------------------------------------------- test scripts

def performance_script(runner: Path, dest: Path, scale: int) -> Path:
    """A copy of the runner's ``tests_performance.yaml`` at ``dest`` with every ``infer N W``
    timing ``N * scale`` inferences (warm-ups as they are); the runner's code is untouched.

    The runner wants each performance loop (5 windows) to last 10 s of the host's time
    (else "ERROR 2 - loop exited before 10 seconds elapsed." and no median); the shipped
    counts are sized for a slow MCU, and QEMU runs them in a few seconds. How many
    inferences a window times is the submitter's to choose; the throughput does not
    depend on it."""
    if scale < 1:
        raise UserInputError(f"--iterations-scale {scale}: expected a whole number >= 1")
    text = (runner / TEST_SCRIPTS["p"]).read_text()
    dest.write_text(re.sub(r"(\binfer\s+)(\d+)", lambda m: f"{m.group(1)}{int(m.group(2)) * scale}", text))
    return dest


def tinyhil_count(elf: Path, target: TargetDescriptor, model_path: Path, dataset_dir: Path | None,
                  runs: int = 10, cycle_model: bool = False, timeout_s: float = 300.0) -> tuple[int, float | None]:
    """tinyhil's own figures for ``elf``: instructions per inference under QEMU (what
    ``m-lap-us`` counts at 1 instruction per ns in an unscaled build) and, with
    ``cycle_model``, the est. latency in ms (None when the target has no timing model).

    Raises RunnerError when the run fails."""
    from harness.bench import fixed_input, input_job
    from harness.metrics import compute_metrics, elf_sizes
    from harness.model import load_model
    from harness.runners.qemu import QemuRunner

    model = load_model(model_path)
    record = QemuRunner(cycle_model=cycle_model).run(
        elf, target, input_job(model, fixed_input(model, dataset_dir), runs=runs, warmup=1), timeout_s)
    if not record.ok:
        raise RunnerError(f"tinyhil's own run of {elf.name} failed: {record.error or record.invoke_status}")
    latency = compute_metrics(record, elf_sizes(elf), target).latency_ms if cycle_model else None
    return record.count_per_inference, latency


# --------------------------------------------------------------------------- running it

@dataclass(frozen=True)
class RunnerResult:
    """What the runner reported for one session."""

    mode: str  # "p" or "a"
    model_id: str  # what the DUT named in m-model-[...] (kws01, ...)
    windows: list[float]  # performance: throughput of each window (inf./s)
    median_throughput: float | None  # performance: its "Median throughput is X inf./sec."
    top1: float | None  # accuracy: "Top 1% = X" (percent)
    auc: float | None  # accuracy: "AUC = Y"
    errors: list[str]  # its "ERROR 1/2 - ..." lines; a crash's last line
    log_path: Path | None  # sessions/<time>/log.txt
    runtimes: list[float] = field(default_factory=list)  # performance: each window's m-lap-us time (s)
    iterations: list[int] = field(default_factory=list)  # performance: inferences timed per window
    # Each loop result: (file, its m-results numbers), in the runner's order (results.json).
    outputs: list[tuple[str, list[float]]] = field(default_factory=list, repr=False)
    returncode: int = 0
    wall_s: float = 0.0
    # Host seconds from the test's first "Loading file" to the end of its loop (what the
    # runner's 10-second rule measures in performance mode); None when not seen.
    loop_s: float | None = None
    output: str = field(default="", repr=False)  # the runner's console (stdout and stderr)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.errors

    @property
    def session_dir(self) -> Path | None:
        return self.log_path.parent if self.log_path else None


_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"


def parse_output(mode: str, output: str, session: Path | None, returncode: int = 0,
                 wall_s: float = 0.0, loop_s: float | None = None) -> RunnerResult:
    """The runner's figures from its console ``output`` and its session directory
    (``results.txt``, written by its summary; ``results.json``, every loop's result)."""
    import json

    results_txt = ""
    if session is not None and (session / "results.txt").is_file():
        results_txt = (session / "results.txt").read_text(errors="replace")
    text = results_txt or output
    windows = [float(v) for v in re.findall(rf"^\s*Throughput:\s*{_NUM} inf\./sec\.", text, re.M)]
    runtimes = [float(v) for v in re.findall(rf"^\s*Runtime:\s*{_NUM} sec\.", text, re.M)]
    iterations = [int(v) for v in re.findall(r"^\s*# Inferences\s*:\s*(\d+)", text, re.M)]
    median = re.search(rf"Median throughput is\s*{_NUM} inf\./sec\.", text)
    top1 = re.search(rf"Top 1% = {_NUM}", text)
    auc = re.search(rf"AUC = {_NUM}", text)
    model = re.search(r"Device model retrieved: (\S+)", output)
    errors = [m.group(1).strip() for m in re.finditer(r"ulp-mlperf: (ERROR \d+ - .*)$", text, re.M)]
    if returncode != 0:
        lines = [line for line in output.splitlines() if line.strip()]
        exc = next((line.strip() for line in reversed(lines) if re.match(r"^\s*[\w.]+(Error|Exception)\b", line)),
                   lines[-1].strip() if lines else f"exit status {returncode}")
        errors.append(f"the runner stopped: {exc}")
    outputs: list[tuple[str, list[float]]] = []
    if session is not None and (session / "results.json").is_file():
        try:
            for r in json.loads((session / "results.json").read_text()):
                if isinstance(r, dict) and "infer" in r and "file" in r:
                    outputs.append((str(r["file"]), [float(x) for x in r["infer"].get("results", [])]))
        except (ValueError, TypeError, AttributeError):
            pass
    log = session / "log.txt" if session is not None and (session / "log.txt").is_file() else None
    return RunnerResult(
        mode=mode, model_id=model.group(1) if model else "", windows=windows,
        median_throughput=float(median.group(1)) if median else None,
        top1=float(top1.group(1)) if top1 else None, auc=float(auc.group(1)) if auc else None,
        errors=errors, log_path=log, runtimes=runtimes, iterations=iterations, outputs=outputs,
        returncode=returncode, wall_s=wall_s, loop_s=loop_s, output=output)


def shim_command(runner: Path, port: str, mode: str, benchmark_id: str, dataset_path: Path,
                 python: str | None = None, test_script: Path | None = None) -> list[str]:
    """The command line that runs the runner's main.py through :mod:`harness.mlperf_shim`."""
    if mode not in TEST_SCRIPTS:
        raise UserInputError(f"mode {mode!r}: expected p (performance) or a (accuracy)")
    if benchmark_id not in DEVICE_LISTS:
        raise UserInputError(f"benchmark {benchmark_id!r}: expected one of {', '.join(DEVICE_LISTS)}")
    return [python or sys.executable, "-m", "harness.mlperf_shim", "--runner", str(runner), "--port", port, "--",
            "--dataset_path", str(dataset_path), "--test_script", str(test_script or runner / TEST_SCRIPTS[mode]),
            "--device_list", str(runner / DEVICE_LISTS[benchmark_id]), "--mode", mode]


def run_runner(port: str, mode: str, benchmark_id: str, dataset_path: Path, runner: Path | None = None,
               work_dir: Path | None = None, timeout_s: float = 1800.0,
               on_line: Callable[[str], None] | None = None, test_script: Path | None = None) -> RunnerResult:
    """Run the official runner (as shipped, through :mod:`harness.mlperf_shim`) on the DUT
    at ``port`` in ``mode`` (``p``/``a``) for ``benchmark_id``'s device list; its session
    directory goes under ``work_dir`` (default: a new temporary directory, kept).

    ``benchmark_id`` only picks the device list (AD's has its own baud rates); the test
    the runner runs is the one the DUT names in ``m-model-[...]``, from its
    ``tests_performance.yaml`` / ``tests_accuracy.yaml`` unless ``test_script`` is given
    (:func:`performance_script`).

    Raises:
        UserInputError: no runner (fetch it), missing Python packages, a bad mode.
        RunnerError: the runner did not finish within ``timeout_s``.
    """
    runner = runner or runner_dir()
    if runner is None:
        raise UserInputError(f"the MLPerf Tiny runner is not fetched: run `{FETCH_COMMAND}` (or set {ENV_VAR} "
                             f"to a checkout of mlcommons/tiny {RUNNER_SUBDIR})")
    missing = missing_dependencies()
    if missing:
        raise UserInputError(f"the MLPerf Tiny runner needs {', '.join(missing)}: pip install "
                             f"'tinyhil[mlperf]' (or pip install {' '.join(missing)})")
    cmd = shim_command(runner, port, mode, benchmark_id, dataset_path, test_script=test_script)
    work = work_dir or Path(tempfile.mkdtemp(prefix="tinyhil-mlperf-"))
    work.mkdir(parents=True, exist_ok=True)
    before = set((work / "sessions").glob("*")) if (work / "sessions").is_dir() else set()
    import harness

    here = str(Path(harness.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p),
           "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace")
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    lines: list[str] = []
    loop_start: float | None = None
    loop_end: float | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "ulp-mlperf: Loading file" in line and loop_start is None:
                loop_start = time.monotonic()
            elif loop_start is not None and loop_end is None and "SerialDevice exiting port" in line:
                loop_end = time.monotonic()  # the test script's `with dut` has ended
            if on_line is not None:
                on_line(line.rstrip("\n"))
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    output = "".join(lines)
    if timed_out.is_set():
        raise RunnerError(f"the MLPerf Tiny runner did not finish within {timeout_s:.0f} s (its session: "
                          f"{work}); last lines: {' | '.join(s.strip() for s in lines[-3:])}")
    sessions = [p for p in (work / "sessions").glob("*") if p.is_dir() and p not in before] \
        if (work / "sessions").is_dir() else []
    session = max(sessions, key=lambda p: p.stat().st_mtime) if sessions else None
    loop_s = loop_end - loop_start if loop_start is not None and loop_end is not None else None
    return parse_output(mode, output, session, code, time.monotonic() - start, loop_s)


def iterations_scale(loop_s: float, min_loop_s: float = 15.0) -> int:
    """How many times the shipped inference counts a performance loop that took
    ``loop_s`` host seconds needs to last ``min_loop_s`` (the runner wants 10)."""
    import math

    return max(1, math.ceil(min_loop_s / max(loop_s, 0.1)))


__all__ = ["BENCHMARK_IDS", "ENV_VAR", "FETCH_COMMAND", "RUNNER_COMMIT", "RUNNER_REPO", "RunnerResult",
           "fetch_runner", "is_runner", "iterations_scale", "make_runner_datasets", "missing_dependencies",
           "parse_output", "performance_script", "run_runner", "runner_cache", "runner_dir", "runner_image",
           "serve_firmware", "shim_command", "tinyhil_count"]
