"""Reading .tflite files: what is decoded, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.engines.builtin import generate
from harness.errors import ModelError, UnsupportedOpError
from harness.model import load_model, parse_model
from harness.synth import ModelBuilder
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema


def _fc_bytes(dtype: str = "int8", per_channel: bool = False) -> bytes:
    b = ModelBuilder()
    scale = None if dtype == "float32" else 0.5
    x = b.tensor("x", [1, 4], dtype=dtype, scale=scale)
    w = b.const("w", np.arange(12).reshape(3, 4), dtype=dtype,
                scales=[0.1, 0.2, 0.3] if per_channel else scale)
    y = b.tensor("y", [1, 3], dtype=dtype, scale=scale, zero_point=-2 if scale else 0)
    b.op("FULLY_CONNECTED", [x, w, -1], [y], fused_activation_function="RELU")
    return b.build([x], [y])


def test_decodes_tensors_quantization_ops_and_macs() -> None:
    m = parse_model(_fc_bytes(per_channel=True), "fc.tflite")
    assert m.inputs == (0,) and m.outputs == (2,)
    w = m.tensors[1]
    assert w.is_const and w.shape == (3, 4) and w.data is not None and int(w.data[2, 3]) == 11
    assert w.quant is not None and w.quant.per_channel
    assert w.quant.scales == pytest.approx((0.1, 0.2, 0.3))
    y = m.tensors[2]
    assert y.quant is not None and y.quant.zero_point == -2 and not y.quant.per_channel
    (op,) = m.operators
    assert op.name == "FULLY_CONNECTED"
    assert op.options["fused_activation_function"] == "RELU"
    assert op.macs == 3 * 4 and m.macs == 12
    assert m.weights_bytes == 12


def test_mlperf_model_macs(shared_models: Path) -> None:
    kws = load_model(shared_models / "kws_ref_model.tflite")
    assert [op.name for op in kws.operators][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    # DS-CNN KWS: 2.66 M MACs (MLPerf Tiny paper, table 1).
    assert 2_600_000 < kws.macs < 2_700_000
    ad = load_model(shared_models / "ad01_int8.tflite")
    assert ad.macs == 264_192


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="nope.tflite: cannot read model file"):
        load_model(tmp_path / "nope.tflite")


def test_not_a_flatbuffer(tmp_path: Path) -> None:
    p = tmp_path / "junk.tflite"
    p.write_bytes(b"hello, this is not a model")
    with pytest.raises(ModelError, match=r"junk.tflite: not a TFLite flatbuffer"):
        load_model(p)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.99])
def test_truncated_file(tmp_path: Path, shared_models: Path, keep: float) -> None:
    raw = (shared_models / "kws_ref_model.tflite").read_bytes()
    p = tmp_path / "cut.tflite"
    p.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ModelError, match=r"cut.tflite: (corrupt or truncated|constant tensor|.*corrupt)"):
        load_model(p)


def test_two_subgraphs_rejected() -> None:
    import flatbuffers

    fb = schema.ModelT.InitFromPackedBuf(_fc_bytes(), 0)
    fb.subgraphs.append(fb.subgraphs[0])
    builder = flatbuffers.Builder(1024)
    builder.Finish(fb.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ModelError, match="two.tflite: model has 2 subgraphs"):
        parse_model(bytes(builder.Output()), "two.tflite")


def test_float_compute_op_rejected() -> None:
    with pytest.raises(ModelError, match=r"f.tflite: operator #0 FULLY_CONNECTED has input 0 'x' of type float32"):
        parse_model(_fc_bytes("float32"), "f.tflite")


def test_int16_compute_op_parses() -> None:
    """int16x8 models load; which int16 ops run is each engine's check (tests/test_int16.py)."""
    b = ModelBuilder()
    x = b.tensor("x", [1, 8], dtype="int16", scale=0.1)
    y = b.tensor("y", [1, 8], dtype="int16", scale=1 / 32768)
    b.op("SOFTMAX", [x], [y], beta=1.0)
    model = parse_model(b.build([x], [y]), "i16.tflite")
    assert [t.dtype for t in model.input_tensors()] == ["int16"]


def test_uint8_compute_op_rejected() -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 8], dtype="uint8", scale=0.1)
    y = b.tensor("y", [1, 8], dtype="uint8", scale=0.1)
    b.op("SOFTMAX", [x], [y], beta=1.0)
    with pytest.raises(ModelError, match=r"operator #0 SOFTMAX .* uint8: tinyhil runs int8 and int16x8"):
        parse_model(b.build([x], [y]), "u8.tflite")


def test_unsupported_op_names_op_index_and_engine() -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 8], scale=0.1)
    y = b.tensor("y", [1, 8], scale=0.1)
    z = b.tensor("z", [1, 8], scale=1 / 256, zero_point=-128)
    b.op("RESHAPE", [x], [y])
    b.op("LOGISTIC", [y], [z])
    model = parse_model(b.build([x], [z]), "sig.tflite")
    with pytest.raises(UnsupportedOpError) as info:
        generate(model)
    msg = str(info.value)
    assert "sig.tflite: operator #1 LOGISTIC is not supported by the 'builtin' engine" in msg
    assert "FULLY_CONNECTED" in msg  # lists what is supported


def test_reference_refuses_a_model_that_would_crash_tflm() -> None:
    from harness.reference import Reference

    b = ModelBuilder()
    x = b.tensor("x", [1, 4, 4, 2], scale=0.1)
    w = b.const("w", np.ones((1, 3, 3, 2)), scales=0.01)
    y = b.tensor("y", [1, 4, 4, 2], scale=0.1)
    b.op("DEPTHWISE_CONV_2D", [x, w, -1], [y], padding="SAME", stride_w=1, stride_h=1,
         depth_multiplier=1, dilation_w_factor=1, dilation_h_factor=1)
    model = parse_model(b.build([x], [y]), "dw.tflite")
    with pytest.raises(ModelError, match="omitted bias"):
        Reference(model)
