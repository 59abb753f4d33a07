"""The tflm engine: source trees (pinned fetch, discovery), engine selection, and with the
trees present, TFLM firmware under QEMU against the host interpreter and the builtin engine.

The firmware tests need TFLM's source trees; they skip, saying how to get them, when
`tinyhil tflm fetch` has not been run and TINYHIL_TFLM_SRC is unset. The TFLM library
is built once per (core, kernels) and cached in ~/.cache/tinyhil (the first build takes
several minutes per library; later runs reuse it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.bench import fixed_input, input_bytes
from harness.build import build_firmware
from harness.cli import main
from harness.engines.builtin import generate as builtin_generate
from harness.engines.compare import compare_engines
from harness.engines.dispatch import EngineSpec, parse_engines
from harness.engines.tflm.codegen import check_ops, resolver_method
from harness.engines.tflm.firmware import TflmBuild, build_tflm_firmware, explain
from harness.engines.tflm.trees import (PINNED, PinnedTree, TflmTrees, TflmTreesMissing, fetch_tree,
                                        fetch_trees, find_trees, locate)
from harness.errors import UnsupportedOpError, UserInputError
from harness.model import load_model
from harness.reference import Reference
from harness.results import ResultRow
from harness.runners.base import RunJob, RunRecord
from harness.runners.qemu import QemuRunner
from harness.targets import find_target
from tests.conftest import DATASETS, MODELS


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


# --------------------------------------------------------------------------- no trees needed

def test_missing_trees_say_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TINYHIL_TFLM_SRC", raising=False)
    with pytest.raises(TflmTreesMissing) as info:
        find_trees(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and info.value.exit_code == 2
    assert "tinyhil tflm fetch" in msg and "--tflm-src" in msg and "TINYHIL_TFLM_SRC" in msg
    assert "tflite-micro" in msg and "cmsis-nn" not in msg  # ref kernels do not need CMSIS-NN
    with pytest.raises(TflmTreesMissing, match="cmsis-nn"):
        find_trees(tmp_path, ("cmsis-nn",))


def test_bench_engine_tflm_without_trees_is_one_line_exit_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_models: Path) -> None:
    code, _, err = _run(capsys, "bench", "--model", "kws", "--engine", "builtin,tflm",
                        "--tflm-src", str(tmp_path / "nowhere"))
    assert code == 2
    assert "tinyhil tflm fetch" in err and len(err.strip().splitlines()) <= 2  # rich may wrap once


def test_parse_engines() -> None:
    assert parse_engines([]) == [EngineSpec("builtin")]
    specs = parse_engines(["builtin,tflm"], ["ref,cmsis-nn"], "/src")
    assert [s.label for s in specs] == ["builtin", "tflm ref", "tflm cmsis-nn"]
    assert specs[1].tflm_src == "/src"
    assert [s.label for s in parse_engines(["tflm"])] == ["tflm ref"]
    for engines, kernels in ((["tvm"], []), (["tflm"], ["fast"]), (["builtin"], ["cmsis-nn"])):
        with pytest.raises(UserInputError):
            parse_engines(engines, kernels)


def test_resolver_method_follows_tflm_naming() -> None:
    cases = {"CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
             "FULLY_CONNECTED": "AddFullyConnected", "AVERAGE_POOL_2D": "AddAveragePool2D",
             "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
             "BATCH_MATMUL": "AddBatchMatMul", "L2_NORMALIZATION": "AddL2Normalization",
             "RELU6": "AddRelu6", "PADV2": "AddPadv2"}
    for op, method in cases.items():
        assert resolver_method(op) == method, op


def test_unsupported_op_is_refused_before_compiling(shared_models: Path) -> None:
    model = load_model(shared_models / "kws_ref_model.tflite")
    with pytest.raises(UnsupportedOpError, match="tflm"):
        check_ops(model, frozenset({"AddConv2D"}))


def _row(engine: str, kernels: str, instructions: int, flash: int, ram: int, arena: int,
         used: int | None) -> ResultRow:
    nones = {f: None for f in ("cycles", "est_cycles", "latency_ms", "cpi", "energy_uj", "power_mw",
                               "flash_code_bytes", "flash_weights_bytes", "flash_other_bytes",
                               "ram_static_bytes", "ram_db_buffer_bytes", "ram_stack_bytes", "accuracy")}
    return ResultRow(benchmark="kws", model="kws", model_sha256="", target="cortex-m4", runner="qemu",
                     engine=engine, engine_version="", compiler="", cflags="", recipe="none", status="ok",
                     error="", proxy="", instructions=instructions, latency_source="est_cycles",
                     cpi_source="", power_source="", flash_bytes=flash, ram_bytes=ram,
                     ram_arena_bytes=arena, output_matches_reference=True, runs=1, git_revision="",
                     timestamp="", kernels=kernels, arena_used_bytes=used, **nones)


def test_engines_side_by_side_ratios() -> None:
    rows = [_row("tflm", "ref", 40, 300, 30, 23_000, 22_772), _row("builtin", "", 20, 100, 20, 16_000, None)]
    lines = compare_engines(rows)
    assert [e.engine for e in lines] == ["builtin", "tflm ref"]
    tflm = lines[1]
    assert tflm.instructions_ratio == 2.0 and tflm.flash_ratio == 3.0 and tflm.ram_ratio == 1.5
    assert tflm.arena_bytes == 22_772 and tflm.arena_ratio == pytest.approx(22_772 / 16_000)


def test_failed_invoke_status_is_explained() -> None:
    record = RunRecord(runner="qemu", target="t", elf=Path("x"), invoke_status=3,
                       transcript=("m-th-tflm-log-[Arena size is too small]",))
    err = explain(record).error
    assert "AllocateTensors" in err and "Arena size is too small" in err


# --------------------------------------------------------------------------- fetch

def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git not on PATH")
def test_fetch_from_local_bare_repo_at_pinned_commit(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _git("init", "-q", str(work))
    (work / "marker.h").write_text("v1\n")
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "one", cwd=work)
    pinned = _git("rev-parse", "HEAD", cwd=work)
    (work / "marker.h").write_text("v2\n")
    _git("commit", "-q", "-am", "two", cwd=work)
    bare = tmp_path / "mirror" / "acme+lib" / "repo"
    _git("clone", "-q", "--bare", str(work), str(bare))

    pin = PinnedTree("lib", "acme/lib", pinned, "marker.h", "test")
    dest = tmp_path / "cache" / f"lib-{pinned}"
    fetch_tree(pin, dest, str(bare), None, lambda _m: None)
    assert (dest / "marker.h").read_text() == "v1\n"  # the pinned commit, not the branch tip
    assert _git("rev-parse", "HEAD", cwd=dest) == pinned
    assert not dest.with_name(dest.name + ".partial").exists()


def _mirrors() -> Path | None:
    root = Path("/work/.mirror")
    ok = all((root / f"{p.repo.replace('/', '+')}/repo").is_dir() for p in PINNED)
    return root if ok else None


@pytest.mark.skipif(_mirrors() is None, reason="no local git mirrors of the pinned repositories")
def test_fetch_all_pinned_trees_from_mirrors(tmp_path: Path) -> None:
    trees = fetch_trees(tmp_path, "/work/.mirror/{owner}+{name}/repo")
    found, missing = locate(tmp_path, ("ref", "cmsis-nn"))
    assert not missing and set(found) == {p.name for p in PINNED}
    for pin in PINNED:
        assert trees.commit(pin.name) == pin.commit
    assert find_trees(tmp_path, ("cmsis-nn",)).tflm == tmp_path / f"tflite-micro-{PINNED[0].commit}"


# --------------------------------------------------------------------------- with the trees

@pytest.fixture(scope="session")
def tflm_trees() -> TflmTrees:
    try:
        return find_trees(None, ("ref", "cmsis-nn"))
    except TflmTreesMissing as e:
        pytest.skip(f"TFLM source trees not found: run `tinyhil tflm fetch` or set TINYHIL_TFLM_SRC ({e})")


@pytest.fixture(scope="session")
def kws_m4() -> dict[str, object]:
    """KWS on cortex-m4: the input, the host interpreter's output, the builtin firmware's."""
    if not MODELS.is_dir():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    target = find_target("cortex-m4")
    model = load_model(MODELS / "kws_ref_model.tflite")
    sample = fixed_input(model, DATASETS / "kws01")
    expected = b"".join(o.tobytes() for o in Reference(model).run(sample.inputs))
    image = build_firmware(builtin_generate(model), target)
    record = QemuRunner().run(image.elf, target, RunJob(input_bytes(model, sample)), 120)
    assert record.ok, record.error
    return {"target": target, "model": model, "input": input_bytes(model, sample), "expected": expected,
            "builtin": record.output}


def _build(kernels: str, trees: TflmTrees, kws: dict[str, object], notes: list[str]) -> TflmBuild:
    model, target = kws["model"], kws["target"]
    return build_tflm_firmware(model, target, kernels, trees, QemuRunner(), 300,  # type: ignore[arg-type]
                               progress=notes.append)


@pytest.mark.qemu
@pytest.mark.slow
def test_tflm_ref_kws_equals_interpreter_and_builtin(tflm_trees: TflmTrees, kws_m4: dict[str, object],
                                                     arm_tools: tuple[str, str]) -> None:
    notes: list[str] = []
    built = _build("ref", tflm_trees, kws_m4, notes)
    record = QemuRunner(arm_tools[1]).run(built.image.elf, kws_m4["target"],  # type: ignore[arg-type]
                                          RunJob(kws_m4["input"]), 300)  # type: ignore[arg-type]
    assert record.ok, record.error
    assert record.output == kws_m4["expected"]  # the host interpreter's, byte for byte
    assert record.output == kws_m4["builtin"]  # and the builtin engine's
    # The arena is the smallest that works, measured on the target; the firmware
    # reports it and TFLM's arena_used_bytes() (22,772 B for KWS on Cortex-M4).
    assert record.arena_bytes == built.arena_bytes >= record.arena_used_bytes == built.arena_used_bytes
    assert built.arena_bytes % 16 == 0 and 10_000 < built.arena_used_bytes < 40_000
    assert built.image.engine == "tflm" and "kernels=ref" in built.engine_version
    # Instructions near TFLM's own figure on this QEMU (docs: 43.09 M at -O2).
    assert 30e6 < record.count_per_inference < 60e6


@pytest.mark.qemu
@pytest.mark.slow
def test_tflm_second_build_is_a_cache_hit(tflm_trees: TflmTrees, kws_m4: dict[str, object],
                                          arm_tools: tuple[str, str]) -> None:
    _build("ref", tflm_trees, kws_m4, [])
    notes: list[str] = []
    again = _build("ref", tflm_trees, kws_m4, notes)
    assert again.library.cache_hit and again.image.cache_hit
    assert not any("compiling" in n and "TFLM library" in n for n in notes), notes


@pytest.mark.qemu
@pytest.mark.slow
def test_tflm_cmsis_nn_kws_compared(tflm_trees: TflmTrees, kws_m4: dict[str, object],
                                    arm_tools: tuple[str, str]) -> None:
    built = _build("cmsis-nn", tflm_trees, kws_m4, [])
    record = QemuRunner(arm_tools[1]).run(built.image.elf, kws_m4["target"],  # type: ignore[arg-type]
                                          RunJob(kws_m4["input"]), 300)  # type: ignore[arg-type]
    assert record.ok, record.error
    expected = np.frombuffer(kws_m4["expected"], dtype=np.int8)  # type: ignore[arg-type]
    got = np.frombuffer(record.output, dtype=np.int8)
    diff = int(np.abs(got.astype(int) - expected.astype(int)).max())
    print(f"KWS cortex-m4 CMSIS-NN vs reference: max abs diff {diff} "
          f"({int((got != expected).sum())} of {got.size} outputs differ)")
    assert got.argmax() == expected.argmax()  # same class, whatever the rounding
    assert record.count_per_inference < 20e6  # CMSIS-NN is several times faster than ref


@pytest.mark.qemu
@pytest.mark.slow
def test_bench_side_by_side(capsys: pytest.CaptureFixture[str], tmp_path: Path, tflm_trees: TflmTrees,
                            kws_m4: dict[str, object], arm_tools: tuple[str, str]) -> None:
    out_file = tmp_path / "rows.jsonl"
    code, out, err = _run(capsys, "bench", "--model", "kws", "--engine", "builtin,tflm",
                          "--out", str(out_file))
    assert code == 0, err
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [(r["engine"], r["kernels"]) for r in rows] == [("builtin", ""), ("tflm", "ref")]
    tflm = rows[1]
    assert tflm["status"] == "ok" and tflm["output_matches_reference"] is True
    assert tflm["arena_used_bytes"] > 0 and tflm["engine_version"].startswith("tflm-")
    assert "engines side by side" in out and "tflm ref" in out
