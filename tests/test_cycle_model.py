"""The timing model (issue 14): its tables, its configuration, and its arithmetic on
small hand-counted instruction sequences run under QEMU with the plugin, per core.

Each sequence is a leaf function called once from a bare-metal test program;
`tinyhil cycles` reports it inclusive (its instructions plus its return). The
expected figures are worked out here from the core's table by the documented
rules (docs/cycle-model.md), and for the Cortex-M4 also written out as literal
TRM numbers, so that a wrong table, a wrong rule in the plugin or a wrong
reading of the disassembly all fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cycles import (CORES_DIR, CoreTable, CycleModelError, MemorySystem, Region, load_core_table,
                            parse_memory_system, plugin_config, Watch)
from harness.targets import find_target

CORE_FILES = sorted(p.stem for p in CORES_DIR.glob("*.toml"))


# ----------------------------------------------------------------- tables and configuration

@pytest.mark.parametrize("core", CORE_FILES)
def test_every_table_loads_with_a_source_per_class(core: str) -> None:
    table = load_core_table(core)
    assert table.core == core and table.version >= 1
    assert table.classes and all(c.source.strip() for c in table.classes), "every class names its source"
    assert str(table.pipeline.get("source", "")).strip(), "the pipeline numbers name their source"
    kinds = {c.kind for c in table.classes}
    assert {"load", "store", "branch", "call"} <= kinds


# QEMU targets without a timing table, on purpose: their rows give instructions and no
# est. cycles (tests/test_esp32.py checks the row). Anything else under QEMU has one.
NO_TABLE_YET = {"esp32": "no Xtensa LX6 timing table yet"}


def test_targets_that_run_under_qemu_have_a_table() -> None:
    for path in sorted(Path(find_target("cortex-m4").path).parent.glob("*.toml")):
        target = find_target(path.stem)
        if target.qemu is None:
            continue
        if target.name in NO_TABLE_YET:
            assert target.cycle_model.unsupported.startswith(NO_TABLE_YET[target.name]), target.name
            continue
        assert not target.cycle_model.unsupported, target.name
        load_core_table(target.cycle_model.table)


def test_a_mnemonic_in_two_classes_is_refused(tmp_path: Path) -> None:
    text = (CORES_DIR / "cortex-m4.toml").read_text() + '''
[[class]]
name = "again"
kind = "plain"
cycles = 1
mnemonics = ["ldr"]
source = "test"
'''
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(CycleModelError, match="mnemonic 'ldr' is in classes 'load' and 'again'"):
        load_core_table(tmp_path / "bad.toml")


def test_a_region_naming_an_unknown_cache_is_refused() -> None:
    with pytest.raises(CycleModelError, match="names cache 'l1'"):
        parse_memory_system({"regions": [{"name": "flash", "origin": 0, "size_kb": 4, "icache": "l1"}]}, "t.toml")


def test_plugin_config_lists_classes_regions_and_watches(tmp_path: Path) -> None:
    table = load_core_table("cortex-m4")
    memory = parse_memory_system({
        "regions": [{"name": "flash", "origin": 0x08000000, "size_kb": 1024, "read_ws": 5, "icache": "i"}],
        "caches": {"i": {"size": 1024, "line": 16, "ways": 64, "miss_cycles": 5, "prefetch": True}}}, "t")
    text = plugin_config(table, memory, tmp_path / "out.txt", [Watch("f", 0x100)], until=0x200)
    lines = text.splitlines()
    assert lines[0] == f"out {tmp_path / 'out.txt'}"
    assert "cache 1024 16 64 5 1" in lines
    assert "region 8000000 8100000 5 0 0 0 -1 flash" in lines
    assert "watch 100 f" in lines and "until 200" in lines
    load = next(i for i, c in enumerate(table.classes) if c.name == "load")
    assert f"insn ldr {load}" in lines


def test_calibration_override_replaces_class_costs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.cycles import load_target_model

    monkeypatch.setenv("TINYHIL_CALIBRATION_DIR", str(tmp_path))
    target = find_target("cortex-m4")
    assert {c.name: c.cycles for c in load_target_model(target).classes}["load"] == 2
    (tmp_path / "cortex-m4.toml").write_text('core = "cortex-m4"\n[classes]\nload = 3\n')
    assert {c.name: c.cycles for c in load_target_model(target).classes}["load"] == 3
    (tmp_path / "cortex-m4.toml").write_text('core = "cortex-m7"\n[classes]\nload = 3\n')
    with pytest.raises(CycleModelError, match="calibrated for core 'cortex-m7'"):
        load_target_model(target)


# ----------------------------------------------------------------- hand-counted sequences

# Thumb-2 leaf functions: each called once with BL, returns with BX LR.
ARM_SEQUENCES = r"""
    .syntax unified
    .thumb
    .text
    .align 2
    .global seq_ldr, seq_branch, seq_ldm, seq_alu
    .thumb_func
seq_ldr:                    @ 4 iterations of 4 back-to-back loads, subs, bne
    movs r5, #4
1:  ldr r1, [r0]
    ldr r2, [r0, #4]
    ldr r3, [r0, #8]
    ldr r12, [r0, #12]
    subs r5, r5, #1
    bne 1b
    bx lr
    .thumb_func
seq_branch:                 @ a taken unconditional branch over one instruction
    movs r1, #1
    b 2f
    movs r1, #2
2:  movs r2, #3
    bx lr
    .thumb_func
seq_ldm:                    @ LDM of 4 registers, then STM of 4
    ldmia r0, {r1, r2, r3, r12}
    stmia r0, {r1, r2, r3, r12}
    bx lr
    .thumb_func
seq_alu:                    @ 8 independent ALU instructions (dual-issue pairs on the M7)
    movs r1, #1
    movs r2, #2
    movs r3, #3
    movs r12, #4
    adds r1, r1, #1
    adds r2, r2, #1
    adds r3, r3, #1
    adds r12, r12, #1
    bx lr

    .thumb_func
    .global reset
reset:
    ldr r0, =buffer
    bl seq_ldr
    ldr r0, =buffer
    bl seq_branch
    ldr r0, =buffer
    bl seq_ldm
    bl seq_alu
    movs r0, #0x18
    ldr r1, =0x20026
    bkpt 0xab
3:  b 3b

    .section .vectors, "a"
    .word __stack
    .word reset + 1
    .bss
    .align 4
buffer: .space 64
"""

ARM_LD = """
MEMORY {{ CODE (rx) : ORIGIN = {code:#x}, LENGTH = 64K
         DATA (rw) : ORIGIN = {data:#x}, LENGTH = 64K }}
SECTIONS {{
  .text : {{ KEEP(*(.vectors)) *(.text*) *(.rodata*) }} > CODE
  .bss (NOLOAD) : {{ *(.bss*) }} > DATA
  __stack = ORIGIN(DATA) + LENGTH(DATA);
}}
"""

RV_SEQUENCES = r"""
    .option norvc
    .text
    .global _start, seq_ldr, seq_branch, seq_alu
    .type seq_ldr, @function
    .type seq_branch, @function
    .type seq_alu, @function
_start:
    la sp, __stack
    la a0, buffer
    call seq_ldr
    la a0, buffer
    call seq_branch
    call seq_alu
    .align 4
    li a0, 0x18
    li a1, 0x20026
    slli x0, x0, 0x1f
    ebreak
    srai x0, x0, 7
1:  j 1b
seq_ldr:                    # 4 iterations of 4 loads, addi, bnez
    li t0, 4
2:  lw t1, 0(a0)
    lw t2, 4(a0)
    lw t3, 8(a0)
    lw t4, 12(a0)
    addi t0, t0, -1
    bnez t0, 2b
    ret
seq_branch:
    li t1, 1
    j 3f
    li t1, 2
3:  li t2, 3
    ret
seq_alu:
    li t1, 1
    li t2, 2
    li t3, 3
    li t4, 4
    addi t1, t1, 1
    addi t2, t2, 1
    addi t3, t3, 1
    addi t4, t4, 1
    ret
    .bss
    .align 4
buffer: .space 64
"""

RV_LD = """
MEMORY { RAM (rwx) : ORIGIN = 0x80000000, LENGTH = 128K }
SECTIONS {
  .text : { *(.text*) *(.rodata*) } > RAM
  .bss (NOLOAD) : { *(.bss*) } > RAM
  __stack = ORIGIN(RAM) + LENGTH(RAM);
}
"""

# target -> (compiler, -mcpu flags, code origin, data origin)
ARM_TARGETS = {
    "cortex-m4": ("-mcpu=cortex-m4", 0x00000000, 0x20000000),
    "cortex-m7": ("-mcpu=cortex-m7", 0x00000000, 0x20000000),
    "cortex-m33": ("-mcpu=cortex-m33", 0x10000000, 0x38000000),
    "cortex-m55": ("-mcpu=cortex-m55", 0x10000000, 0x30000000),
}


def build_sequences(target_name: str, tmp: Path) -> Path:
    from harness.build import find_target_toolchain
    from harness.errors import ToolMissingError

    target = find_target(target_name)
    try:
        tc = find_target_toolchain(target)
    except ToolMissingError as e:
        pytest.skip(str(e))
    elf = tmp / f"seq-{target_name}.elf"
    if target_name == "esp32c3":
        (tmp / "seq.S").write_text(RV_SEQUENCES)
        (tmp / "seq.ld").write_text(RV_LD)
        flags = ["-march=rv32i", "-mabi=ilp32"]
    else:
        mcpu, code, data = ARM_TARGETS[target_name]
        (tmp / "seq.S").write_text(ARM_SEQUENCES)
        (tmp / "seq.ld").write_text(ARM_LD.format(code=code, data=data))
        flags = [mcpu, "-mthumb"]
    cmd = [str(tc.gcc), *flags, "-nostdlib", "-nostartfiles", "-T", str(tmp / "seq.ld"), str(tmp / "seq.S"),
           "-o", str(elf)]
    subprocess.run(cmd, check=True, capture_output=True)
    return elf


def measure(elf: Path, target_name: str, functions: list[str], table: CoreTable | None = None,
            memory: MemorySystem | None = None) -> dict[str, float]:
    from harness.cycles.run import run_cycles

    target = find_target(target_name)
    import io

    result = run_cycles(elf, target, table or load_core_table(target.cycle_model.table),
                        memory or target.cycle_model.memory, functions, timeout_s=60, passthrough=io.StringIO())
    out = {}
    for f in result.functions:
        assert f.calls == 1, (f.name, f.calls)
        out[f.name] = f.est_cycles_per_call
        out[f.name + ".insns"] = f.instructions_per_call
    return out


def costs(table: CoreTable) -> dict[str, int]:
    """mnemonic -> class cycles, for the sequences' mnemonics."""
    return {m: c.cycles for c in table.classes for m in c.mnemonics}


def per_reg(table: CoreTable, mnemonic: str) -> int:
    return next(c.per_register for c in table.classes if mnemonic in c.mnemonics)


Insn = tuple  # (mnemonic, reads the previous one's result, registers moved, encoding bytes)


def straight(table: CoreTable, seq: list[Insn]) -> int:
    """Cycles of one translation block's instructions by the documented rules: the class
    cost (+ per register for LDM/STM); a load/store right after a load/store costs 1 when
    the core pipelines them; reading the previous load's result adds load_use_penalty; on
    a dual-issue core an instruction of an allowed (older, younger) pair that does not
    read the older one's result and costs at most 1 issues with it (costs 0), unless the
    older one was itself the younger of a pair (and, with dual_issue_narrow, only when
    both are 16-bit encodings)."""
    by_mnemonic = {m: c for c in table.classes for m in c.mnemonics}
    p = table.pipeline
    pairs = set(table.pairs)
    mem = ("load", "store", "fp_load", "fp_store")
    total, prev, prev_cost, prev_size, paired = 0, None, 0, 0, False
    for item in seq:
        m, dep = item[0], item[1]
        regs = item[2] if len(item) > 2 else 0
        size = item[3] if len(item) > 3 else 2
        c = by_mnemonic[m]
        cost = c.cycles + c.per_register * regs
        if p.get("load_pipelining") and c.kind in mem and prev is not None and prev.kind in mem:
            cost = 1
        if prev is not None and prev.kind in ("load", "fp_load") and dep:
            cost += int(p.get("load_use_penalty", 0))
        narrow = not p.get("dual_issue_narrow") or (size == 2 and prev_size == 2)
        if (p.get("dual_issue") and prev is not None and not paired and not dep and (prev.dual, c.dual) in pairs
                and prev.dual and c.dual and narrow and cost <= 1 and prev_cost >= 1):
            paired = True
        else:
            total, paired = total + cost, False
        prev, prev_cost, prev_size = c, cost, size
    return total


def arm_expected(table: CoreTable) -> dict[str, int]:
    p = table.pipeline
    bp, brp = int(p["branch_penalty"]), int(p["branch_register_penalty"])
    # encodings as the assembler picks them: r12 forces 32-bit forms
    loop = [("ldr", False, 0, 2), ("ldr", False, 0, 2), ("ldr", False, 0, 2), ("ldr", False, 0, 4),
            ("sub", False, 0, 2), ("b", False, 0, 2)]
    ldr = (straight(table, [("mov", False), *loop]) + 3 * straight(table, loop) + 3 * bp
           + straight(table, [("bx", False)]) + brp)
    branch = (straight(table, [("mov", False), ("b", False)]) + bp
              + straight(table, [("mov", False), ("bx", False)]) + brp)
    # seq_ldm returns to the 32-bit BL of seq_alu at an address 2 mod 4 (reset's layout)
    ldm = (straight(table, [("ldm", False, 4, 4), ("stm", False, 4, 4), ("bx", False)]) + brp
           + int(p.get("unaligned_target_penalty", 0)))
    alu = straight(table, [("mov", False), ("mov", False), ("mov", False), ("mov", False, 0, 4),
                           ("add", False), ("add", False), ("add", False), ("add", False, 0, 4), ("bx", False)]) + brp
    return {"seq_ldr": ldr, "seq_branch": branch, "seq_ldm": ldm, "seq_alu": alu}


@pytest.mark.qemu
@pytest.mark.parametrize("target_name", list(ARM_TARGETS))
def test_hand_counted_arm_sequences(target_name: str, arm_tools: tuple[str, str], tmp_path: Path) -> None:
    """The plugin's figures equal the table's arithmetic on each Arm core."""
    target = find_target(target_name)
    table = load_core_table(target.cycle_model.table)
    elf = build_sequences(target_name, tmp_path)
    got = measure(elf, target_name, ["seq_ldr", "seq_branch", "seq_ldm", "seq_alu"], table)
    assert got["seq_ldr.insns"] == 1 + 4 * 6 + 1
    assert got["seq_branch.insns"] == 4 and got["seq_ldm.insns"] == 3 and got["seq_alu.insns"] == 9
    expected = arm_expected(table)
    assert {k: got[k] for k in expected} == expected


@pytest.mark.qemu
def test_cortex_m4_sequences_match_the_trm_literally(arm_tools: tuple[str, str], tmp_path: Path) -> None:
    """Cortex-M4 TRM Table 3-1 by hand: LDR 2 (1 when pipelined after a load), ALU 1,
    B 1+P (taken, P=1 for an immediate target, +1 when the target is a 32-bit instruction
    at an address 2 mod 4), BX 1+P (P=2), LDM/STM 1+N."""
    elf = build_sequences("cortex-m4", tmp_path)
    got = measure(elf, "cortex-m4", ["seq_ldr", "seq_branch", "seq_ldm", "seq_alu"])
    per_iteration = (2 + 1 + 1 + 1) + 1 + 1   # 4 pipelined loads, subs, bne
    assert got["seq_ldr"] == 1 + 4 * per_iteration + 3 * 1 + (1 + 2)
    assert got["seq_branch"] == 1 + (1 + 1) + 1 + (1 + 2)
    # LDM 1+N, STM 1+N, BX 1+P, and one more cycle: the return lands on seq_alu's 32-bit BL
    # at an address 2 mod 4 (the M4's P for a misaligned 32-bit target)
    assert got["seq_ldm"] == (1 + 4) + (1 + 4) + (1 + 2) + 1
    assert got["seq_alu"] == 8 + (1 + 2)


@pytest.mark.qemu
def test_wait_states_and_a_cache_in_front_of_the_code_region(arm_tools: tuple[str, str], tmp_path: Path) -> None:
    """The same loads from a region with 3 read wait states pay 3 each; behind a data
    cache only the first touch of each line pays its miss."""
    table = load_core_table("cortex-m4")
    elf = build_sequences("cortex-m4", tmp_path)
    plain = measure(elf, "cortex-m4", ["seq_ldr"], table)["seq_ldr"]
    slow = MemorySystem((Region("code", 0, 64 * 1024), Region("data", 0x20000000, 64 * 1024, read_ws=3)))
    assert measure(elf, "cortex-m4", ["seq_ldr"], table, slow)["seq_ldr"] == plain + 16 * 3
    cached = parse_memory_system({
        "regions": [{"name": "code", "origin": 0, "size_kb": 64},
                    {"name": "data", "origin": 0x20000000, "size_kb": 64, "read_ws": 3, "dcache": "d"}],
        "caches": {"d": {"size": 1024, "line": 16, "ways": 4, "miss_cycles": 7}}}, "t")
    # seq_ldr reads 16 bytes (one 16-byte line, 16-aligned buffer): one miss, 15 hits
    assert measure(elf, "cortex-m4", ["seq_ldr"], table, cached)["seq_ldr"] == plain + 7


@pytest.mark.qemu
def test_hand_counted_riscv_sequences(tmp_path: Path) -> None:
    from harness.build import find_qemu
    from harness.errors import ToolMissingError

    try:
        find_qemu(qemu_system="riscv32")
    except ToolMissingError as e:
        pytest.skip(str(e))
    table = load_core_table(find_target("esp32c3").cycle_model.table)
    elf = build_sequences("esp32c3", tmp_path)
    zero_wait = MemorySystem((Region("ram", 0x80000000, 128 * 1024),))
    got = measure(elf, "esp32c3", ["seq_ldr", "seq_branch", "seq_alu"], table, zero_wait)
    c, p = costs(table), table.pipeline
    bp, brp = int(p["branch_penalty"]), int(p["branch_register_penalty"])
    li, bnez, j, ret = ("li" if "li" in c else "addi"), ("bnez" if "bnez" in c else "bne"), \
        ("j" if "j" in c else "jal"), ("ret" if "ret" in c else "jalr")
    loop = [("lw", False)] * 4 + [("addi", False), (bnez, False)]
    assert got["seq_ldr.insns"] == 1 + 4 * 6 + 1
    assert got["seq_ldr"] == (straight(table, [(li, False), *loop]) + 3 * straight(table, loop) + 3 * bp
                              + straight(table, [(ret, False)]) + brp)
    assert got["seq_branch"] == (straight(table, [(li, False), (j, False)]) + bp
                                 + straight(table, [(li, False), (ret, False)]) + brp)
    assert got["seq_alu"] == straight(table, [(li, False)] * 4 + [("addi", False)] * 4 + [(ret, False)]) + brp


def test_cycles_command_json_and_errors(tmp_path: Path) -> None:
    """Bad input is one clear line, never a traceback."""
    from harness.cli import main

    missing = tmp_path / "nope.elf"
    with pytest.raises(SystemExit) as e:
        main(["cycles", str(missing), "--target", "cortex-m4"])
    assert e.value.code == 2
    (tmp_path / "text.elf").write_text("not an elf")
    with pytest.raises(SystemExit) as e:
        main(["cycles", str(tmp_path / "text.elf"), "--target", "cortex-m4"])
    assert e.value.code == 2


@pytest.mark.qemu
def test_cycles_command_json_on_a_program(arm_tools: tuple[str, str], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    elf = build_sequences("cortex-m4", tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["cycles", str(elf), "--target", "cortex-m4", "--function", "seq_alu", "--json"])
    assert e.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["functions"] == [{"name": "seq_alu", "calls": 1, "instructions_per_call": 9.0,
                                  "est_cycles_per_call": 11.0, "breakdown_per_call": {
                                      "issue": 9.0, "branch": 2.0, "fetch_stall": 0.0, "data_stall": 0.0}}]
    assert data["total"]["instructions"] > 9 and data["cycle_model"].startswith("tinyhil-cycles cortex-m4 v")
    with pytest.raises(SystemExit) as e:
        main(["cycles", str(elf), "--target", "cortex-m4", "--function", "seq_alux"])
    assert e.value.code == 2
    assert "no function symbol 'seq_alux' (did you mean seq_alu" in capsys.readouterr().err


del shutil


# ----------------------------------------------------------------- calibration

class StandInBoard:
    """A 'board' whose cycle counter is the model itself with another table: the truth a
    calibration must recover. It runs the emulator build (QEMU is its silicon)."""

    name = "board"
    build_variant = "emulator"

    def __init__(self, truth: CoreTable) -> None:
        from harness.runners.qemu import QemuRunner

        self.qemu = QemuRunner(cycle_table=truth)

    def run(self, elf: Path, target: object, job: object, timeout_s: float) -> object:
        from dataclasses import replace

        rec = self.qemu.run(elf, target, job, timeout_s)  # type: ignore[arg-type]
        assert rec.ok and rec.est_cycles is not None, rec.error
        return replace(rec, counter="cycles", ticks=rec.est_cycles * rec.runs, units_per_tick=1)


@pytest.mark.qemu
def test_calibration_recovers_a_different_table(arm_tools: tuple[str, str], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in board charges loads 3, DSP instructions 2 and stores 2 cycles where the
    Cortex-M4 table says 2, 1 and 1: the fit finds exactly those costs, the stored override
    makes every benchmark's estimate equal the board's count, and later runs use it."""
    from harness.cycles import load_target_model
    from harness.cycles.calibrate import microbenchmark_models, run_calibration

    monkeypatch.setenv("TINYHIL_CALIBRATION_DIR", str(tmp_path / "calibration"))
    monkeypatch.setenv("TINYHIL_CACHE", str(tmp_path / "cache"))
    target = find_target("cortex-m4")
    table = load_core_table("cortex-m4")
    truth = table.with_costs({"load": 3, "dsp": 2, "store": 2})
    benchmarks = microbenchmark_models(tmp_path / "micro")
    result = run_calibration(target, StandInBoard(truth), benchmarks, timeout_s=120)
    assert result.fitted == {"load": 3, "dsp": 2, "store": 2}
    assert all(r.before < r.board_cycles for r in result.rows)  # the table undercharged every benchmark
    assert all(r.after == r.board_cycles for r in result.rows)
    assert result.path is not None and result.path.is_file()
    costs = {c.name: c.cycles for c in load_target_model(target).classes}
    assert (costs["load"], costs["dsp"], costs["store"], costs["alu"]) == (3, 2, 2, 1)


def test_fit_keeps_table_costs_of_unseen_classes() -> None:
    from harness.cycles.calibrate import fit_costs

    # two benchmarks, only 'load' and 'alu' present; the truth doubles loads
    inside = [{"load": 1000.0, "alu": 3000.0}, {"load": 3000.0, "alu": 1000.0}]
    estimated = [2 * 1000 + 3000 + 500, 2 * 3000 + 1000 + 500]
    measured = [3 * 1000 + 3000 + 500, 3 * 3000 + 1000 + 500]
    assert fit_costs(measured, estimated, inside, {"load": 2, "alu": 1, "mul": 1}) == {"load": 3, "alu": 1}


def test_the_plugin_compiles_once_for_threads_that_ask_at_once(tmp_path: Path) -> None:
    """Two runs started together in one process (tinyhil's threads) both find a whole plugin."""
    import threading

    from harness.cycles import plugin_path

    results: list[object] = []

    def ask() -> None:
        try:
            results.append(plugin_path(tmp_path))
        except Exception as e:  # collected: the assertion below shows it
            results.append(e)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and isinstance(results[0], Path) and results[0].stat().st_size > 0
    assert [p.name for p in (tmp_path / "plugins").iterdir()] == [results[0].name]
