"""Bad inputs are one clear error (a TinyhilError), never a traceback (issue 15).

Unit tests for each model and dataset check, and a seeded fuzz test: mutants of
the KWS model go through what a user hits first (load_model, then the builtin
engine's code generation and arena planning); each must either work or raise
a TinyhilError, quickly.
"""

from __future__ import annotations

import random
import signal
import struct
import time
import traceback
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import pytest

from harness.datasets import load_dataset
from harness.engines.builtin import generate
from harness.errors import DatasetError, ModelError, TinyhilError, UnsupportedOpError
from harness.model import load_model, parse_model
from harness.synth import ModelBuilder
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

KWS = "kws_ref_model.tflite"


def _pack(fb: Any) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(fb.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _kws_object(shared_models: Path) -> Any:
    return schema.ModelT.InitFromPackedBuf((shared_models / KWS).read_bytes(), 0)


def _write(tmp_path: Path, fb: Any, name: str = "bad.tflite") -> Path:
    p = tmp_path / name
    p.write_bytes(_pack(fb))
    return p


# --- model structure ----------------------------------------------------------------


def test_subgraph_input_out_of_range(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    fb.subgraphs[0].inputs = np.array([99], dtype=np.int32)
    p = _write(tmp_path, fb)
    with pytest.raises(ModelError, match=r"bad.tflite: subgraph input 0 refers to tensor 99, but the model has 35 "
                                         r"tensors"):
        load_model(p)


def test_subgraph_output_negative(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    fb.subgraphs[0].outputs = np.array([-1], dtype=np.int32)
    with pytest.raises(ModelError, match=r"bad.tflite: subgraph output 0 refers to tensor -1"):
        load_model(_write(tmp_path, fb))


@pytest.mark.parametrize("side", ["inputs", "outputs"])
def test_model_without_inputs_or_outputs(tmp_path: Path, shared_models: Path, side: str) -> None:
    fb = _kws_object(shared_models)
    setattr(fb.subgraphs[0], side, np.array([], dtype=np.int32))
    with pytest.raises(ModelError, match=rf"bad.tflite: the model has no {side}"):
        load_model(_write(tmp_path, fb))


def test_operator_input_out_of_range(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    fb.subgraphs[0].operators[3].inputs = np.array([24, 500, 7], dtype=np.int32)
    with pytest.raises(ModelError, match=r"bad.tflite: operator #3 DEPTHWISE_CONV_2D input 1 refers to tensor 500, "
                                         r"but the model has 35 tensors"):
        load_model(_write(tmp_path, fb))


def test_operator_output_omitted(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    fb.subgraphs[0].operators[0].outputs = np.array([-1], dtype=np.int32)
    with pytest.raises(ModelError, match=r"operator #0 CONV_2D output 0 refers to tensor -1"):
        load_model(_write(tmp_path, fb))


@pytest.mark.parametrize("shape", [[1, 65536, 65536, 64], [2**31 - 1, 2], [46341, 46341]])
def test_overflowing_shape(tmp_path: Path, shared_models: Path, shape: list[int]) -> None:
    fb = _kws_object(shared_models)
    fb.subgraphs[0].tensors[24].shape = np.array(shape, dtype=np.int32)
    name = fb.subgraphs[0].tensors[24].name.decode()
    with pytest.raises(ModelError, match=rf"bad.tflite: tensor #24 '{name}' of shape \[.*\] int8 needs "
                                         r"\d+ bytes, more than 2\*\*31"):
        load_model(_write(tmp_path, fb))


def test_huge_dims_in_many_tensors_is_one_error(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    for t in fb.subgraphs[0].tensors[22:30]:
        t.shape = np.array([1, 2**30, 2**30, 1], dtype=np.int32)
    with pytest.raises(ModelError, match=r"tensor #22 .* more than 2\*\*31"):
        load_model(_write(tmp_path, fb))


def test_negative_dim_other_than_batch(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    fb.subgraphs[0].tensors[24].shape = np.array([1, 25, -5, 64], dtype=np.int32)
    with pytest.raises(ModelError, match=r"tensor #24 .* shape \(1, 25, -5, 64\)"):
        load_model(_write(tmp_path, fb))


def test_buffer_index_out_of_range(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    fb.subgraphs[0].tensors[5].buffer = 1000
    with pytest.raises(ModelError, match=r"bad.tflite: tensor #5 '.*' points at buffer 1000, but the file has 37"):
        load_model(_write(tmp_path, fb))


def test_opcode_index_out_of_range(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    fb.subgraphs[0].operators[2].opcodeIndex = 77
    with pytest.raises(ModelError, match=r"bad.tflite: operator #2 has opcode index 77"):
        load_model(_write(tmp_path, fb))


def test_synthetic_model_with_huge_intermediate() -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 4], scale=0.5)
    big = b.tensor("big", [1, 50000, 50000], scale=0.5)
    b.op("RESHAPE", [x], [big])
    raw = b.build([x], [big])
    with pytest.raises(ModelError, match=r"m.tflite: tensor #1 'big' of shape \[1, 50000, 50000\] int8 needs "
                                         r"2500000000 bytes"):
        parse_model(raw, "m.tflite")


# --- datasets ----------------------------------------------------------------------


def _kws_dataset(tmp_path: Path, shared_datasets: Path, labels: bytes) -> Path:
    d = tmp_path / "ds"
    d.mkdir()
    src = sorted((shared_datasets / "kws01").glob("*.bin"))[:3]
    for f in src:
        (d / f.name).write_bytes(f.read_bytes())
    (d / "y_labels.csv").write_bytes(labels.replace(b"{0}", src[0].name.encode())
                                     .replace(b"{1}", src[1].name.encode())
                                     .replace(b"{2}", src[2].name.encode()))
    return d


def test_binary_labels_file(tmp_path: Path, shared_models: Path, shared_datasets: Path) -> None:
    model = load_model(shared_models / KWS)
    d = _kws_dataset(tmp_path, shared_datasets, b"{0},12,7\n{1},12,2\n\x00\xff\xfe\x89PNG\x00\x00\n")
    with pytest.raises(DatasetError, match=r"ds/y_labels.csv: line 3 is not UTF-8 text"):
        load_dataset(d, model)


def test_label_outside_the_models_classes(tmp_path: Path, shared_models: Path, shared_datasets: Path) -> None:
    model = load_model(shared_models / KWS)
    d = _kws_dataset(tmp_path, shared_datasets, b"{0},12,7\n{1},12,99\n{2},12,1\n")
    with pytest.raises(DatasetError, match=r"ds/y_labels.csv: line 2: input tst_\w+\.bin has label 99, but the "
                                           r"model has 12 classes \(labels 0\.\.11\)"):
        load_dataset(d, model)


def test_label_not_an_integer(tmp_path: Path, shared_models: Path, shared_datasets: Path) -> None:
    model = load_model(shared_models / KWS)
    d = _kws_dataset(tmp_path, shared_datasets, b"{0},12,seven\n")
    with pytest.raises(DatasetError, match=r"y_labels.csv: line 1: label 'seven' of input tst_\w+\.bin is not an "
                                           r"integer"):
        load_dataset(d, model)


def test_negative_label(tmp_path: Path, shared_models: Path, shared_datasets: Path) -> None:
    model = load_model(shared_models / KWS)
    d = _kws_dataset(tmp_path, shared_datasets, b"{0},12,-1\n")
    with pytest.raises(DatasetError, match=r"has label -1, but the model has 12 classes"):
        load_dataset(d, model)


def test_good_labels_still_load(tmp_path: Path, shared_models: Path, shared_datasets: Path) -> None:
    model = load_model(shared_models / KWS)
    d = _kws_dataset(tmp_path, shared_datasets, b"{0},12,0\n{1},12,11\n")
    samples = load_dataset(d, model)
    assert [s.label for s in samples] == [0, 11, None]


def test_anomaly_labels_are_not_class_checked(shared_models: Path, shared_datasets: Path) -> None:
    """AD's labels are 0/1 (normal/anomalous) for an autoencoder: no class range."""
    ad = shared_datasets / "ad01"
    if not any(ad.glob("*.bin")):
        pytest.skip("ad01 inputs not shipped")
    model = load_model(shared_models / "ad01_int8.tflite")
    samples = load_dataset(ad, model, limit=5)
    assert samples and all(s.label in (0, 1, None) for s in samples)


def test_autoencoder_label_check_skipped(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 4], scale=0.5)
    y = b.tensor("y", [1, 4], scale=0.5)
    b.op("RELU", [x], [y])
    model = parse_model(b.build([x], [y]), "ae.tflite")
    d = tmp_path / "ae"
    d.mkdir()
    (d / "a.bin").write_bytes(bytes(4))
    (d / "y_labels.csv").write_text("a.bin,2,1\n")
    assert [s.label for s in load_dataset(d, model)] == [1]


# --- fuzz ---------------------------------------------------------------------------

FUZZ_MUTANTS = 200
PER_MUTANT_SECONDS = 5.0
HUGE = [2**31 - 1, 2**30, 2**16, 65535, 100000, -2, -1, 0]


def _idx(rng: random.Random, n: int) -> int:
    return rng.choice([n, n + 1, n + 1000, 2**31 - 1, -1, -2, -(2**31), rng.randrange(n) if n else 0])


def _structural(rng: random.Random, fb: Any) -> str:
    sg = fb.subgraphs[0]
    ntensors, nops, nbuf = len(sg.tensors), len(sg.operators), len(fb.buffers)
    kind = rng.randrange(14)
    if kind == 0:
        side = rng.choice(["inputs", "outputs"])
        setattr(sg, side, np.array([_idx(rng, ntensors)], dtype=np.int32))
        return f"subgraph {side} index"
    if kind == 1:
        side = rng.choice(["inputs", "outputs"])
        n = rng.choice([0, 2, 3])
        setattr(sg, side, np.array([rng.randrange(ntensors) for _ in range(n)], dtype=np.int32))
        return f"subgraph {side} count {n}"
    if kind == 2:
        t = rng.choice(sg.tensors)
        dims = list(t.shape) if t.shape is not None else []
        if dims and rng.random() < 0.7:
            dims[rng.randrange(len(dims))] = rng.choice(HUGE)
        else:
            dims = [rng.choice(HUGE + [1, 3]) for _ in range(rng.randrange(7))]
        t.shape = np.array(dims, dtype=np.int32)
        return f"tensor shape {dims}"
    if kind == 3:
        rng.choice(sg.tensors).buffer = rng.choice([nbuf, nbuf + 5, 2**32 - 1, 0, rng.randrange(nbuf)])
        return "tensor buffer index"
    if kind == 4:
        op = rng.choice(sg.operators)
        ins = list(op.inputs)
        ins[rng.randrange(len(ins))] = _idx(rng, ntensors)
        op.inputs = np.array(ins, dtype=np.int32)
        return "operator input index"
    if kind == 5:
        op = rng.choice(sg.operators)
        op.outputs = np.array(rng.choice([[], [_idx(rng, ntensors)], [rng.randrange(ntensors)] * 2]), dtype=np.int32)
        return "operator outputs"
    if kind == 6:
        op = rng.choice(sg.operators)
        op.opcodeIndex = rng.choice([len(fb.operatorCodes), 2**32 - 1, 2**31, rng.randrange(len(fb.operatorCodes))])
        return "opcode index"
    if kind == 7:
        code = rng.choice(fb.operatorCodes)
        code.builtinCode = rng.choice([0, 3, 9, 22, 25, 32, 127, 200, -3, 1000])
        code.deprecatedBuiltinCode = rng.choice([0, 3, 4, 127, -128])
        return "opcode builtin code"
    if kind == 8:
        rng.choice(sg.tensors).type = rng.choice([0, 1, 2, 3, 4, 7, 9, 10, 17, 99, -1])
        return "tensor type"
    if kind == 9:
        t = rng.choice(sg.tensors)
        q = t.quantization
        choice = rng.randrange(4)
        if choice == 0:
            t.quantization = None
        elif q is not None and choice == 1:
            q.scale = np.array([rng.choice([0.0, -1.0, 1e38, float("inf"), float("nan"), 1e-45])],
                               dtype=np.float32)
        elif q is not None and choice == 2:
            q.zeroPoint = np.array([rng.choice([2**40, -(2**40), 300, -300])], dtype=np.int64)
        elif q is not None:
            n = rng.choice([0, 2, 7, 64, 65])
            q.scale = np.full(n, 0.01, dtype=np.float32)
            q.zeroPoint = np.zeros(rng.choice([0, 1, n]), dtype=np.int64)
            q.quantizedDimension = rng.choice([0, 3, 7, -1])
        return "quantization"
    if kind == 10:
        op = rng.choice(sg.operators)
        opts = op.builtinOptions
        if opts is None:
            return "no options"
        fields = [k for k, v in vars(opts).items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not fields:
            return "no option fields"
        f = rng.choice(fields)
        setattr(opts, f, rng.choice([0, 1, 2, 3, 4, 5, 6, 7, -1, 127, 2**31 - 1, 1000]))
        return f"option {f}"
    if kind == 11:
        del sg.operators[rng.randrange(nops)]
        return "operator deleted"
    if kind == 12:
        i, j = rng.randrange(nops), rng.randrange(nops)
        sg.operators[i], sg.operators[j] = sg.operators[j], sg.operators[i]
        return "operators swapped"
    b = rng.choice([b for b in fb.buffers if b.data is not None and len(b.data)])
    b.data = b.data[: rng.randrange(len(b.data))]
    return "buffer data cut"


def _mutant(seed: int, raw: bytes) -> tuple[bytes, str]:
    rng = random.Random(seed)
    how = rng.randrange(3)
    if how == 0:
        data = bytearray(raw)
        n = rng.choice([1, 2, 8, 64])
        for _ in range(n):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data), f"{n} byte flips"
    if how == 1 and rng.random() < 0.3:
        return raw[: rng.randrange(len(raw))], "truncated"
    for _attempt in range(20):
        fb = schema.ModelT.InitFromPackedBuf(raw, 0)
        what = [_structural(rng, fb) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        try:
            return _pack(fb), "; ".join(what)
        except (TypeError, struct.error, OverflowError):  # a value the field's type cannot hold
            continue
    raise AssertionError(f"seed {seed}: no packable mutant")


class _Hang(Exception):
    pass


def _alarm(_sig: int, _frame: Any) -> None:
    raise _Hang()


def _run_mutant(path: Path) -> None:
    model = load_model(path)
    generate(model)


def test_fuzz_kws_mutants(tmp_path: Path, shared_models: Path) -> None:
    raw = (shared_models / KWS).read_bytes()
    failures: list[str] = []
    rejected = 0
    start = time.monotonic()
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for seed in range(FUZZ_MUTANTS):
            data, how = _mutant(seed, raw)
            path = tmp_path / f"mutant{seed}.tflite"
            path.write_bytes(data)
            t0 = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, PER_MUTANT_SECONDS * 2)
            try:
                _run_mutant(path)
            except TinyhilError as e:
                rejected += 1
                text = str(e)
                if "\n" in text or str(path) not in text:
                    failures.append(f"seed {seed} ({how}): error is not one line naming the file: {text!r}")
            except _Hang:
                failures.append(f"seed {seed} ({how}): still running after {PER_MUTANT_SECONDS * 2:.0f} s")
            except Exception:
                failures.append(f"seed {seed} ({how}):\n{traceback.format_exc()}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            took = time.monotonic() - t0
            if took > PER_MUTANT_SECONDS:
                failures.append(f"seed {seed} ({how}): took {took:.1f} s")
            path.unlink()
    finally:
        signal.signal(signal.SIGALRM, old)
    for f in failures:
        print(f)
    assert not failures, f"{len(failures)} of {FUZZ_MUTANTS} mutants failed (first: {failures[0][:2000]})"
    assert rejected > FUZZ_MUTANTS // 4  # the mutations do reach the checks
    assert time.monotonic() - start < 60


def test_zero_stride_in_labels(tmp_path: Path, shared_models: Path, shared_datasets: Path) -> None:
    ad = shared_datasets / "ad01"
    if not any(ad.glob("*.bin")):
        pytest.skip("ad01 inputs not shipped")
    model = load_model(shared_models / "ad01_int8.tflite")
    d = tmp_path / "ad"
    d.mkdir()
    src = sorted(ad.glob("*.bin"))[0]
    (d / src.name).write_bytes(src.read_bytes())
    (d / "y_labels.csv").write_text(f"{src.name},2,0,2560,0\n")
    with pytest.raises(DatasetError, match=r"ad/y_labels.csv: line 1: window 2560 and stride 0 bytes"):
        load_dataset(d, model)


def test_arena_over_32_bits_is_a_model_error() -> None:
    b = ModelBuilder()
    shape = [1, 200, 200, 40000]  # 1.6 GB each: every tensor fits, the arena does not
    x = b.tensor("x", shape, scale=0.5)
    a = b.tensor("a", shape, scale=0.5)
    y = b.tensor("y", shape, scale=0.5)
    b.op("ADD", [x, x], [a])
    b.op("ADD", [a, x], [y])
    model = parse_model(b.build([x], [y]), "big.tflite")
    with pytest.raises(ModelError, match=r"big.tflite: the tensor arena needs 3200000000 bytes, more than a "
                                         r"32-bit target can address"):
        generate(model)


def test_unknown_fused_activation_is_unsupported(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    fb.subgraphs[0].operators[0].builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.TANH
    model = load_model(_write(tmp_path, fb))
    with pytest.raises(UnsupportedOpError, match=r"operator #0 CONV_2D is not supported .*fused activation TANH"):
        generate(model)
    fb.subgraphs[0].operators[0].builtinOptions.fusedActivationFunction = 7
    with pytest.raises(ModelError, match=r"operator #0 CONV_2D has fused activation function code 7, which "
                                         r"TFLite does not define"):
        load_model(_write(tmp_path, fb))


def test_operators_out_of_order(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    ops = fb.subgraphs[0].operators
    ops[0], ops[1] = ops[1], ops[0]
    with pytest.raises(ModelError, match=r"operator #0 DEPTHWISE_CONV_2D reads tensor #22 '.*', which no earlier "
                                         r"operator writes"):
        load_model(_write(tmp_path, fb))


def test_operator_writing_its_own_input(tmp_path: Path, shared_models: Path) -> None:
    """RESHAPE 31 -> 31 once sent the planner's alias chase into an endless loop."""
    fb = _kws_object(shared_models)
    fb.subgraphs[0].operators[10].outputs = np.array([31], dtype=np.int32)
    with pytest.raises(ModelError, match=r"tensor #31 '.*' is written by operators #9 and #10"):
        load_model(_write(tmp_path, fb))


def test_nan_scale(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    fb.subgraphs[0].tensors[5].quantization.scale = np.array([np.nan] * 64, dtype=np.float32)
    with pytest.raises(ModelError, match=r"tensor #5 '.*' has quantization scale nan; scales must be finite"):
        load_model(_write(tmp_path, fb))


def test_per_channel_scales_do_not_match_the_shape(tmp_path: Path, shared_models: Path) -> None:
    fb = _kws_object(shared_models)
    q = fb.subgraphs[0].tensors[19].quantization
    q.scale, q.zeroPoint = q.scale[:10], q.zeroPoint[:10]
    with pytest.raises(ModelError, match=r"tensor #19 '.*' of shape \[64, 1, 1, 64\] has 10 per-channel scales "
                                         r"along dimension 0"):
        load_model(_write(tmp_path, fb))


def test_tensor_names_are_one_printable_line(tmp_path: Path, shared_models: Path) -> None:
    """Names reach one-line errors and C comments: control bytes and '*/' are neutralised."""
    fb = _kws_object(shared_models)
    fb.subgraphs[0].tensors[22].name = b"evil\n*/ int x; /*\x00"
    model = load_model(_write(tmp_path, fb))
    assert model.tensors[22].name == "evil?*/ int x; /*?"
    text = generate(model).sources["th_model.c"]
    assert "evil?* / int x; / *?" in text and "*/ int x" not in text
