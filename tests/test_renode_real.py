"""The Renode runner against an installed Renode: the real chip firmware (startup, clock,
USART and timer at the chip's addresses, flash at 0x08000000) on Renode's STM32 platforms,
through the `renode` command and through pyrenode3, cross-checked with QEMU.

Skipped, with the reason, where no Renode is installed (it is neither in Debian nor on
PyPI: `renode` on PATH or TINYHIL_RENODE; pyrenode3 from its repository)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.runners.renode import find_renode

pytestmark = pytest.mark.renode


def _bench(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> dict[tuple[str, str], dict[str, object]]:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--json", "--out", str(tmp_path / f"rows-{len(list(tmp_path.iterdir()))}.jsonl"), *argv])
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    return {(str(r["benchmark"]), str(r["target"])): r for r in rows}


@pytest.fixture
def renode(monkeypatch: pytest.MonkeyPatch) -> None:
    if find_renode() is None:
        pytest.skip("Renode is not installed (no `renode` on PATH, no TINYHIL_RENODE); it comes from the Renode "
                    "project, not Debian or PyPI")


def test_chip_firmware_under_renode_cli_equals_qemu_on_the_same_chip(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renode: None,
        shared_models: Path, arm_tools: tuple[str, str]) -> None:
    """stm32f405's chip firmware (USART1, TIM2, flash at 0x08000000) on Renode's STM32F4
    platform through the `renode` command, and on QEMU's netduinoplus2 (the same chip,
    1 instruction per timer tick): outputs equal the reference in both, and Renode's count
    is QEMU's plus the 34 instructions between the hooks' function entries and the timer
    restart/read inside them."""
    monkeypatch.setenv("TINYHIL_RENODE_BACKEND", "cli")
    on_renode = _bench(capsys, tmp_path, "--target", "stm32f405", "--runner", "renode", "--model", "kws",
                       "--model", "ad")
    on_qemu = _bench(capsys, tmp_path, "--target", "stm32f405", "--model", "kws", "--model", "ad")
    for key, row in on_renode.items():
        assert row["status"] == "ok" and row["output_matches_reference"] is True, row["error"]
        assert row["runner"] == "renode" and row["latency_source"] != "est_cycles"
        assert isinstance(row["instructions"], int) and isinstance(on_qemu[key]["instructions"], int)
        assert row["instructions"] == on_qemu[key]["instructions"] + 34, (key, row["instructions"],
                                                                         on_qemu[key]["instructions"])


def test_pyrenode3_runs_the_stm32f746_chip_firmware(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renode: None,
        shared_models: Path, arm_tools: tuple[str, str]) -> None:
    """The same runner through pyrenode3 (Renode in this process) on the STM32F7 discovery
    platform; against QEMU's Cortex-M7 proxy (mps2-an500, 40 instructions per timer tick)
    the count differs by the 34 hook instructions plus less than one tick."""
    if importlib.util.find_spec("pyrenode3") is None:
        pytest.skip("pyrenode3 is not installed here (pip install it from github.com/antmicro/pyrenode3; "
                    "`nox -s tests` installs the machine's own)")
    monkeypatch.setenv("TINYHIL_RENODE_BACKEND", "pyrenode3")
    on_renode = _bench(capsys, tmp_path, "--target", "stm32f746", "--runner", "renode", "--model", "ad")
    on_qemu = _bench(capsys, tmp_path, "--target", "stm32f746", "--model", "ad")
    row, proxy = on_renode[("ad", "stm32f746")], on_qemu[("ad", "stm32f746")]
    assert row["status"] == "ok" and row["output_matches_reference"] is True, row["error"]
    assert isinstance(row["instructions"], int) and isinstance(proxy["instructions"], int)
    assert 34 <= row["instructions"] - proxy["instructions"] < 34 + 40, (row["instructions"], proxy["instructions"])
    assert not row["proxy"] and proxy["proxy"]  # Renode runs the chip; QEMU a core proxy


def test_targets_names_the_renode_it_found(capsys: pytest.CaptureFixture[str], renode: None) -> None:
    with pytest.raises(SystemExit):
        main(["targets", "--json"])
    records = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    install = find_renode()
    assert install is not None
    for name in ("stm32f746", "stm32f405"):
        (here,) = [h for h in records[name]["runners_here"] if h["runner"] == "renode"]
        assert install.command in here["note"] and install.version in here["note"]
    assert any(h["runner"] == "renode" and "STM32L4R5" in h["reason"]
               for h in records["nucleo-l4r5zi"]["runners_not_here"])


def test_a_renode_path_that_is_not_there_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     shared_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINYHIL_RENODE", "")  # --renode sets it for the process: restored after the test
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--target", "stm32f405", "--runner", "renode", "--renode", str(tmp_path / "nope"),
              "--model", "ad", "--out", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert exc.value.code != 0 and len(err.strip().splitlines()) == 1
    assert f"Renode {tmp_path / 'nope'} (--renode / TINYHIL_RENODE): not there" in err
