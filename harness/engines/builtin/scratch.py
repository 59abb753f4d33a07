"""Kernel working memory shared by every op of a model (``th_scratch``).

Some kernels need a buffer for the duration of one call only: th_conv2d_s8
its three im2col columns (th_conv2d_s8_mve its four int8 patches). One static
buffer serves them all, sized for the largest need in the model. It
is computed from the model alone, so every lowering that uses it declares
the same buffer (under an include guard in the generated C) and no other
part of the code generator has to know about it.
"""

from __future__ import annotations

from harness.model import Model


# th_im2col's cost per patch element copied byte by byte (a row that starts
# off a word boundary), against about one instruction per extra MAC per output
# channel for a zero weight in a padded row (measured on Cortex-M4).
_BYTEWISE_COST = 10


def conv_row(k_w: int, in_c: int, out_c: int) -> int:
    """th_conv2d_s8's patch row length (patch_row): k_w * in_c, rounded up to 4
    when that is cheaper. A padded row is copied into the column as whole words
    and its pad weights are zero; an unpadded row of few channels (k_w * in_c
    not a multiple of 4: an RGB first layer) is copied element by element from
    the second row on. Padding costs out_c MACs per pad element."""
    row = k_w * in_c
    padded = (row + 3) // 4 * 4
    return padded if (padded - row) * out_c < _BYTEWISE_COST * row else row


def conv_depth(k_h: int, k_w: int, in_c: int, out_c: int) -> int:
    """th_conv2d_s8's padded patch length kp: k_h patch rows rounded up to 8."""
    return (k_h * conv_row(k_w, in_c, out_c) + 7) // 8 * 8


def fc_depth(depth: int) -> int:
    """th_fully_connected_s8_simd's padded row length: depth rounded up to 8."""
    return (depth + 7) // 8 * 8


def dw_window_bytes(in_w: int, channels: int) -> int:
    """th_depthwise_conv2d_s8_dm1's padded window for its paired rows (th_dw_pairs.h):
    3 rows of in_w + 2 pixels."""
    return 3 * (in_w + 2) * channels


def dw_pairs_shape_ok(k_h: int, k_w: int, stride: tuple[int, int], dilation: tuple[int, int], pad_w: int,
                      in_w: int, channels: int) -> bool:
    """Whether a depthwise layer's shape suits the paired rows: 3x3, stride 1 or 2 (both
    ways), dilation 1, channels % 4 == 0, pad_w <= 1, and every tap of both pixels an
    LDR immediate (< 4096) from the window's first byte."""
    rs = (in_w + 2) * channels
    return ((k_h, k_w) == (3, 3) and stride in ((1, 1), (2, 2)) and dilation == (1, 1)
            and channels % 4 == 0 and pad_w <= 1 and 2 * rs + (2 + stride[1]) * channels < 4096)


def scratch_bytes(model: Model, isa: str = "") -> int:
    """Bytes the int8 CONV_2D kernels of ``model`` need at most (``isa`` "mve":
    th_conv2d_s8_mve's four int8 patches). FULLY_CONNECTED needs none: it widens
    its input group by group inside the block loop."""
    need = 0
    for op in model.operators:
        if op.name == "DEPTHWISE_CONV_2D" and isa != "mve" and len(op.inputs) >= 2:
            inp, filt = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]]
            if inp.dtype == "int8" and len(inp.shape) == 4 and len(filt.shape) == 4:
                o = op.options
                shape_ok = dw_pairs_shape_ok(
                    filt.shape[1], filt.shape[2], (int(o.get("stride_h", 1)), int(o.get("stride_w", 1))),
                    (int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1))),
                    1 if o.get("padding") == "SAME" else 0, inp.shape[2], inp.shape[3])
                if shape_ok:
                    need = max(need, dw_window_bytes(inp.shape[2], inp.shape[3]))
            continue
        if op.name != "CONV_2D" or len(op.inputs) < 2:
            continue
        inp, filt = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]]
        if inp.dtype != "int8":
            continue
        if op.name == "CONV_2D" and len(filt.shape) == 4 and isa == "mve":
            _, k_h, k_w, in_c = filt.shape
            if k_h * k_w > 1:  # a 1x1 patch is read where it is (never padded: SAME pads 0)
                need = max(need, 4 * k_h * k_w * in_c)  # four int8 patches
        elif isa == "mve":
            continue
        elif op.name == "CONV_2D" and len(filt.shape) == 4:
            out_c, k_h, k_w, in_c = filt.shape
            need = max(need, 3 * 2 * conv_depth(k_h, k_w, in_c, out_c))  # three int16 columns
    return need


def scratch_decl(model: Model, isa: str = "") -> str:
    """The guarded declaration of ``th_scratch`` (int32 words: 4-byte aligned)."""
    words = max(1, (scratch_bytes(model, isa) + 3) // 4)
    return (f"#ifndef TH_SCRATCH_DECLARED\n#define TH_SCRATCH_DECLARED\n"
            f"static int32_t th_scratch[{words}];\n#endif")
