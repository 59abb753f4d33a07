"""The builtin engine's Helium (MVE) kernels: th_mve.h's emulation against TFLM's scalar
arithmetic, the --isa mve C against the interpreter on the host, and the real
instructions under QEMU's Cortex-M55 (mps3-an547) byte for byte."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.build import BuildError, build_firmware
from harness.datasets import load_dataset, random_samples
from harness.engines.builtin import generate
from harness.engines.builtin.check import check_model
from harness.engines.builtin.codegen import KERNEL_DIR
from harness.engines.builtin.host import find_host_cc
from harness.model import load_model
from harness.targets import find_target
from tests.conftest import MODELS

MLPERF = {"kws": "kws_ref_model", "vww": "vww_96_int8", "ic": "pretrainedResnet_quant", "ad": "ad01_int8"}

# th_vrequant (four lanes) against th_mbqm + offset + clamp (TFLM's scalar arithmetic,
# which the other kernels' tests tie to the interpreter), over the extremes of every
# operand and random ones; and the emulated instructions against their Arm definitions.
_REQUANT_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "th_nn_common.h"
#include "th_mve.h"

static uint32_t rng = 12345u;
static uint32_t next(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }

int main(void) {
    const int32_t accs[] = {INT32_MIN, INT32_MIN + 1, -1073741824, -65536, -257, -128, -2, -1, 0, 1, 2, 127,
                            255, 65535, 1073741823, 1073741824, INT32_MAX - 1, INT32_MAX};
    const int32_t mults[] = {0, 1, 1073741824, 1073741825, 1518500250, 2147483646, INT32_MAX};
    long checked = 0, bad = 0;
    for (int32_t shift = -31; shift <= 8; ++shift) {
        for (unsigned m = 0; m < sizeof mults / sizeof mults[0]; ++m) {
            for (int r = 0; r < 400; ++r) {
                int32_t a[4];
                for (int i = 0; i < 4; ++i) {
                    a[i] = r < 18 * 4 ? accs[(r * 4 + i) % 18] : (int32_t)next() >> (next() % 24);
                }
                const int32_t mult = m < 7 ? mults[m] : (int32_t)(next() | 0x40000000u) & INT32_MAX;
                const int32_t out_off = (int32_t)(next() % 256) - 128;
                const int32_t lo = (int32_t)(next() % 64) - 128, hi = 127 - (int32_t)(next() % 64);
                th_s32x4 acc = th_vdup(a[0]);
                for (int i = 1; i < 4; ++i) acc = th_vsetlane(acc, a[i], i);
                int8_t got[4], fast[4];
                th_vst_s8w(got, th_vrequant(acc, th_vdup(mult), th_vdup(shift), out_off, lo, hi));
                /* The fast form, for the right shifts it is used with (requant.right_shifts_only). */
                th_vst_s8w(fast, th_vrequant_fast_v(acc, th_vdup(mult), th_vdup(shift), th_vdup(out_off),
                                                    th_vdup(lo), th_vdup(hi)));
                for (int i = 0; i < 4; ++i) {
                    const int8_t want = th_clamp_s8(th_mbqm(a[i], mult, shift) + out_off, lo, hi);
                    ++checked;
                    if (got[i] != want || (shift <= -1 && fast[i] != want)) {
                        if (bad++ < 5) printf("%d * %d >> %d: %d %d, want %d\n", a[i], mult, shift, got[i],
                                              fast[i], want);
                    }
                }
            }
        }
    }
    /* The instructions' own definitions (Armv8.1-M ARM). */
    th_s32x4 x = th_vqrdmulh(th_vdup(INT32_MIN), th_vdup(INT32_MIN));
    bad += x.v[0] != INT32_MAX;                                   /* VQRDMULH saturates */
    x = th_vrshl(th_vdup(INT32_MAX), th_vdup(-1));
    bad += x.v[0] != 1073741824;                                  /* VRSHL rounds without overflow */
    x = th_vrshl(th_vdup(-3), th_vdup(-1));
    bad += x.v[0] != -1;                                          /* (-3 + 1) >> 1: half up */
    x = th_vqadd(th_vdup(INT32_MIN), th_vdup(-1));
    bad += x.v[0] != INT32_MIN;                                   /* VQADD saturates */
    x = th_vshl(th_vdup(-8), th_vdup(-2));
    bad += x.v[0] != -2;                                          /* VSHL by a negative count */
    bad += th_vctp8(3) != 0x0007u || th_vctp8(20) != 0xFFFFu || th_vctp32(1) != 0x000Fu;
    {
        int8_t a[16], b[16];
        for (int i = 0; i < 16; ++i) { a[i] = -128; b[i] = -128; }
        bad += th_vmladava(INT32_MAX, th_vld_s8(a), th_vld_s8(b)) != (int32_t)(2147483647u + 262144u);
        bad += th_vmladava(0, th_vld_s8_z(a, th_vctp8(2)), th_vld_s8(b)) != 32768;  /* zeroed lanes */
    }
    {
        /* VMULLB/VMULLT (even/odd int16 lanes to 32 bits), VLD2 and the interleaving store. */
        int8_t a[8] = {-128, 127, -1, 2, 3, -4, 100, -100}, b[8] = {-128, -128, 5, 6, -7, 8, 127, 127};
        const th_s32x4 lo4 = th_vmullb(th_vld_s8h(a), th_vld_s8h(b)), hi4 = th_vmullt(th_vld_s8h(a), th_vld_s8h(b));
        bad += lo4.v[0] != 16384 || lo4.v[1] != -5 || lo4.v[2] != -21 || lo4.v[3] != 12700;
        bad += hi4.v[0] != -16256 || hi4.v[1] != 12 || hi4.v[2] != -32 || hi4.v[3] != -12700;
        const int32_t w[8] = {0, 1, 2, 3, 4, 5, 6, 7};
        th_s32x4 e, o;
        th_vld2_s32(w, &e, &o);
        bad += e.v[1] != 2 || e.v[3] != 6 || o.v[0] != 1 || o.v[3] != 7;
        int8_t st[8];
        th_vst_s8_eo(st, e, o);
        for (int i = 0; i < 8; ++i) bad += st[i] != i;
        /* VQMOVN saturates: int32 -> int16 -> int8 in channel order. */
        const int32_t big[8] = {INT32_MIN, INT32_MAX, -129, 128, -128, 127, 70000, -70000};
        th_vld2_s32(big, &e, &o);
        th_vst_s8_eo_sat(st, e, o);
        const int8_t sat[8] = {-128, 127, -128, 127, -128, 127, 127, -128};
        for (int i = 0; i < 8; ++i) bad += st[i] != sat[i];
    }
    printf("checked %ld bad %ld\n", checked, bad);
    return bad != 0;
}
"""


def test_vrequant_is_tflm_arithmetic_and_the_emulation_follows_arm(tmp_path: Path) -> None:
    src = tmp_path / "rq.c"
    src.write_text(_REQUANT_C)
    exe = tmp_path / "rq"
    subprocess.run([find_host_cc(), "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{KERNEL_DIR}",
                    str(src), "-o", str(exe)], check=True, capture_output=True, text=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert "checked 4" in proc.stdout  # hundreds of thousands of lanes, none wrong


@pytest.mark.parametrize("bench", sorted(MLPERF))
def test_mve_c_is_bit_exact_on_the_host(bench: str) -> None:
    """Every MLPerf Tiny model's --isa mve C (the Helium kernels, emulated) against the
    interpreter: random inputs, and KWS's and AD's real ones."""
    model = load_model(MODELS / f"{MLPERF[bench]}.tflite")
    gen = generate(model, "mve")
    assert "th_conv2d_s8_mve" in gen.sources["th_model.c"] or bench == "ad"
    assert "th_fully_connected_s8_mve" in gen.sources["th_model.c"] or bench in ("vww",)
    samples = random_samples(model, 4, seed=7)
    data = {"kws": "kws01", "ad": "ad01"}.get(bench)
    if data:
        samples = [*samples, *load_dataset(MODELS.parents[1] / "datasets" / data, model, limit=25)]
    result = check_model(model, samples, isa="mve")
    assert result.ok and result.samples == len(samples), result


def test_mve_build_for_a_core_without_it_is_refused() -> None:
    model = load_model(MODELS / "ad01_int8.tflite")
    with pytest.raises(BuildError, match="generated for mve kernels, which its core"):
        build_firmware(generate(model, "mve"), find_target("cortex-m4"))
    with pytest.raises(ValueError, match="isa 'sve'"):
        generate(model, "sve")


@pytest.mark.qemu
@pytest.mark.parametrize("bench", ["kws", "ad"])
def test_helium_kernels_under_qemu_cortex_m55(bench: str) -> None:
    """cortex-m55's firmware runs the Helium kernels (their symbols are in the ELF), and
    its output equals the interpreter's byte for byte, as the default kernels' does on
    the same core, in fewer instructions."""
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not found: sudo apt-get install qemu-system-arm")
    from harness.bench import fixed_input, input_job, reference_outputs
    from harness.runners.qemu import QemuRunner

    target = find_target("cortex-m55")
    assert target.builtin_isa == "mve"
    model = load_model(MODELS / f"{MLPERF[bench]}.tflite")
    sample = fixed_input(model, None)
    (want,) = reference_outputs(model, [sample])
    counts = {}
    for isa in ("mve", ""):
        image = build_firmware(generate(model, isa), target)
        nm = subprocess.run(["arm-none-eabi-nm", str(image.elf)], capture_output=True, text=True, check=True).stdout
        kernel = "th_conv2d_s8_mve" if bench == "kws" else "th_fully_connected_s8_mve"
        assert (kernel in nm) == (isa == "mve")
        record = QemuRunner(cycle_model=False).run(image.elf, target, input_job(model, sample), 120)
        assert record.ok, record.error
        assert record.output == want, (isa, record.output.hex(), want.hex())
        counts[isa] = record.count_per_inference
    assert counts["mve"] < counts[""], counts


# Helium CONV_2D / DEPTHWISE_CONV_2D shapes: channel counts that leave 8-channel int16
# blocks, 16-channel odd-pixel blocks and predicated 4-lane tails; odd output widths
# (a last pixel alone), strides, padding; gain0 gives channel 0 a left shift, so the
# layer takes the general requantization instead of th_vrequant_fast_v; with RELU6
# the depthwise clamp is not the int8 range the narrowing stores saturate to.
HELIUM_LAYERS = [
    dict(op="DEPTHWISE_CONV_2D", in_shape=(1, 7, 9, 4)),
    dict(op="DEPTHWISE_CONV_2D", in_shape=(1, 6, 7, 12), stride=(2, 2)),
    dict(op="DEPTHWISE_CONV_2D", in_shape=(1, 5, 5, 24), padding="VALID"),
    dict(op="DEPTHWISE_CONV_2D", in_shape=(2, 5, 7, 40)),
    dict(op="DEPTHWISE_CONV_2D", in_shape=(1, 5, 7, 24), gain0=2000.0),
    dict(op="DEPTHWISE_CONV_2D", in_shape=(1, 5, 7, 24), act="RELU6"),
    dict(op="CONV_2D", in_shape=(1, 6, 5, 8), out_c=13),
    dict(op="CONV_2D", in_shape=(1, 6, 5, 8), out_c=13, gain0=2000.0),
]


def _helium_layer(tmp_path: Path, case: int) -> tuple[Path, int]:
    from tests.test_conv import _model as conv_model

    spec = dict(HELIUM_LAYERS[case])
    path = tmp_path / f"helium{case}.tflite"
    path.write_bytes(conv_model(spec.pop("op"), **spec))
    mode = int(re.findall(r"\.requant_mode = (\d+)", generate(load_model(path), "mve").sources["th_model.c"])[0])
    return path, mode


@pytest.mark.parametrize("case", range(len(HELIUM_LAYERS)))
def test_helium_layers_on_the_host(tmp_path: Path, case: int) -> None:
    """Each shape through the emulated Helium kernels equals the interpreter; the
    requantization is the fast form exactly when every shift is a right shift, and a
    depthwise layer clamping to the int8 range saturates as it stores."""
    path, mode = _helium_layer(tmp_path, case)
    spec = HELIUM_LAYERS[case]
    sat8 = spec["op"] == "DEPTHWISE_CONV_2D" and "act" not in spec
    assert mode == (0 if "gain0" in spec else 2 if sat8 else 1)
    model = load_model(path)
    result = check_model(model, random_samples(model, 6, seed=case), isa="mve")
    assert result.ok, result


@pytest.mark.qemu
def test_helium_layers_under_qemu_cortex_m55(tmp_path: Path) -> None:
    """The same shapes on QEMU's Cortex-M55: VMULLB/VMULLT, VLD2, VMOVNB/VMOVNT and the
    fast requantization themselves, byte for byte against the interpreter."""
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not found: sudo apt-get install qemu-system-arm")
    from harness.reference import Reference
    from tests import test_firmware as fw

    target = find_target("cortex-m55")
    for case in range(len(HELIUM_LAYERS)):
        path, _ = _helium_layer(tmp_path, case)
        model = load_model(path)
        image = build_firmware(generate(model, "mve"), target, cache_dir=tmp_path / "fw")
        dut = fw.QemuDut(target, image.elf)
        try:
            for sample in random_samples(model, 2, seed=case):
                want = b"".join(a.tobytes() for a in Reference(model).run(sample.inputs))
                assert len(set(want)) >= 8, "degenerate test: outputs barely vary"
                assert dut.infer_output(sample.inputs[0].tobytes()) == want, (case, sample.name)
        finally:
            dut.close()


@pytest.mark.qemu
def test_same_shape_add_on_helium_byte_pairs(tmp_path: Path) -> None:
    """The same-shape ADD's Helium path (table gathers, th_vrequant) on cortex-m55 under
    QEMU: every first-input byte against 64 second-input bytes from -128 to 127 (the
    host test runs all 65,536 pairs through the same tables), for scales whose
    requantization takes the fast and the exact form on DSP cores, equal the interpreter's."""
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not found: sudo apt-get install qemu-system-arm")
    from harness.bench import input_job, reference_outputs
    from harness.datasets import Sample
    from harness.runners.qemu import QemuRunner
    from tests.test_pool_elementwise import ADD_TABLE_CASES, _binary_model

    import numpy as np

    target = find_target("cortex-m55")
    second = np.r_[np.arange(-128, 124, 4), 127].astype(np.int8)
    a, b = np.meshgrid(np.arange(-128, 128, dtype=np.int8), second)
    sample = Sample("pairs", (a.reshape(1, 64, 256, 1), b.reshape(1, 64, 256, 1)), None)
    for case in ("first_larger", "unit_output_shift"):  # the fast and the exact requantization on DSP cores
        s1, z1, s2, z2, so, zo = ADD_TABLE_CASES[case]
        path = tmp_path / f"{case}.tflite"
        path.write_bytes(_binary_model("ADD", [1, 64, 256, 1], [1, 64, 256, 1], s1=s1, z1=z1, s2=s2, z2=z2,
                                       so=so, zo=zo))
        model = load_model(path)
        (want,) = reference_outputs(model, [sample])
        image = build_firmware(generate(model, "mve"), target)
        record = QemuRunner(cycle_model=False).run(image.elf, target, input_job(model, sample), 300)
        assert record.ok and record.output == want, (case, record.error)
