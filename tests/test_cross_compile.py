"""The generated C and kernels build warning-free for Cortex-M, with no malloc and
no floating point outside QUANTIZE/DEQUANTIZE."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.engines.builtin import generate
from harness.engines.builtin.codegen import KERNEL_DIR
from harness.firmware import TEMPLATES
from harness.model import load_model, parse_model
from harness.synth import ModelBuilder

ARM_GCC = shutil.which("arm-none-eabi-gcc")
needs_arm_gcc = pytest.mark.skipif(
    ARM_GCC is None, reason="arm-none-eabi-gcc not on PATH (apt-get install gcc-arm-none-eabi)")

# Soft-float ABI: any float/double arithmetic becomes an __aeabi_* call we can see.
CFLAGS = ["-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft", "-O2",
          "-Wall", "-Wextra", "-Werror", "-pedantic-errors", "-ffunction-sections"]
FLOAT_HELPERS = ("__aeabi_f", "__aeabi_d", "__aeabi_i2f", "__aeabi_i2d", "__aeabi_l2")
FLOAT_OK = {"th_quantize", "th_quantize_s16"}  # the float boundary ops, by design


def _compile(src: Path, out_dir: Path, include: Path) -> Path:
    obj = out_dir / (src.stem + ".o")
    # th_model.h, the engine ABI, lives with the common firmware
    cmd = [str(ARM_GCC), *CFLAGS, f"-I{include}", f"-I{KERNEL_DIR}", f"-I{TEMPLATES / 'common'}", "-c", str(src),
           "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr.strip(), f"{src.name}:\n{proc.stderr}"
    return obj


def _undefined(obj: Path) -> set[str]:
    nm = shutil.which("arm-none-eabi-nm") or "nm"
    out = subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


@needs_arm_gcc
def test_kernels_have_no_float_and_no_malloc(tmp_path: Path) -> None:
    kernels = sorted(KERNEL_DIR.glob("*.c"))
    assert len(kernels) >= 10
    for src in kernels:
        undefined = _undefined(_compile(src, tmp_path, KERNEL_DIR))
        assert not undefined & {"malloc", "calloc", "realloc", "free"}, src.name
        if src.stem not in FLOAT_OK:
            floats = sorted(s for s in undefined if s.startswith(FLOAT_HELPERS))
            assert not floats, f"{src.name} uses floating point: {floats}"


@needs_arm_gcc
def test_generated_model_builds_warning_free(tmp_path: Path, shared_models: Path) -> None:
    for name in ("kws_ref_model", "pretrainedResnet_quant"):
        gen = generate(load_model(shared_models / f"{name}.tflite"))
        out = tmp_path / name
        for src in gen.write(out):
            if src.suffix == ".c":
                undefined = _undefined(_compile(src, out, out))
                assert "malloc" not in undefined


@needs_arm_gcc
def test_weights_are_const_in_flash(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 16], scale=0.1)
    w = b.const("w", np.ones((4, 16)), scales=0.01)
    y = b.tensor("y", [1, 4], scale=0.2)
    b.op("FULLY_CONNECTED", [x, w, -1], [y], fused_activation_function="NONE")
    gen = generate(parse_model(b.build([x], [y]), "fc.tflite"))
    # The int8 FC kernel takes its weights re-laid out at build time; they are
    # declared next to the op's parameters in th_model.c, named th_w_<tensor>_*.
    (model_c,) = [p for p in gen.write(tmp_path) if p.name == "th_model.c"]
    obj = _compile(model_c, tmp_path, tmp_path)
    from elftools.elf.elffile import ELFFile

    with obj.open("rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        (sym,) = [s for s in symtab.iter_symbols() if s.name.startswith(f"th_w_{w}_")]
        section = elf.get_section(sym["st_shndx"])
        assert section.name.startswith(".rodata"), section.name
        assert sym["st_size"] == 64
        data = elf.get_section_by_name(".data")
        assert data is None or data.data_size == 0
