"""The native C of one tensor op: its constants (TFLM's Prepare) and the kernel calls.

Each ``plan_*`` function takes the op and the shapes it runs on (the whole tensors, or one
time step of them when the model streams) and returns a :class:`Step`: const arrays, params
structs and C statements for ``firmware_templates/native/edgernn_tensor.c`` (convolutions,
pools, reductions, broadcasting ADD/SUB/MUL) and ``edgernn_kernels.c``
(FULLY_CONNECTED, SOFTMAX, tables of int8 -> int8 functions). Statements name tensors as
``@t<index>@`` and the model prefix as ``$``; :mod:`.graph` resolves both once the buffers
are planned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ... import fixedpoint as fp
from ...tflite_model import Operator, Subgraph, TFLiteModel
from . import prepare
from .loop import _add_plan, _fully_connected16, _mul_plan, int8_activation_table, requant_plan
from .fastlstm import NotFast
from .convrows import conv_rows
from .fasttensor import conv_pairs, depthwise_pairs, pairs_layout
from .plan import ConstArray, _fail, _fully_connected, _scale, _softmax, _zp

MAX_DIMS = 5  # EDGERNN_MAX_DIMS
LUT_OPS = ("LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1", "QUANTIZE")
BINARY_OPS = ("ADD", "SUB", "MUL")
REDUCE_OPS = ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN")


@dataclass
class CStruct:
    """A ``static const`` params struct: (C expression, comment) per field."""

    name: str
    ctype: str
    fields: list[tuple[str, str]]
    comment: str = ""


@dataclass
class Step:
    """One op of the generated program."""

    op_index: int
    opcode: str
    comment: str
    lines: list[str] = field(default_factory=list)
    structs: list[CStruct] = field(default_factory=list)
    arrays: list[ConstArray] = field(default_factory=list)
    kernels: list = field(default_factory=list)  # fasttensor.Fc8Stream of each EDGERNN_FC8_KERNEL it calls
    window: int = 0  # bytes of its int16 window (an arena buffer the statements name @w@)


def short(name: str, n: int = 60) -> str:
    """A tensor name for a comment (the converter joins every fused op's name with ';')."""
    return name if len(name) <= n else name[:n - 3] + "..."


def numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def nbytes(tensor) -> int:
    """Bytes of an int8 or int16 activation tensor's buffer."""
    return numel(tensor.shape) * (2 if tensor.dtype == "int16" else 1)


def strides(shape) -> list[int]:
    out, acc = [], 1
    for d in reversed(list(shape)):
        out.append(acc)
        acc *= int(d)
    return out[::-1]


def t(i: int) -> str:
    """Placeholder of tensor ``i``'s buffer in a C statement."""
    return f"@t{i}@"


def _pad_dims(dims, *stride_lists, n=MAX_DIMS):
    dims = [int(d) for d in dims]
    if len(dims) > n:  # merge leading size-1 dims
        while len(dims) > n and dims[0] == 1:
            dims = dims[1:]
            stride_lists = tuple(s[1:] for s in stride_lists)
    if len(dims) > n:
        raise ValueError(f"{len(dims)} dimensions")
    k = n - len(dims)
    return [1] * k + dims, *([0] * k + [int(v) for v in s] for s in stride_lists)


def box_struct(name: str, dims, src_strides, dst_strides, comment: str) -> CStruct:
    d, s, o = _pad_dims(dims, src_strides, dst_strides)
    return CStruct(name, "edgernn_box", [("{ " + ", ".join(map(str, d)) + " }", "sizes"),
                                         ("{ " + ", ".join(map(str, s)) + " }", "source strides (bytes)"),
                                         ("{ " + ", ".join(map(str, o)) + " }", "destination strides (bytes)")],
                   comment)


def _act(op: Operator) -> int:
    return int(getattr(op.options, "fusedActivationFunction", 0) or 0) if op.options is not None else 0


def _const(m: TFLiteModel, sg: Subgraph, op: Operator, pos: int, what: str) -> np.ndarray:
    if pos >= len(op.inputs) or op.inputs[pos] < 0 or sg.tensors[op.inputs[pos]].data is None:
        raise _fail(m, f"{op.opcode}: its {what} (input {pos}) must be a constant tensor")
    return np.asarray(sg.tensors[op.inputs[pos]].data)


# ----------------------------------------------------------------------------- convolutions
def conv_geometry(op: Operator, in_shape, w_shape) -> tuple[int, int, int, int]:
    """(out_h, out_w, pad_top, pad_left) of a CONV_2D / DEPTHWISE_CONV_2D (TFLM's padding)."""
    o = op.options
    out, pads = [], []
    for size, k, s, d in ((in_shape[1], w_shape[1], o.strideH, o.dilationHFactor or 1),
                          (in_shape[2], w_shape[2], o.strideW, o.dilationWFactor or 1)):
        eff = (int(k) - 1) * int(d) + 1
        n = (size + s - 1) // s if int(o.padding) == 0 else (size + s - eff) // s
        out.append(int(n))
        pads.append(max((n - 1) * int(s) + eff - int(size), 0) // 2)
    return out[0], out[1], pads[0], pads[1]


def _fast_step(kernel: str, p: str, i: int, opcode: str, where: str, comment: str, geometry: list, w2d, bias, qs,
               zp_out: int, source: str, x: int, y: int, ring: bool = False) -> Step | None:
    """A CONV_2D (or FULLY_CONNECTED) on int8 weight rows when ``kernel`` is "rows", else (or where
    the rows refuse it) on the row pairs; None where neither takes it (the reference kernel)."""
    if kernel == "rows":
        try:
            return _rows_step(p, i, opcode, where, comment, geometry, w2d, bias, qs, zp_out, source, x, y)
        except NotFast:
            pass
    try:
        return _pairs_step(p, i, opcode, where, comment, geometry, w2d, bias, qs, zp_out, source, x, y, ring)
    except NotFast:
        return None


def _pairs_step(p: str, i: int, opcode: str, where: str, comment: str, geometry: list, w2d, bias, qs, zp_out: int,
                source: str, x: int, y: int, ring: bool = False) -> Step:
    """The Step of a CONV_2D (or FULLY_CONNECTED, 1 x 1) on the row-pair kernel; raises NotFast."""
    stream, fields, call, kernel, window = conv_pairs(p, where, w2d, bias, [q[0] for q in qs], [q[1] for q in qs],
                                                      zp_out, source, t(x), t(y), ring)
    conv = _geometry(p, geometry, stream, comment + ", on the row-pair kernel (edgernn_conv_pairs_s8)")
    return Step(i, opcode, conv.comment, [call], [conv, CStruct(f"{p}_pairs", "edgernn_conv_pairs", fields)], [stream],
                kernels=[kernel], window=window)


def _rows_step(p: str, i: int, opcode: str, where: str, comment: str, geometry: list, w2d, bias, qs, zp_out: int,
               source: str, x: int, y: int) -> Step:
    """The Step of a CONV_2D (or FULLY_CONNECTED, 1 x 1) on int8 weight rows (:mod:`.convrows`,
    the ``rows`` kernel choice); raises NotFast."""
    in_h, in_w, out_h, out_w, kh, kw, sh, sw, dh, dw, top, left = (int(geometry[k][0]) for k in
                                                                   (1, 2, 4, 5, 7, 8, 11, 12, 13, 14, 15, 16))
    in_c = int(geometry[3][0])
    # every window in the input, no padding: read where it lies, contiguous (one filter row, or
    # whole input rows) or, dilated along its row, as taps of in_c bytes dw x in_c apart (the
    # kernel's chunks then must not straddle taps: in_c a multiple of 16)
    inside = (top == 0 and left == 0 and (out_w - 1) * sw + (kw - 1) * dw < in_w
              and (out_h - 1) * sh + (kh - 1) * dh < in_h)
    contiguous = dw == 1 and (kh == 1 or (kw == in_w and dh == 1))
    strided = not contiguous and kh == 1 and kw > 1 and in_c % 16 == 0
    arrays, fields, call, kernel, window = conv_rows(
        p, where, w2d, bias, [q[0] for q in qs], [q[1] for q in qs], zp_out, int(geometry[19][0]),
        int(geometry[20][0]), source, t(x), t(y), inside and (contiguous or strided),
        in_c if inside and strided else 0, dw * in_c)
    conv = _geometry(p, geometry, arrays[0], comment + ", on int8 weight rows (edgernn_conv_rows_s8)")
    return Step(i, opcode, conv.comment, [call], [conv, CStruct(f"{p}_crows", "edgernn_conv_rows", fields)], arrays,
                kernels=[kernel], window=window)


def _geometry(p: str, geometry: list, array: ConstArray, comment: str) -> CStruct:
    """The edgernn_conv_params of a convolution whose constants are all in ``array``."""
    return CStruct(p, "edgernn_conv_params", [(str(int(v)), c) for v, c in geometry] +
                   [("0", f"{what}: in ${array.name}") for what in ("weights", "bias", "multipliers", "shifts")],
                   comment)


def plan_conv(m: TFLiteModel, sg: Subgraph, op: Operator, i: int, in_shape=None, out_shape=None,
              pads=None, name: str | None = None, kernel: str = "reference") -> Step:
    """CONV_2D / DEPTHWISE_CONV_2D on ``in_shape`` (default: the tensor's), padding ``pads``
    (pad_top, pad_left; default: TFLM's for the tensor's shape); a CONV_2D on the row-pair
    kernel (:mod:`.fasttensor`) when ``kernel`` uses that layout and the op allows it."""
    x, w, y = sg.tensors[op.inputs[0]], sg.tensors[op.inputs[1]], sg.tensors[op.outputs[0]]
    b = sg.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    where = f"{op.opcode} (op {i})"
    if x.dtype != "int8" or w.dtype != "int8" or y.dtype != "int8" or w.data is None:
        raise _fail(m, f"{where} is {x.dtype} x {w.dtype} -> {y.dtype}; int8 x int8 -> int8 with constant weights "
                       "is compiled")
    if np.any(np.asarray(w.zero_point if w.zero_point is not None else [0]) != 0):
        raise _fail(m, f"{where}: filter '{w.name}' is asymmetric; symmetric int8 expected")
    if b is not None and (b.data is None or b.dtype != "int32"):
        raise _fail(m, f"{where}: bias '{b.name}' is {b.dtype}; int32 constants expected")
    in_shape = tuple(in_shape or x.shape)
    out_shape = tuple(out_shape or y.shape)
    depthwise = op.opcode == "DEPTHWISE_CONV_2D"
    wd = np.asarray(w.data, np.int64)
    cout = int(out_shape[3])
    if pads is None:
        _, _, pt, pl = conv_geometry(op, x.shape, w.shape)
    else:
        pt, pl = pads
    zp = _zp(x)
    if depthwise:
        mult = cout // int(in_shape[3])
        wsum = wd[0].reshape(-1, cout).sum(axis=0)
        filt = np.asarray(w.data, np.int8).reshape(-1)
        fc = 1
    else:
        mult = 0
        wsum = wd.reshape(cout, -1).sum(axis=1)
        filt = np.asarray(w.data, np.int8).reshape(-1)
        fc = int(w.shape[3])
    bias = np.zeros(cout, np.int64) if b is None else np.asarray(b.data, np.int64).reshape(-1)
    folded = fp.wrap_int32(bias - zp * wsum)
    scales = [float(s) for s in w.scale] if w.scale is not None else [1.0]
    scales = scales * cout if len(scales) == 1 else scales
    qs = [prepare.quantize_multiplier(prepare.conv_multiplier(_scale(x), s, _scale(y))) for s in scales]
    lo, hi = prepare.activation_range(_act(op), _scale(y), _zp(y))
    p = name or f"op{i}"
    kind = "per-channel" if w.scale is not None and len(w.scale) > 1 else "per-tensor"
    arrays = [
        ConstArray(f"{p}_weights", "int8_t", filt,
                   f"tensor {w.index} '{short(w.name)}': filter {list(w.shape)} ({'1, kh, kw, C x multiplier' if depthwise else 'O, kh, kw, Cin'}), {kind}"),
        ConstArray(f"{p}_bias", "int32_t", folded,
                   (f"tensor {b.index} '{short(b.name)}'" if b is not None else "no bias") +
                   f" - input zero point ({zp}) x the sum of each output channel's weights"),
        ConstArray(f"{p}_multipliers", "int32_t", np.array([q[0] for q in qs], np.int64),
                   f"QuantizeMultiplier(double input scale {_scale(x):.9g} x double weight scale / double output "
                   f"scale {_scale(y):.9g}) per output channel"),
        ConstArray(f"{p}_shifts", "int32_t", np.array([q[1] for q in qs], np.int64), "their exponents"),
    ]
    o = op.options
    g = [(in_shape[0], "batches"), (in_shape[1], "input height"), (in_shape[2], "input width"),
         (in_shape[3], "input channels"), (out_shape[1], "output height"), (out_shape[2], "output width"),
         (cout, "output channels"), (w.shape[1], "filter height"), (w.shape[2], "filter width"),
         (fc, "filter depth"), (mult, "depth multiplier (0: CONV_2D)"), (o.strideH, "stride height"),
         (o.strideW, "stride width"), (o.dilationHFactor or 1, "dilation height"),
         (o.dilationWFactor or 1, "dilation width"), (pt, "padding before (top)"), (pl, "padding before (left)"),
         (zp, "input zero point"), (_zp(y), "output zero point"), (lo, "activation min"), (hi, "activation max")]
    comment = (f"{op.opcode} (op {i}): {list(in_shape)} -> {list(out_shape)}, activation "
               f"{prepare.ACT_NAMES.get(_act(op), _act(op))}")
    if not depthwise and fc == int(in_shape[3]) and pairs_layout(kernel):
        if int(in_shape[2]) == int(out_shape[2]) == int(w.shape[2]) == 1:  # a column: the same bytes as a row
            g = [g[k] for k in (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 10, 12, 11, 14, 13, 16, 15, 17, 18, 19, 20)]
            comment += " (as one row)"
        w_out, kh, kw, sw, dw, top = (int(g[k][0]) for k in (5, 7, 8, 12, 14, 15))
        ring = kh == 1 and sw == 1 and dw == 1 and fc % 2 == 0 and top == 0 and w_out > kw > 1
        step = _fast_step(kernel, p, i, op.opcode, where, comment, g, wd.reshape(cout, -1), folded, qs, _zp(y),
                          arrays[0].comment.split(":")[0], op.inputs[0], op.outputs[0], ring)
        if step is not None:
            return step
    if depthwise and pairs_layout(kernel):
        try:
            words, fields, call, window = depthwise_pairs(
                p, where, wd[0].reshape(-1, cout).T, folded, [q[0] for q in qs], [q[1] for q in qs], _zp(y),
                arrays[0].comment.split(":")[0], t(op.inputs[0]), t(op.outputs[0]), int(in_shape[3]))
            conv = _geometry(p, g, words, comment + ", taps on SMLAD pairs (edgernn_depthwise_pairs_s8)")
            return Step(i, op.opcode, conv.comment, [call],
                        [conv, CStruct(f"{p}_pairs", "edgernn_depthwise_pairs", fields)], [words], window=window)
        except NotFast:
            pass
    fields = [(str(int(v)), c) for v, c in g] + [(f"${a.name}", a.name.split("_", 1)[1]) for a in arrays]
    st = CStruct(p, "edgernn_conv_params", fields, comment)
    return Step(i, op.opcode, st.comment, [f"edgernn_conv_s8(&${p}, {t(op.inputs[0])}, {t(op.outputs[0])});"],
                [st], arrays)


def plan_pool(m: TFLiteModel, sg: Subgraph, op: Operator, i: int, in_shape=None, out_shape=None, pads=None) -> Step:
    x, y = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
    where = f"{op.opcode} (op {i})"
    if x.dtype != "int8" or abs(_scale(x) - _scale(y)) > 1e-6 or _zp(x) != _zp(y):
        raise _fail(m, f"{where}: int8 with equal input and output quantization expected (as TFLM requires)")
    in_shape, out_shape = tuple(in_shape or x.shape), tuple(out_shape or y.shape)
    o = op.options
    if pads is None:
        pads = []
        for size, k, s, n in ((x.shape[1], o.filterHeight, o.strideH, y.shape[1]),
                              (x.shape[2], o.filterWidth, o.strideW, y.shape[2])):
            pads.append(max((n - 1) * s + k - size, 0) // 2)
    lo, hi = prepare.activation_range(_act(op), _scale(y), _zp(y))
    g = [(1 if op.opcode == "AVERAGE_POOL_2D" else 0, "1: average, 0: max"), (in_shape[0], "batches"),
         (in_shape[1], "input height"), (in_shape[2], "input width"), (in_shape[3], "channels"),
         (out_shape[1], "output height"), (out_shape[2], "output width"), (o.filterHeight, "filter height"),
         (o.filterWidth, "filter width"), (o.strideH, "stride height"), (o.strideW, "stride width"),
         (pads[0], "padding top"), (pads[1], "padding left"), (lo, "activation min"), (hi, "activation max")]
    st = CStruct(f"op{i}", "edgernn_pool_params", [(str(int(v)), c) for v, c in g],
                 f"{op.opcode} (op {i}): {list(in_shape)} -> {list(out_shape)}")
    return Step(i, op.opcode, st.comment, [f"edgernn_pool_s8(&$op{i}, {t(op.inputs[0])}, {t(op.outputs[0])});"], [st])


# ----------------------------------------------------------------------------- reductions
def plan_reduce(m: TFLiteModel, sg: Subgraph, op: Operator, i: int, in_shape=None, axes=None) -> Step:
    x, y = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
    where = f"{op.opcode} (op {i})"
    if x.dtype != "int8" or y.dtype != "int8":
        raise _fail(m, f"{where} is {x.dtype} -> {y.dtype}; int8 -> int8 expected")
    in_shape = tuple(in_shape or x.shape)
    rank = len(in_shape)
    if axes is None:
        axes = sorted({int(a) % rank for a in _const(m, sg, op, 1, "axis").reshape(-1)})
    st_in = strides(in_shape)
    kept = [(in_shape[a], st_in[a]) for a in range(rank) if a not in axes and in_shape[a] > 1]
    red = [(in_shape[a], st_in[a]) for a in axes if in_shape[a] > 1]
    if len(kept) > 4 or len(red) > 4:
        raise _fail(m, f"{where}: more than 4 kept or reduced dimensions")
    count = numel([d for d, _ in red])
    kind = {"MEAN": 0, "SUM": 0, "REDUCE_MAX": 1, "REDUCE_MIN": 2}[op.opcode]
    mult = shift = 0
    if kind == 0:
        mult, shift = prepare.quantize_multiplier(float(np.float32(_scale(x))) / float(np.float32(_scale(y))))
        n = count if op.opcode == "MEAN" else 1
        k = min(n.bit_length() - 1, 32, 31 + shift)
        mult, shift = (mult << k) // n, shift - k
    elif float(np.float32(_scale(x))) != float(np.float32(_scale(y))) or _zp(x) != _zp(y):
        raise _fail(m, f"{where}: input and output quantization differ (TFLM requires them equal)")
    od, os_ = _pad_dims([d for d, _ in kept], [s for _, s in kept], n=4)
    idd, is_ = _pad_dims([d for d, _ in red], [s for _, s in red], n=4)

    def arr(v):
        return "{ " + ", ".join(map(str, v)) + " }"
    fields = [(str(kind), "0: mean/sum, 1: max, 2: min"), (arr(od), "kept sizes"), (arr(os_), "their strides"),
              (arr(idd), "reduced sizes"), (arr(is_), "their strides"), (str(count), "reduced elements"),
              (str(_zp(x)), "input zero point"), (str(mult), "multiplier (1/count folded in for MEAN)"),
              (str(shift), "shift"), (str(_zp(y)), "output zero point")]
    st = CStruct(f"op{i}", "edgernn_reduce_params", fields,
                 f"{op.opcode} (op {i}) of {list(in_shape)} over axes {list(axes)}")
    return Step(i, op.opcode, st.comment, [f"edgernn_reduce_s8(&$op{i}, {t(op.inputs[0])}, {t(op.outputs[0])});"],
                [st])


# ----------------------------------------------------------------------------- elementwise
def lut_table(m: TFLiteModel, sg: Subgraph, op: Operator, i: int) -> np.ndarray:
    """The int8 -> int8 result of a one-input elementwise op for each of the 256 inputs."""
    x, y = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
    where = f"{op.opcode} (op {i})"
    if x.dtype != "int8" or y.dtype != "int8":
        raise _fail(m, f"{where} is {x.dtype} -> {y.dtype}; the native backend compiles int8 -> int8 "
                       "(a float-I/O model's QUANTIZE/DEQUANTIZE: convert with int8 input and output)")
    q = np.arange(-128, 128, dtype=np.int64)
    if op.opcode in ("LOGISTIC", "TANH"):
        want = (1 / 256, -128) if op.opcode == "LOGISTIC" else (1 / 128, 0)
        if abs(_scale(y) - want[0]) > 1e-9 or _zp(y) != want[1]:
            raise _fail(m, f"{where}: output quantization ({_scale(y):g}, {_zp(y)}) is not TFLM's {want}")
        return int8_activation_table(op.opcode, x, y)
    if op.opcode in ("RELU", "QUANTIZE"):  # requantize (s_in / s_out), then RELU clamps at the zero point
        mult = prepare.quantize_multiplier(float(np.float32(_scale(x))) / float(np.float32(_scale(y))))
        v = _zp(y) + fp.multiply_by_quantized_multiplier(q - _zp(x), *mult)
        lo = max(-128, _zp(y)) if op.opcode == "RELU" else -128
        return np.clip(v, lo, 127).astype(np.int8)
    if op.opcode == "RELU6":  # TFLM clamps the raw input: no requantization
        six = _zp(x) + int(fp.tflite_round(float(np.float32(6.0) / np.float32(_scale(x)))))
        return np.clip(q, _zp(x), min(127, max(-128, six))).astype(np.int8)
    lo, hi = prepare.activation_range(prepare.ACT_RELU_N1_TO_1, _scale(x), _zp(x))  # RELU_N1_TO_1
    return np.clip(q, lo, hi).astype(np.int8)


def plan_lut(m, sg, op: Operator, i: int, n: int) -> Step:
    x = sg.tensors[op.inputs[0]]
    if op.opcode == "QUANTIZE" and x.dtype == "int16" and sg.tensors[op.outputs[0]].dtype == "int8":
        # an int16 recurrent state (convert --state int16) to int8, as TFLM's QUANTIZE Requantize
        rq = requant_plan(x, sg.tensors[op.outputs[0]])
        return Step(i, op.opcode, f"QUANTIZE (op {i}): int16 tensor {x.index} to int8",
                    [f"edgernn_requantize_run_s16_s8({rq.multiplier}, {rq.shift}, {rq.input_zero_point}, "
                     f"{rq.output_zero_point}, (const int16_t *)(const void *){t(op.inputs[0])}, "
                     f"{t(op.outputs[0])}, {n});"])
    table = ConstArray(f"op{i}_table", "int8_t", lut_table(m, sg, op, i),
                       f"{op.opcode} (op {i}) of tensor {x.index} '{short(x.name)}' for inputs -128..127, tabulated")
    return Step(i, op.opcode, table.comment,
                [f"edgernn_lut_run_s8(${table.name}, {t(op.inputs[0])}, {t(op.outputs[0])}, {n});"], arrays=[table])


def broadcast_shapes(a, b, out):
    """Strides of ``a`` and ``b`` over the ``out`` box (0 along broadcast dims), right-aligned."""
    rank = len(out)
    res = []
    for shp in (a, b):
        shp = [1] * (rank - len(shp)) + list(shp)
        st = strides(shp)
        res.append([0 if d == 1 and o != 1 else s for d, s, o in zip(shp, st, out)])
    return res


def plan_binary(m, sg, op: Operator, i: int, a_shape=None, b_shape=None, out_shape=None) -> Step:
    a, b, y = (sg.tensors[k] for k in (*op.inputs[:2], op.outputs[0]))
    where = f"{op.opcode} (op {i})"
    a_shape, b_shape = tuple(a.shape if a_shape is None else a_shape), tuple(b.shape if b_shape is None else b_shape)
    out_shape = tuple(y.shape if out_shape is None else out_shape)
    wide = a.dtype == b.dtype == y.dtype == "int16"
    if wide and numel(a_shape) == numel(b_shape) == numel(out_shape):
        pass  # an int16-state Bidirectional merge (sum / ave / mul) before a 16x8 head
    elif a.dtype != "int8" or b.dtype != "int8" or y.dtype != "int8":
        raise _fail(m, f"{where} is {a.dtype}, {b.dtype} -> {y.dtype}; int8 (or int16 without broadcasting) "
                       "expected")
    params = _mul_plan(m, sg, op, where) if op.opcode == "MUL" else _add_plan(m, sg, op, where)
    if op.opcode == "MUL":
        fields = [(str(params.input1_offset), "-input1 zero point"), (str(params.input2_offset), "-input2 zero point"),
                  (str(params.multiplier[0]), "Q0.31 multiplier of s1 s2 / s_out"), (str(params.multiplier[1]), "shift"),
                  (str(params.output_offset), "output zero point"), (str(params.activation_min), "activation min"),
                  (str(params.activation_max), "activation max")]
        ctype, fn = "edgernn_mul_params", "mul"
    else:
        fields = [(str(params.input1_offset), "-input1 zero point"), (str(params.input2_offset), "-input2 zero point"),
                  (str(params.input1[0]), "input1 multiplier: s1 / (2 max scale)"), (str(params.input1[1]), "shift"),
                  (str(params.input2[0]), "input2 multiplier: s2 / (2 max scale)"), (str(params.input2[1]), "shift"),
                  (str(params.output[0]), "output multiplier: 2 max scale / (2^20 s_out)"),
                  (str(params.output[1]), "shift"), (str(params.output_offset), "output zero point"),
                  (str(params.activation_min), "activation min"), (str(params.activation_max), "activation max"),
                  ("1" if params.subtract else "0", "1: SUB")]
        ctype, fn = "edgernn_add_params", "add"
    st = CStruct(f"op{i}", ctype, fields, f"{op.opcode} (op {i}): {list(a_shape)}, {list(b_shape)} -> {list(out_shape)}")
    ia, ib, iy = t(op.inputs[0]), t(op.inputs[1]), t(op.outputs[0])
    if wide:
        st.fields = [(v, c.replace("2^20", "2^15")) for v, c in st.fields]
        return Step(i, op.opcode, st.comment,
                    [f"edgernn_{fn}_run_s16(&$op{i}, (const int16_t *)(const void *){ia}, "
                     f"(const int16_t *)(const void *){ib}, (int16_t *)(void *){iy}, {numel(out_shape)});"], [st])
    if a_shape == b_shape == out_shape or numel(a_shape) == numel(b_shape) == numel(out_shape):
        return Step(i, op.opcode, st.comment, [f"edgernn_{fn}_run_s8(&$op{i}, {ia}, {ib}, {iy}, {numel(out_shape)});"],
                    [st])
    sa, sb = broadcast_shapes(a_shape, b_shape, out_shape)
    try:
        d, sa, sb = _pad_dims(out_shape, sa, sb)
    except ValueError:
        raise _fail(m, f"{where}: broadcasting over more than {MAX_DIMS} dimensions") from None
    g = CStruct(f"op{i}_broadcast", "edgernn_broadcast",
                [("{ " + ", ".join(map(str, v)) + " }", c) for v, c in ((d, "output sizes"), (sa, "input1 strides"),
                                                                       (sb, "input2 strides"))])
    return Step(i, op.opcode, st.comment, [f"edgernn_{fn}_broadcast_s8(&$op{i}, &$op{i}_broadcast, {ia}, {ib}, {iy});"],
                [st, g])


def plan_fc(m, sg, op: Operator, i: int, rows: int, index: int, kernel: str = "reference") -> Step:
    """FULLY_CONNECTED on ``rows`` rows; on the row-pair kernel (a 1 x 1 convolution over the
    rows, :mod:`.fasttensor`) when ``kernel`` uses that layout and the op allows it."""
    if sg.tensors[op.inputs[0]].dtype == "int16":
        return plan_fc16(m, sg, op, i, rows)
    fc = _fully_connected(m, sg, op, i, index)
    if pairs_layout(kernel):
        g = [(1, "batches"), (1, "input height"), (rows, "rows"), (fc.n_input, "inputs"), (1, "output height"),
             (rows, "rows"), (fc.n_output, "outputs"), (1, "filter height"), (1, "filter width"),
             (fc.n_input, "filter depth"), (0, "depth multiplier (0: CONV_2D)"), (1, "stride"), (1, "stride"),
             (1, "dilation"), (1, "dilation"), (0, "padding"), (0, "padding"), (0, "input zero point (folded)"),
             (fc.output_zero_point, "output zero point"), (fc.activation_min, "activation min"),
             (fc.activation_max, f"activation max ({fc.activation})")]
        n = fc.multipliers.values.size
        qs = list(zip(np.broadcast_to(fc.multipliers.values, (fc.n_output,)),
                      np.broadcast_to(fc.shifts.values, (fc.n_output,)))) if n else []
        step = _fast_step(kernel if qs else "pairs", f"op{i}", i, op.opcode, f"FULLY_CONNECTED (op {i})",
                          f"FULLY_CONNECTED (op {i}): {fc.n_input} -> {fc.n_output}" +
                          (f", on {rows} rows" if rows > 1 else ""), g,
                          np.asarray(fc.weights.values, np.int64).reshape(fc.n_output, fc.n_input),
                          fc.bias.values, qs, fc.output_zero_point, fc.weights.comment.split(":")[0],
                          op.inputs[0], op.outputs[0])
        if step is not None:
            return step
    for a in fc.arrays:
        a.name = f"op{i}_{a.name.split('_', 1)[1]}"
    fields = [(str(fc.n_input), "inputs"), (str(fc.n_output), "outputs"), (f"${fc.weights.name}", "weights"),
              (f"${fc.bias.name}", "bias"), (f"${fc.multipliers.name}", "multipliers"),
              (f"${fc.shifts.name}", "shifts"), (str(fc.multipliers.values.size), "multipliers count"),
              (str(fc.output_zero_point), "output zero point"), (str(fc.activation_min), "activation min"),
              (str(fc.activation_max), f"activation max ({fc.activation})")]
    st = CStruct(f"op{i}", "edgernn_fc_params", fields, f"FULLY_CONNECTED (op {i}): {fc.n_input} -> {fc.n_output}"
                 + (f", on {rows} rows" if rows > 1 else ""))
    x, y = t(op.inputs[0]), t(op.outputs[0])
    call = f"edgernn_fc_run_s8(&$op{i}, {x}, {y});" if rows == 1 else \
        f"for (r = 0; r < {rows}; ++r) {{ edgernn_fc_run_s8(&$op{i}, {x} + r * {fc.n_input}, {y} + r * {fc.n_output}); }}"
    return Step(i, op.opcode, st.comment, [call], [st], fc.arrays)


def plan_fc16(m, sg, op: Operator, i: int, rows: int) -> Step:
    """FULLY_CONNECTED 16x8 (int16 in, int8 weights, int16 out): the Dense head of an int16
    recurrent state (``convert --state int16``) in a hybrid model, on TFLM's reference kernel
    (one small matrix per inference)."""
    fc = _fully_connected16(m, sg, op, i, f"op{i}")
    if sg.tensors[op.outputs[0]].dtype != "int16":
        raise _fail(m, f"FULLY_CONNECTED (op {i}) is int16 x int8 -> {sg.tensors[op.outputs[0]].dtype}; "
                       "int16 out expected")
    b = fc.bias
    fields = [(str(fc.n_input), "inputs"), (str(fc.n_output), "outputs"), (f"${fc.weights.name}", "weights"),
              ("1" if fc.acc64 else "0", "1: int64 sums"),
              (f"${b.name}" if b is not None and fc.acc64 else "NULL", "int64 bias"),
              (f"${b.name}" if b is not None and not fc.acc64 else "NULL", "int32 bias"),
              (f"${fc.multipliers.name}", "multipliers"), (f"${fc.shifts.name}", "shifts"),
              (str(fc.activation_min), "activation min"), (str(fc.activation_max), "activation max")]
    st = CStruct(f"op{i}", "edgernn_fc16_params", fields,
                 f"FULLY_CONNECTED 16x8 (op {i}): {fc.n_input} -> {fc.n_output}, "
                 f"{'int64' if fc.acc64 else 'int32'} sums" + (f", on {rows} rows" if rows > 1 else ""))
    x, y = f"(const int16_t *)(const void *){t(op.inputs[0])}", f"(int16_t *)(void *){t(op.outputs[0])}"
    call = f"edgernn_fc_run_s16(&$op{i}, {x}, {y});" if rows == 1 else \
        f"for (r = 0; r < {rows}; ++r) {{ edgernn_fc_run_s16(&$op{i}, {x} + r * {fc.n_input}, {y} + r * {fc.n_output}); }}"
    return Step(i, op.opcode, st.comment, [call], [st], fc.arrays)


def plan_softmax(m, sg, op: Operator, i: int, rows: int, index: int) -> Step:
    s = _softmax(m, sg, op, i, index, prefix=f"op{i}")
    st = CStruct(f"op{i}", "edgernn_softmax_params",
                 [(str(s.n), "classes"), (f"${s.exp_table.name}", "exp table"),
                  (str(s.exp_table.values.size), "table entries")],
                 f"SOFTMAX (op {i}), beta {s.beta}, input scale {s.input_scale:.9g}")
    x, y = t(op.inputs[0]), t(op.outputs[0])
    call = f"edgernn_softmax_run_s8(&$op{i}, {x}, {y});" if rows == 1 else \
        f"for (r = 0; r < {rows}; ++r) {{ edgernn_softmax_run_s8(&$op{i}, {x} + r * {s.n}, {y} + r * {s.n}); }}"
    return Step(i, op.opcode, st.comment, [call], [st], s.arrays)
