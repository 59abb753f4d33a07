"""Compression recipes on a small synthetic float model; refusals; the LUT path bit-exact.

The quantizing recipes need ai-edge-quantizer (the `recipes` and `test` extras);
without it they skip, naming the install command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.datasets import random_samples
from harness.engines.dispatch import BUILTIN as BUILTIN_SPEC
from harness.model import load_model, parse_model
from harness.recipes import (INSTALL_HINT, Calibration, RecipeError, apply_recipe, parse_recipe,
                             parse_recipes, recipe_names)
from harness.synth import ModelBuilder
from tests.conftest import check_synthetic

try:
    import ai_edge_quantizer  # noqa: F401
    HAVE_AEQ = True
except ImportError:
    HAVE_AEQ = False

needs_aeq = pytest.mark.skipif(not HAVE_AEQ, reason=f"ai-edge-quantizer not installed: {INSTALL_HINT}")

RECIPES = ["int8", "int8-per-tensor", "int16x8", "prune50-int8", "cluster4-lut"]


def float_model() -> bytes:
    """CONV(relu) -> DEPTHWISE(relu) -> AVERAGE_POOL -> RESHAPE -> FC -> SOFTMAX, all float32."""
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    f = dict(dtype="float32", scale=None)  # tensors: unquantized float32
    x = b.tensor("x", [1, 8, 8, 2], **f)
    w1 = b.const("w1", rng.normal(0, 0.5, (8, 3, 3, 2)), dtype="float32")
    b1 = b.const("b1", rng.normal(0, 0.1, 8), dtype="float32")
    y1 = b.tensor("y1", [1, 8, 8, 8], **f)
    b.op("CONV_2D", [x, w1, b1], [y1], padding="SAME", stride_w=1, stride_h=1, fused_activation_function="RELU")
    w2 = b.const("w2", rng.normal(0, 0.5, (1, 3, 3, 8)), dtype="float32")
    b2 = b.const("b2", rng.normal(0, 0.1, 8), dtype="float32")
    y2 = b.tensor("y2", [1, 4, 4, 8], **f)
    b.op("DEPTHWISE_CONV_2D", [y1, w2, b2], [y2], padding="SAME", stride_w=2, stride_h=2, depth_multiplier=1,
         fused_activation_function="RELU")
    y3 = b.tensor("y3", [1, 1, 1, 8], **f)
    b.op("AVERAGE_POOL_2D", [y2], [y3], padding="VALID", stride_w=4, stride_h=4, filter_width=4, filter_height=4)
    shape = b.const("shape", np.array([1, 8]), dtype="int32")
    y4 = b.tensor("y4", [1, 8], **f)
    b.op("RESHAPE", [y3, shape], [y4])
    w5 = b.const("w5", rng.normal(0, 0.5, (4, 8)), dtype="float32")
    b5 = b.const("b5", rng.normal(0, 0.1, 4), dtype="float32")
    y5 = b.tensor("y5", [1, 4], **f)
    b.op("FULLY_CONNECTED", [y4, w5, b5], [y5])
    y6 = b.tensor("y6", [1, 4], **f)
    b.op("SOFTMAX", [y5], [y6], beta=1.0)
    return b.build(inputs=[x], outputs=[y6])


def calibration(n: int = 32) -> Calibration:
    rng = np.random.default_rng(2)
    return Calibration(tuple((rng.uniform(-1, 1, (1, 8, 8, 2)).astype(np.float32),) for _ in range(n)),
                       "synthetic test inputs")


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recipes") / "synth_float.tflite"
    path.write_bytes(float_model())
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recipe-cache")


# --------------------------------------------------------------------------- names

def test_names_parse_with_parameters() -> None:
    assert set(recipe_names()) >= {"int8", "int8-per-tensor", "int16x8", "prune<P>-int8", "cluster<K>-lut"}
    assert parse_recipe("prune50-int8").params == (("p", 50),)
    assert parse_recipe("cluster16-lut").params == (("k", 16),)
    assert [s.name for s in parse_recipes("int8, cluster16-lut")] == ["int8", "cluster16-lut"]


@pytest.mark.parametrize("name, message", [
    ("int4", "unknown recipe 'int4'"),
    ("prune0-int8", "sparsity P is a percentage"),
    ("prune100-int8", "sparsity P is a percentage"),
    ("cluster1-lut", "K is the number of values"),
    ("cluster256-lut", "K is the number of values"),
])
def test_bad_names_and_parameters_are_refused(name: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_recipe(name)


# --------------------------------------------------------------------------- recipes

@needs_aeq
def test_no_calibration_data_is_refused(synth: Path, cache: Path) -> None:
    with pytest.raises(RecipeError, match="no calibration data.*never calibrates on random data"):
        apply_recipe(parse_recipe("int8"), synth, None, cache)


@needs_aeq
@pytest.mark.parametrize("name", RECIPES)
def test_recipe_output_runs_in_tflm(synth: Path, cache: Path, name: str) -> None:
    from harness.reference import Reference

    path = apply_recipe(parse_recipe(name), synth, calibration(), cache)
    assert apply_recipe(parse_recipe(name), synth, calibration(), cache) == path  # cached
    model = load_model(path)
    io = "int16" if name == "int16x8" else "int8"
    assert [t.dtype for t in model.input_tensors() + model.output_tensors()] == [io, io]
    weights = {op.name: model.tensors[op.inputs[1]] for op in model.operators
               if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")}
    assert set(weights) == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    for op_name, w in weights.items():
        assert w.dtype == "int8" and w.quant is not None
        assert w.quant.per_channel == (name != "int8-per-tensor"), op_name
    pool = next(op for op in model.operators if op.name == "AVERAGE_POOL_2D")
    assert model.tensors[pool.inputs[0]].quant == model.tensors[pool.outputs[0]].quant
    if name.startswith("prune"):
        w = weights["CONV_2D"].data
        assert w is not None and np.mean(w == 0) >= 0.5
    if name.startswith("cluster"):
        raw = path.read_bytes()
        assert b"TFLM_DECODE" in raw
        for op_name, w in weights.items():
            axis = w.quant.axis if w.quant is not None else 0
            assert w.data is not None
            assert max(np.unique(ch).size for ch in np.moveaxis(w.data, axis, 0)) <= 4, op_name
    Reference(model).run(random_samples(model, 1)[0].inputs)


@needs_aeq
def test_lut_model_is_bit_exact_between_builtin_engine_and_tflm(synth: Path, cache: Path, tmp_path: Path) -> None:
    path = apply_recipe(parse_recipe("cluster4-lut"), synth, calibration(), cache)
    check_synthetic(path.read_bytes(), tmp_path, "cluster4_lut", count=8)


@needs_aeq
def test_per_tensor_lut_on_per_channel_weights_is_refused(synth: Path, cache: Path) -> None:
    from harness.recipes.cluster import lut_compress

    int8 = apply_recipe(parse_recipe("int8"), synth, calibration(), cache).read_bytes()
    with pytest.raises(RecipeError, match="per-tensor LUT on per-channel-quantized weights"):
        lut_compress(int8, per_tensor=True)


def test_average_pool_rescale_is_fixed_for_tflm() -> None:
    from harness.recipes.check import check_and_fix

    b = ModelBuilder()
    x = b.tensor("x", [1, 4, 4, 2], scale=0.1, zero_point=-3)
    y = b.tensor("y", [1, 1, 1, 2], scale=0.03, zero_point=5)
    b.op("AVERAGE_POOL_2D", [x], [y], padding="VALID", stride_w=4, stride_h=4, filter_width=4, filter_height=4)
    shape = b.const("shape", np.array([1, 2]), dtype="int32")
    z = b.tensor("z", [1, 2], scale=0.03, zero_point=5)
    b.op("RESHAPE", [y, shape], [z])
    fixed = parse_model(check_and_fix(b.build(inputs=[x], outputs=[z]), 8))
    assert all(t.quant is not None and t.quant.scales == (np.float32(0.1),) and t.quant.zero_points == (-3,)
               for t in fixed.tensors if t.name in ("y", "z"))


def test_lut_decode_matches_the_compressor(tmp_path: Path) -> None:
    """harness.lut expands tflite-micro's LUT format to the original int8 weights."""
    from harness.recipes.cluster import lut_compress

    rng = np.random.default_rng(3)
    b = ModelBuilder()
    x = b.tensor("x", [1, 64], scale=0.1)
    levels = rng.integers(-127, 128, (8, 4))
    w = b.const("w", np.stack([rng.choice(levels[c], 64) for c in range(8)]), scales=[0.01] * 8)
    bias = b.const("b", np.zeros(8), dtype="int32", scales=[0.001] * 8)
    y = b.tensor("y", [1, 8], scale=0.2)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    raw = b.build(inputs=[x], outputs=[y])
    compressed = lut_compress(raw)
    assert b"TFLM_DECODE" in compressed
    plain, decoded = parse_model(raw), parse_model(compressed)
    assert [op.name for op in decoded.operators] == ["FULLY_CONNECTED"]
    fc = decoded.operators[0]
    assert np.array_equal(decoded.tensors[fc.inputs[1]].data, plain.tensors[1].data)
    check_synthetic(compressed, tmp_path, "fc_lut")


# --------------------------------------------------------------------------- compare

def test_compare_rows_keep_failed_recipes_and_deltas(tmp_path: Path) -> None:
    from dataclasses import replace

    from harness.recipes.compare import Variant, delta, failed_row, run_variants
    from harness.targets import find_target

    target = find_target("cortex-m4")

    class NoRunner:
        name = "qemu"

    rows = run_variants("kws", tmp_path / "m.tflite", [Variant("int16x8", None, "engine lacks int16")],
                        target, NoRunner(), [], None, 1, 0, 1.0)  # type: ignore[arg-type]
    assert rows[0].status == "failed" and rows[0].recipe == "int16x8" and "int16" in rows[0].error
    base = replace(failed_row("kws", "m", target, "qemu", "int8", ""), status="ok", instructions=100,
                   flash_bytes=1000, ram_bytes=10, energy_uj=2.0, accuracy=0.9, accuracy_metric="top1")
    other = replace(base, recipe="cluster16-lut", instructions=110, flash_bytes=800, accuracy=0.88)
    d = delta(other, base)
    assert d.instructions == pytest.approx(0.1) and d.flash == pytest.approx(-0.2)
    assert d.accuracy_points == pytest.approx(-2.0)
    assert delta(rows[0], base).instructions is None


def test_compare_table_shows_file_and_firmware_bytes_per_engine() -> None:
    """Each recipe on each engine: firmware flash with its change against int8 on the same
    engine, the .tflite's size and constant bytes, and builtin's flash over TFLM's."""
    from dataclasses import replace

    from rich.console import Console

    from harness.cli.compare import compare_table, flash_ratios
    from harness.engines import EngineSpec
    from harness.recipes.compare import Variant, failed_row, run_variants
    from harness.targets import find_target

    target = find_target("cortex-m4")
    tflm = EngineSpec("tflm", "ref")
    assert (failed_row("ad", "m", target, "qemu", "int8", "", tflm).engine,
            failed_row("ad", "m", target, "qemu", "int8", "", tflm).kernels) == ("tflm", "ref")
    rows = [replace(failed_row("ad", "m", target, "qemu", recipe, "", engine), status="ok", instructions=100,
                    flash_bytes=flash, ram_bytes=10, energy_uj=1.0)
            for recipe, engine, flash in (("int8", BUILTIN_SPEC, 294_644), ("int8", tflm, 359_844),
                                          ("cluster16-lut", BUILTIN_SPEC, 189_068),
                                          ("cluster16-lut", tflm, 296_004))]
    console = Console(record=True, width=220)
    console.print(compare_table(rows, {"int8": 270_848, "cluster16-lut": 164_147},
                                {"int8": 316_000, "cluster16-lut": 230_096}))
    text = console.export_text()
    assert "recipe (engine)" in text and "(tflm ref)" in text and "(builtin)" in text
    assert "224.7" in text and "(160.3)" in text and "308.6" in text and "(264.5)" in text
    assert "184.6" in text and "-35.8%" in text  # builtin's cluster16-lut against builtin's int8
    assert "289.1" in text and "-17.7%" in text  # tflm's against tflm's
    assert flash_ratios(rows) == [("int8", pytest.approx(294_644 / 359_844), "tflm ref"),
                                  ("cluster16-lut", pytest.approx(189_068 / 296_004), "tflm ref")]

    class NoRunner:
        name = "qemu"

    failed = run_variants("ad", Path("m.tflite"), [Variant("int16x8", None, "refused")], target,
                          NoRunner(), [], None, 1, 0, 1.0, engines=[BUILTIN_SPEC, tflm])  # type: ignore[arg-type]
    assert [(r.engine, r.kernels, r.status) for r in failed] == [("builtin", "", "failed"), ("tflm", "ref", "failed")]


def test_html_report_has_a_pareto_plot_of_the_recipes(tmp_path: Path) -> None:
    from dataclasses import replace

    from harness.recipes.compare import failed_row
    from harness.report.html_page import pareto_front
    from harness.targets import find_target

    assert pareto_front([(1.0, 0.8), (2.0, 0.9), (3.0, 0.85), (1.0, 0.7)]) == [0, 1]
    target = find_target("cortex-m4")
    rows = [replace(failed_row("kws", "m", target, "qemu", name, ""), status="ok", latency_ms=lat, accuracy=acc,
                    accuracy_metric="top1", flash_bytes=flash, instructions=1000)
            for name, lat, acc, flash in (("int8", 2.0, 0.9, 40000), ("cluster16-lut", 2.1, 0.89, 30000),
                                          ("int16x8", 1.5, 0.91, 45000), ("int8-per-tensor", 1.9, 0.85, 40000))]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in rows))
    html = tmp_path / "r.html"
    from harness.cli import main

    with pytest.raises(SystemExit) as e:
        main(["report", str(path), "--html", str(html)])
    assert e.value.code == 0
    text = html.read_text()
    assert "Compression recipes (Pareto)" in text and "cluster16-lut" in text


def test_compare_refuses_user_mistakes_before_any_work(tmp_path: Path) -> None:
    from harness.cli import main

    model = tmp_path / "my_float.tflite"
    model.write_bytes(float_model())
    for argv, code in ((["compare", "--model", str(tmp_path / "missing.tflite"), "--recipes", "int8"], 2),
                       (["compare", "--model", str(model), "--recipes", "int8,int4"], 2),
                       (["compare", "--model", str(model), "--recipes", "int8", "--engine", "tvm"], 2)):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == code


@needs_aeq
def test_compare_without_a_dataset_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    model = tmp_path / "my_float.tflite"
    model.write_bytes(float_model())
    with pytest.raises(SystemExit) as e:
        main(["compare", "--model", str(model), "--recipes", "int8"])
    assert e.value.code == 2
    assert "no calibration data" in capsys.readouterr().err


def test_buffers_stored_after_the_flatbuffer_are_moved_inside() -> None:
    """ai-edge-quantizer writes big models' buffers after the flatbuffer (offset/size);
    the checks and tflite-micro's compressor read inline data only."""
    from harness.recipes.quantize import inline_buffers, read, write

    b = ModelBuilder()
    x = b.tensor("x", [1, 64], scale=0.1)
    w = b.const("w", np.arange(512).reshape(8, 64) % 255 - 127, scales=[0.01] * 8)
    bias = b.const("b", np.arange(8), dtype="int32", scales=[0.001] * 8)
    y = b.tensor("y", [1, 8], scale=0.2)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    plain = b.build(inputs=[x], outputs=[y])
    m = read(plain)
    tail = bytearray()
    for buf in m.buffers[1:]:
        data = np.asarray(buf.data, np.uint8).tobytes()
        buf.data, buf.offset, buf.size = None, 1, len(data)  # placeholders, fixed below
        tail += data
    # Offsets are absolute in the file: point them past the flatbuffer (whose size the
    # nonzero placeholders already fix), then append the data there.
    pos = len(write(m)) + 64
    for buf in m.buffers[1:]:
        buf.offset, pos = pos, pos + buf.size
    head = write(m)
    stored = head + bytes(m.buffers[1].offset - len(head)) + bytes(tail)
    outside = parse_model(stored)
    assert np.array_equal(outside.tensors[w].data, parse_model(plain).tensors[w].data)
    inlined = inline_buffers(stored)
    assert all(int(buf.offset) <= 1 for buf in read(inlined).buffers)
    again = parse_model(inlined)
    for i in (w, bias):
        assert np.array_equal(again.tensors[i].data, parse_model(plain).tensors[i].data)


@needs_aeq
@pytest.mark.qemu
def test_compare_runs_recipes_on_target_with_accuracy(synth: Path, cache: Path, arm_tools: tuple[str, str],
                                                      tmp_path: Path) -> None:
    """int8 and cluster4-lut of the synthetic model through the bench under QEMU, with a
    labelled dataset on target: both rows ok, recipe set, firmware equal to the host."""
    from harness.datasets import Sample
    from harness.recipes.compare import Variant, run_variants
    from harness.runners.qemu import QemuRunner
    from harness.targets import find_target

    rng = np.random.default_rng(4)
    samples = [Sample(f"s{i}", (), i % 4, rng.uniform(-1, 1, (1, 8, 8, 2)).astype(np.float32)) for i in range(6)]
    variants = [Variant(name, apply_recipe(parse_recipe(name), synth, calibration(), cache))
                for name in ("int8", "cluster4-lut")]
    rows = run_variants("synth", synth, variants, find_target("cortex-m4"), QemuRunner(arm_tools[1]), samples,
                        None, 1, 0, 120.0)
    assert [(r.recipe, r.status) for r in rows] == [("int8", "ok"), ("cluster4-lut", "ok")], rows[0].error
    for r in rows:
        assert r.model == synth.stem and r.accuracy_metric == "top1" and r.accuracy_samples == 6
        assert r.predictions_match_reference and r.output_matches_reference
