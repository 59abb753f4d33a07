"""ESP32 under Espressif's QEMU: the lx106 build and its libgcc helpers, the flash
image, the ROM boot, the 240 MHz clock, outputs and counts (harness/lx106.py,
harness/runners/espqemu.py, targets/esp32.toml).

The build tests need Debian's lx106 compiler and gcc-12-source (skipped with the
apt line otherwise); the QEMU tests need Espressif's qemu-system-xtensa with the
esp32 machine, which no registry has (skipped with how to get it otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from harness.bench import fixed_input, input_job
from harness.build import System, Toolchain, build_firmware, find_toolchain, variant_target
from harness.dut import Dut
from harness.engines.builtin import GeneratedModel, generate
from harness.errors import DoesNotFitError, ToolMissingError
from harness.model import load_model
from harness.reference import Reference
from harness.runners.base import RunRecord
from harness.runners.qemu import QemuRunner, qemu_command
from harness.targets import DescriptorError, find_target, load_target

SHARED = Path(os.environ.get("TINYHIL_SHARED", Path(__file__).resolve().parents[2] / "shared"))
MODELS = SHARED / "models" / "mlperf_tiny"


@pytest.fixture(scope="module")
def lx106() -> Toolchain:
    """The ESP32 compiler here: ESP-IDF's if installed, else Debian's lx106 with the helpers."""
    try:
        return find_toolchain(install=False, system=System(), name="xtensa-esp32-elf")
    except ToolMissingError as e:
        pytest.skip(f"no ESP32 compiler: {e}")


@pytest.fixture(scope="module")
def esp_qemu() -> str:
    from harness.runners.espqemu import find_qemu_xtensa

    try:
        return str(find_qemu_xtensa("esp32"))
    except ToolMissingError as e:
        pytest.skip(f"no Espressif QEMU: {e}")


def _model(name: str) -> GeneratedModel:
    path = MODELS / name
    if not path.exists():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    return generate(load_model(path))


@pytest.fixture(scope="module")
def kws() -> GeneratedModel:
    return _model("kws_ref_model.tflite")


@pytest.fixture(scope="module")
def fw_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("esp32-fw")


# ----------------------------------------------------------------- descriptors and records (no tools)

def _descriptor(tmp_path: Path, old: str, new: str) -> Path:
    text = find_target("esp32").path.read_text()
    assert old in text
    p = tmp_path / "esp32.toml"
    p.write_text(text.replace(old, new))
    return p


@pytest.mark.parametrize("value,message", [
    ('"0/6"', "must be positive"), ('"25/x"', 'an integer or a ratio "p/q"'), ("0", "must be positive")])
def test_instructions_per_tick_ratio_errors(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(DescriptorError, match=message):
        load_target(_descriptor(tmp_path, 'instructions_per_tick = "25/6"', f"instructions_per_tick = {value}"))


def test_rom_boot_belongs_to_espressif_machines(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError, match=r'qemu.boot: must be "kernel" or "rom"'):
        load_target(_descriptor(tmp_path, 'boot = "rom"', 'boot = "flash"'))
    with pytest.raises(DescriptorError, match=r"qemu.boot: .*those boot only that way"):
        load_target(_descriptor(tmp_path, 'boot = "rom"', 'boot = "kernel"'))
    text = find_target("esp32").path.read_text()
    no_chip = text[:text.index("\n[chip]\n")] + text[text.index("\n[renode]\n"):]
    p = tmp_path / "esp32.toml"
    p.write_text(no_chip)
    with pytest.raises(DescriptorError, match=r'boot = "rom" runs the \[chip\] build'):
        load_target(p)


def test_emulator_build_of_a_rom_booted_chip_is_the_board_build() -> None:
    """Espressif's QEMU is the chip: it runs the [chip] layout with the clock setup."""
    esp32 = find_target("esp32")
    built = variant_target(esp32, "emulator")
    assert built == variant_target(esp32, "board")
    defines = dict(built.board_defines)
    assert defines["TH_CLOCK_SETUP"] == "1" and defines["TH_CPU_HZ"] == "240000000u" and "TH_ESP32_PLL" in defines
    assert esp32.chip is not None and built.flash == esp32.chip.flash
    assert variant_target(find_target("cortex-m4"), "emulator") == find_target("cortex-m4")


def test_counts_from_a_ratio_of_instructions_per_tick() -> None:
    """CCOUNT at 240 MHz under -icount shift=0: 25/6 instructions a tick, kept exact."""
    record = RunRecord(runner="qemu", target="esp32", elf=Path("x.elf"), ticks=12_480_862, runs=2,
                       units_per_tick=Fraction(25, 6))
    assert record.count_per_inference == 26_001_795  # 12,480,862 x 25 / 6 / 2 = 26,001,795.8


# ----------------------------------------------------------------- the lx106 build

def test_lx106_helpers_fill_exactly_the_gaps(lx106: Toolchain) -> None:
    """The helper archive defines what Debian's lx106 libgcc lacks (division, 64-bit
    multiply/divide, soft-float add/multiply/convert) and nothing it already has."""
    if "tinyhil libgcc helpers" not in lx106.version:
        pytest.skip(f"ESP-IDF's compiler is here ({lx106.version}): no helpers needed")
    from harness.lx106 import PREFIX

    lib = next(Path(f.split(",")[0]) for f in lx106.ldflags if f.endswith(".a"))
    nm = lx106.gcc.with_name(f"{PREFIX}nm")
    libgcc = subprocess.run([str(lx106.gcc), "-print-libgcc-file-name"], capture_output=True, text=True).stdout.strip()

    def defined(path: str) -> set[str]:
        out = subprocess.run([str(nm), "--defined-only", "-g", path], capture_output=True, text=True).stdout
        return {ln.split()[-1] for ln in out.splitlines() if len(ln.split()) >= 3}

    helpers, have = defined(str(lib)), defined(libgcc)
    assert {"__udivsi3", "__divsi3", "__umodsi3", "__umulsidi3", "__muldi3", "__udivdi3", "__umoddi3",
            "__addsf3", "__mulsf3", "__floatsisf"} <= helpers | have
    assert not helpers & have  # nothing defined twice


def test_models_that_do_not_fit_the_esp32_say_so(lx106: Toolchain, fw_cache: Path) -> None:
    """The ROM loads everything into SRAM: VWW's weights overflow DRAM, a clear error."""
    vww = _model("vww_96_int8.tflite")
    with pytest.raises(DoesNotFitError, match=r"does not fit esp32: .*RAM"):
        build_firmware(vww, variant_target(find_target("esp32"), "emulator"), cache_dir=fw_cache, toolchain=lx106)


def test_flash_image_puts_the_esptool_image_where_the_rom_looks(lx106: Toolchain, kws: GeneratedModel,
                                                                 fw_cache: Path) -> None:
    from harness.runners.espqemu import FLASH_BYTES, flash_image

    target = find_target("esp32")
    image = build_firmware(kws, variant_target(target, "emulator"), cache_dir=fw_cache, toolchain=lx106)
    flash = flash_image(image.elf, target)
    data = flash.read_bytes()
    assert len(data) == FLASH_BYTES
    assert set(data[:0x1000]) == {0xFF}
    assert data[0x1000] == 0xE9  # the ESP image magic, at [chip] flash_offset
    assert data[0x1001] >= 2  # segments: IRAM code, DRAM constants and data
    before = flash.stat().st_mtime_ns
    assert flash_image(image.elf, target) == flash and flash.stat().st_mtime_ns == before  # made once
    cmd = qemu_command("qemu-system-xtensa", image.elf, target, Path("/tmp/u.sock"))
    assert cmd[cmd.index("-drive") + 1] == f"file={flash},if=mtd,format=raw"
    assert "-kernel" not in cmd and "-semihosting-config" not in cmd and cmd[cmd.index("-M") + 1] == "esp32"


# ----------------------------------------------------------------- Espressif's QEMU

def _expected(gen: GeneratedModel) -> tuple[object, bytes]:
    sample = fixed_input(gen.model, None)
    return sample, b"".join(o.tobytes() for o in Reference(gen.model).run(sample.inputs))


@pytest.mark.qemu
def test_kws_on_esp32_equals_the_reference_and_repeats(esp_qemu: str, lx106: Toolchain, kws: GeneratedModel,
                                                      fw_cache: Path) -> None:
    """Through the ROM, at 240 MHz: KWS's output equals the interpreter's byte for byte,
    and the instruction counts of three runs are identical (without the phase alignment
    they differed by one tick, 4 instructions, about every other run)."""
    target = find_target("esp32")
    image = build_firmware(kws, variant_target(target, "emulator"), cache_dir=fw_cache, toolchain=lx106)
    sample, expected = _expected(kws)
    runner = QemuRunner(esp_qemu)
    records = [runner.run(image.elf, target, input_job(kws.model, sample), 120) for _ in range(3)]
    assert all(r.ok for r in records), [r.error for r in records]
    assert all(r.output == expected for r in records)
    assert len({r.ticks for r in records}) == 1 and records[0].counter == "instructions"
    assert records[0].units_per_tick == Fraction(25, 6)
    assert records[0].count_per_inference > 2_656_768  # at least one instruction per MAC
    assert "entry 0x" in " ".join(records[0].transcript)  # the ROM's boot text came first


@pytest.mark.qemu
def test_esp32_clock_reaches_240_mhz(esp_qemu: str, lx106: Toolchain, kws: GeneratedModel,
                                     fw_cache: Path) -> None:
    """The PLL setup under the emulator, measured: a 2e7-instruction loop (20 ms of
    virtual time at -icount shift=0) reads 4.8 M CCOUNT ticks, 240 per microsecond;
    the ROM's 40 MHz would give 0.8 M."""
    target = find_target("esp32")
    image = build_firmware(kws, variant_target(target, "emulator"), cache_dir=fw_cache, toolchain=lx106,
                           extra_cflags=("-DTH_TEST_COMMANDS",))
    session = QemuRunner(esp_qemu).start(image.elf, target, time.monotonic() + 60)
    try:
        assert session.port is not None
        dut = Dut(session.port, timeout_s=60)
        dut.wait_boot(expect_build=image.build_id)
        assert dut.command("th-info") == ["m-th-counter-[cycles]", "m-th-counter-hz-240000000",
                                          f"m-th-build-[{image.build_id}]"]
        iterations = 10_000_000
        ticks = int(dut.command(f"th-calibrate {iterations}")[0].removeprefix("m-th-ticks-"))
        mhz = ticks / (2 * iterations) * 1000  # ticks per ns of virtual time, times 1000
        assert abs(mhz - 240) < 0.24, (ticks, mhz)
        # Whenever the host's command lands (the phase of CCOUNT's 25/6 pattern then is
        # anything), a measurement starts at one phase (th_cpu_cycles_align): 2,000,006
        # instructions read the same ticks every time, not one more or less.
        readings = set()
        for pause in (0.0, 0.013, 0.002, 0.031, 0.007, 0.021, 0.0):
            time.sleep(pause)
            readings.add(dut.command("th-calibrate 1000003")[0])
        assert len(readings) == 1, readings
    finally:
        session.close()


@pytest.mark.qemu
@pytest.mark.slow
def test_ic_on_esp32_equals_the_reference(esp_qemu: str, lx106: Toolchain, fw_cache: Path) -> None:
    ic = _model("pretrainedResnet_quant.tflite")
    target = find_target("esp32")
    image = build_firmware(ic, variant_target(target, "emulator"), cache_dir=fw_cache, toolchain=lx106)
    sample, expected = _expected(ic)
    record = QemuRunner(esp_qemu).run(image.elf, target, input_job(ic.model, sample), 300)
    assert record.ok, record.error
    assert record.output == expected and record.count_per_inference > 12_500_000


@pytest.mark.qemu
def test_bench_esp32_from_the_cli(esp_qemu: str, lx106: Toolchain, tmp_path: Path) -> None:
    """`tinyhil bench --target esp32` as a user runs it: one row, output ok, instructions
    named as such, no est. cycles (no Xtensa timing table)."""
    if not (MODELS / "kws_ref_model.tflite").exists():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    env = {**os.environ, "TINYHIL_RESULTS": str(tmp_path / "results"), "TINYHIL_SHARED": str(SHARED),
           "TINYHIL_QEMU_XTENSA": esp_qemu}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "bench", "--target", "esp32", "--model", "kws",
                           "--json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert row["target"] == "esp32" and row["status"] == "ok" and row["output_matches_reference"] is True
    assert row["instructions"] > 2_656_768 and row["cycles"] is None and row["est_cycles"] is None
    assert "-DTH_CPU_HZ=240000000u" in row["cflags"]
    assert list((tmp_path / "results").glob("bench-*.jsonl"))


def test_esp32_without_its_qemu_names_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Espressif QEMU anywhere: the message says how to get one and how to name it."""
    from harness.runners.espqemu import find_qemu_xtensa, machines

    monkeypatch.delenv("TINYHIL_QEMU_XTENSA", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    machines.cache_clear()
    with pytest.raises(ToolMissingError, match=r"qemu-system-xtensa not found: .*idf_tools.py install qemu-xtensa.*"
                                               r"--qemu-xtensa PATH or TINYHIL_QEMU_XTENSA"):
        find_qemu_xtensa()



def test_64bit_helpers_divide_and_multiply_like_the_host(tmp_path: Path) -> None:
    """th_libgcc_di.c (the lx106 build's __muldi3, __udivdi3, __umoddi3, __divdi3, __moddi3)
    compiled for the host under other names, against the host's own arithmetic."""
    import random
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler (sudo apt-get install gcc)")
    from harness.lx106 import C_HELPERS, C_MEMBERS

    rng = random.Random(64)
    values = [0, 1, 2, 3, 7, 10, 1000, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**63 - 1, 2**63, 2**64 - 1]
    values += [rng.getrandbits(rng.choice((8, 16, 32, 40, 63, 64))) for _ in range(300)]
    pairs = [(a, b) for a, b in zip(values, reversed(values)) if b]
    pairs += [(a, b) for a in values[:12] for b in values[1:12]]
    driver = tmp_path / "driver.c"
    driver.write_text("""
#include <stdint.h>
#include <stdio.h>
uint64_t __umulsidi3(uint32_t a, uint32_t b) { return (uint64_t)a * b; }
unsigned long long t_muldi3(unsigned long long, unsigned long long);
unsigned long long t_udivdi3(unsigned long long, unsigned long long);
unsigned long long t_umoddi3(unsigned long long, unsigned long long);
long long t_divdi3(long long, long long);
long long t_moddi3(long long, long long);
int main(void) {
    unsigned long long a, b;
    while (scanf("%llu %llu", &a, &b) == 2) {
        printf("%llu %llu %llu %lld %lld\\n", t_muldi3(a, b), t_udivdi3(a, b), t_umoddi3(a, b),
               t_divdi3((long long)a, (long long)b), t_moddi3((long long)a, (long long)b));
    }
    return 0;
}
""")
    renames = [f"-D__{m}=t_{m}" for m in C_MEMBERS] + [f"-DTH_L_{m}" for m in C_MEMBERS]
    exe = tmp_path / "driver"
    subprocess.run([cc, "-O1", "-std=c99", *renames, "-o", str(exe), str(C_HELPERS), str(driver)], check=True)
    out = subprocess.run([str(exe)], input="".join(f"{a} {b}\n" for a, b in pairs), capture_output=True,
                         text=True, check=True).stdout.splitlines()

    def s64(v: int) -> int:
        return v - 2**64 if v >= 2**63 else v

    for (a, b), line in zip(pairs, out, strict=True):
        sa, sb = s64(a), s64(b)
        if sa == -2**63 and sb == -1:
            continue  # overflows in C as well
        q = abs(sa) // abs(sb) * (1 if (sa < 0) == (sb < 0) else -1)
        r = sa - q * sb
        assert [int(x) for x in line.split()] == [a * b % 2**64, a // b, a % b, q, r], (a, b, line)
