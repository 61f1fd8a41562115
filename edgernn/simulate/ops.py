"""Int8 op kernels of the simulator, one class per TFLite builtin op.

Each kernel mirrors one TFLM kernel: ``__init__`` is TFLM's Prepare (multipliers and shifts
computed from the tensors' float scales exactly as TFLM computes them), ``__call__`` is its
Eval, vectorized over the simulator's batch axis.

Values flow as :class:`Val`: an array plus ``batched`` — batched arrays carry a leading axis
of N samples in front of the tensor's own shape (which keeps the model's batch dim of 1);
unbatched arrays (constants, loop counters) have exactly the tensor's shape.

Kernels register themselves with :func:`kernel`; an op without a kernel makes the simulator
refuse the model with one line naming the op.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import EdgeRNNError
from ..registry import registrar
from ..tflite_model import strided_slice_index
from .. import fixedpoint as fp

log = logging.getLogger(__name__)

KERNELS: dict[str, type] = {}

kernel = registrar(KERNELS, "simulator kernels")  # @kernel("ADD", ...) for TFLite builtin opcodes


@dataclass
class Val:
    a: np.ndarray
    batched: bool


# Fused activations (schema ActivationFunctionType)
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6, ACT_TANH, ACT_SIGN_BIT, ACT_SIGMOID = range(7)

_QRANGE = {"int8": (-128, 127), "int16": (-32768, 32767), "uint8": (0, 255), "int32": (fp.INT32_MIN, fp.INT32_MAX)}
_NP = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "uint8": np.uint8, "float32": np.float32,
       "bool": np.bool_, "int64": np.int64}


def scale_of(t) -> float:
    if t.scale is None or not len(t.scale):
        raise EdgeRNNError(f"tensor '{t.name}': not quantized; the simulator runs int8 models only")
    return float(t.scale[0])


def zp_of(t) -> int:
    return int(t.zero_point[0]) if t.zero_point is not None and len(t.zero_point) else 0


def f32(x: float) -> float:
    """Round a Python float to float32 (TFLM keeps scales as ``float``)."""
    return float(np.float32(x))


def activation_range(activation: int, t) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized``: clamp bounds of a fused activation in ``t``'s int type."""
    qmin, qmax = _QRANGE[t.dtype]
    if activation in (ACT_NONE,) or t.scale is None:
        return qmin, qmax
    scale, zp = np.float32(scale_of(t)), zp_of(t)

    def q(v):  # float division, TfLiteRound, like TFLM's Quantize helper
        return zp + int(fp.tflite_round(float(np.float32(v) / scale)))
    if activation == ACT_RELU:
        return max(qmin, q(0.0)), qmax
    if activation == ACT_RELU6:
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if activation == ACT_RELU_N1_TO_1:
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise EdgeRNNError(f"tensor '{t.name}': fused activation {activation} is not supported by the int8 simulator")


def int_matmul(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    """Exact integer ``a @ b`` through BLAS: float32 when every partial sum stays below 2^24,
    float64 below 2^53 (``bound`` = an upper bound of |a_ik * b_kj| summed over k)."""
    if bound < (1 << 24):
        return (a.astype(np.float32) @ b.astype(np.float32)).astype(np.int64)
    if bound < (1 << 53):
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


def lut16(fn) -> np.ndarray:
    """A 65536-entry table of ``fn`` over every int16 input (index = x + 32768)."""
    return np.asarray(fn(np.arange(-32768, 32768, dtype=np.int64)), dtype=np.int64)


class Kernel:
    """Base: ``sim`` (the Simulator), ``sg`` (Subgraph), ``op`` (Operator)."""

    def __init__(self, sim, sg, op):
        self.sim, self.sg, self.op = sim, sg, op
        self.opts = op.options

    def t_in(self, i):
        idx = self.op.inputs[i]
        return None if idx < 0 else self.sg.tensors[idx]

    def t_out(self, i=0):
        return self.sg.tensors[self.op.outputs[i]]

    def where(self) -> str:
        return f"{self.sim.path}: op {self.op.opcode} (output '{self.t_out().name}')"

    def fail(self, what: str):
        raise EdgeRNNError(f"{self.where()}: {what}")

    def __call__(self, ins: list[Val | None]) -> list[Val]:  # pragma: no cover - abstract
        raise NotImplementedError


def _out_shape(v: Val, shape) -> tuple:
    """``shape`` with the sample axis of ``v`` in front when ``v`` is batched."""
    return ((v.a.shape[0],) if v.batched else ()) + tuple(shape)


def _const_data(k: Kernel, i: int) -> np.ndarray:
    t = k.t_in(i)
    if t is None or t.data is None:
        k.fail(f"input {i} must be a constant tensor")
    return t.data


def _align(vals: list[Val]) -> tuple[list[np.ndarray], bool]:
    """Arrays ready for numpy broadcasting with TFLite's right-aligned rules, plus the batched flag."""
    batched = any(v.batched for v in vals)
    if not batched:
        return [v.a for v in vals], False
    rank = max(v.a.ndim - (1 if v.batched else 0) for v in vals)
    out = []
    for v in vals:
        if v.batched:
            r = v.a.ndim - 1
            out.append(v.a.reshape((v.a.shape[0],) + (1,) * (rank - r) + v.a.shape[1:]))
        else:
            out.append(v.a.reshape((1,) * (rank + 1 - v.a.ndim) + v.a.shape))
    return out, True


# ============================================================================ FULLY_CONNECTED
@kernel("FULLY_CONNECTED")
class FullyConnected(Kernel):
    """``reference_integer_ops::FullyConnected`` / ``FullyConnectedPerChannel`` (int8 in/out,
    or "16x8": int16 in/out with int8 weights).

    ``acc = sum_k w[o,k] * (x[k] - x_zp) + bias[o]``, requantized with
    ``MultiplyByQuantizedMultiplier`` — one multiplier for per-tensor weights, one per output
    channel otherwise (each from the double product of the input and weight scales) — plus the
    output zero point, clamped to the fused activation's range. int8, and 16x8 with an int32
    bias: int32 accumulators, the double-rounding requantization. 16x8 with an int64 bias or
    none: int64 accumulators and the 16-bit reduced multiplier
    (:func:`~edgernn.fixedpoint.multiply_by_quantized_multiplier_int64`). Exact (0 LSB).
    """

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t, w_t, b_t, y_t = self.t_in(0), self.t_in(1), self.t_in(2), self.t_out()
        self.int16 = x_t.dtype == "int16"
        if x_t.dtype != y_t.dtype or x_t.dtype not in ("int8", "int16") or w_t.dtype != "int8":
            self.fail(f"only int8 x int8 -> int8 and int16 x int8 -> int16 are simulated "
                      f"(got {x_t.dtype}, {w_t.dtype} -> {y_t.dtype})")
        self.acc64 = self.int16 and (b_t is None or b_t.dtype == "int64")
        if w_t.data is None:
            self.fail("weights must be constant")
        self.w = w_t.data.astype(np.int64)
        self.bias = b_t.data.astype(np.int64) if b_t is not None and b_t.data is not None else None
        s_in, s_out = np.float32(scale_of(x_t)), float(np.float32(scale_of(y_t)))
        if len(w_t.scale) > 1:  # per-channel: double(input) * double(filter) / double(output)
            ms = [fp.quantize_multiplier(float(s_in) * float(ws) / s_out) for ws in w_t.scale]
            self.mult = np.array([m for m, _ in ms], np.int64)
            self.shift = np.array([s for _, s in ms], np.int64)
            self.w_zp = 0
        else:  # per-tensor: GetQuantizedConvolutionMultipler, double(input) * double(filter) / double(output)
            m, s = fp.quantize_multiplier(float(s_in) * float(np.float32(w_t.scale[0])) / s_out)
            self.mult, self.shift = np.int64(m), np.int64(s)
            self.w_zp = zp_of(w_t)
        self.x_zp, self.y_zp = zp_of(x_t), zp_of(y_t)
        self.lo, self.hi = activation_range(int(self.opts.fusedActivationFunction), y_t)
        self.out_shape = y_t.shape
        self._compiled = None if self.int16 else self._compiled_args()

    def _compiled_args(self):
        """Arguments of :func:`._fast.fully_connected_int8`, or None when its float sums or its
        requantization could round (then the numpy kernel runs)."""
        from . import _fast

        if _fast.numba is None:
            return None
        w = self.w - self.w_zp
        mult = np.broadcast_to(self.mult, (w.shape[0],))
        shift = np.broadcast_to(self.shift, (w.shape[0],))
        w_sum = np.abs(w).sum(1) * 255
        acc = (w_sum + (np.abs(self.bias) if self.bias is not None else 0)) << np.maximum(shift, 0)
        if w_sum.max() >= _fast.FLOAT32_EXACT or acc.max() >= (1 << 31) or (acc * mult).max() >= _fast.FLOAT_EXACT:
            return None
        bias = self.bias if self.bias is not None else np.zeros(w.shape[0], np.int64)
        rq = np.array([_fast.requant_constants(int(m), int(s)) for m, s in zip(mult, shift)]).T.copy()
        return (self.x_zp, np.ascontiguousarray(w.T, np.float32), bias.astype(np.float64), rq, float(self.y_zp),
                float(self.lo), float(self.hi))

    def __call__(self, ins):
        v = ins[0]
        k = self.w.shape[1]
        if self._compiled is not None and self.sim.engine == "numba":
            from . import _fast

            x = np.ascontiguousarray(v.a.reshape(-1, k), np.int8)
            y = np.empty((x.shape[0], self.w.shape[0]), np.int8)
            try:
                _fast.fully_connected_int8(x, *self._compiled, y)
                return [Val(y.reshape(_out_shape(v, self.out_shape)), v.batched)]
            except Exception as exc:
                _fast.fall_back(self.sim, "FULLY_CONNECTED", exc)
        x = v.a.reshape(-1, k).astype(np.int64) - self.x_zp
        if self.int16:
            acc = int_matmul(x, (self.w - self.w_zp).T, k * 65536 * 255 + 1)
            if self.bias is not None:
                acc = acc + self.bias
            if self.acc64:
                y = fp.multiply_by_quantized_multiplier_int64(acc, self.mult, self.shift) + self.y_zp
            else:
                y = fp.multiply_by_quantized_multiplier(fp.wrap_int32(acc), self.mult, self.shift) + self.y_zp
            y = np.clip(y, self.lo, self.hi).astype(np.int16)
            return [Val(y.reshape(_out_shape(v, self.out_shape)), v.batched)]
        acc = int_matmul(x, (self.w - self.w_zp).T, k * 255 * 255 + 1)
        if self.bias is not None:
            acc = acc + self.bias
        y = fp.multiply_by_quantized_multiplier_fast(fp.wrap_int32(acc), self.mult, self.shift) + self.y_zp
        y = np.clip(y, self.lo, self.hi).astype(np.int8)
        return [Val(y.reshape(_out_shape(v, self.out_shape)), v.batched)]


# ============================================================================ SOFTMAX
@kernel("SOFTMAX")
class Softmax(Kernel):
    """``reference_ops::Softmax`` for int8 -> int8 (TFLM's gemmlowp fixed-point path).

    Per row: ``diff = x - max(x)``; entries with ``diff >= diff_min`` get
    ``exp_on_negative_values`` of ``diff`` rescaled to Q5.26 (beta and the input scale folded
    into one multiplier), summed in Q12.19; the sum's reciprocal (``GetReciprocal``) scales
    each exp to the output (Q0.8 then - 128). The steps before the row sum depend on the
    difference (256 possible values) only and are tabulated. Exact (0 LSB).
    """

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t, y_t = self.t_in(0), self.t_out()
        if x_t.dtype != "int8" or y_t.dtype != "int8":
            self.fail(f"only int8 -> int8 softmax is simulated (got {x_t.dtype} -> {y_t.dtype})")
        beta = float(np.float32(self.opts.beta))
        scaled_diff_integer_bits = 5
        # PreprocessSoftmaxScaling (double rounding build: cap at 2^31 - 1)
        real = min(beta * float(np.float32(scale_of(x_t))) * float(1 << (31 - scaled_diff_integer_bits)),
                   float((1 << 31) - 1))
        self.mult, self.left_shift = fp.quantize_multiplier(real)
        self.diff_min = -fp.calculate_input_radius(scaled_diff_integer_bits, self.left_shift)
        # Everything before the row sum depends on diff = x - max(x) in [-255, 0] only: tabulate.
        diff = -np.arange(256, dtype=np.int64)
        self.ok = diff >= self.diff_min
        scaled = fp.multiply_by_quantized_multiplier_greater_than_one(diff, self.mult, self.left_shift)
        self.exp = fp.exp_on_negative_values(scaled, scaled_diff_integer_bits)
        self.acc_bits = 12
        self.exp_acc = np.where(self.ok, fp.saturating_rounding_multiply_by_pot(self.exp, -self.acc_bits), 0)

    def __call__(self, ins):
        v = ins[0]
        if self.sim.engine == "numba":
            from . import _fast

            try:
                return [Val(self._run_compiled(v.a), v.batched)]
            except Exception as exc:
                _fast.fall_back(self.sim, "SOFTMAX", exc)
        x = v.a.astype(np.int64)
        d = x.max(axis=-1, keepdims=True) - x  # -diff, an index into the tables
        ok, e = self.ok[d], self.exp[d]
        summed = self.exp_acc[d].sum(axis=-1, keepdims=True)
        sums, inverse = np.unique(summed, return_inverse=True)  # rows often share their sum
        scales, bits = fp.get_reciprocal(fp.wrap_int32(sums), self.acc_bits)
        shifted_scale = scales[inverse].reshape(summed.shape)
        num_bits_over_unit = np.asarray(bits)[inverse].reshape(summed.shape)
        exponent = num_bits_over_unit + 31 - 8
        unsat = fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(shifted_scale, e), exponent)
        y = np.where(ok, np.clip(unsat - 128, -128, 127), -128).astype(np.int8)
        return [Val(y, v.batched)]

    def _run_compiled(self, a: np.ndarray) -> np.ndarray:
        """The same steps, one row at a time, through :func:`._fast.softmax_int8`."""
        from . import _fast

        x = np.ascontiguousarray(a.reshape(-1, a.shape[-1]), np.int8)
        y = np.empty(x.shape, np.int8)
        _fast.softmax_int8(x, self.exp_acc, self.ok, self.exp, self.acc_bits, y)
        return y.reshape(a.shape)


# ============================================================================ shape ops
@kernel("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
class Reshape(Kernel):
    """Data unchanged, new shape taken from the output tensor. Exact."""

    def __call__(self, ins):
        v = ins[0]
        return [Val(v.a.reshape(_out_shape(v, self.t_out().shape)), v.batched)]


@kernel("STRIDED_SLICE")
class StridedSlice(Kernel):
    """``reference_ops::StridedSlice`` with constant begin/end/strides and begin/end/shrink masks."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        o = self.opts
        if o.ellipsisMask or o.newAxisMask:
            self.fail("ellipsis and new-axis masks are not supported")
        self.begin, self.end, self.strides = (_const_data(self, i).astype(np.int64) for i in (1, 2, 3))
        self.in_shape = self.t_in(0).shape
        self.index = strided_slice_index(self.in_shape, self.begin, self.end, self.strides, o)

    def time_steps_read(self, axis: int, steps: int) -> set[int]:
        """The indices along ``axis`` (of length ``steps``) that this slice reads."""
        i = self.index[axis] if axis < len(self.index) else slice(None)
        return {i} if isinstance(i, int) else set(range(steps)[i])

    def __call__(self, ins):
        v = ins[0]
        y = v.a[((slice(None),) if v.batched else ()) + self.index]
        return [Val(np.ascontiguousarray(y).reshape(_out_shape(v, self.t_out().shape)), v.batched)]


@kernel("SLICE")
class Slice(Kernel):
    """``reference_ops::Slice`` with constant (or unbatched) begin and size; size -1 = to the end."""

    def __call__(self, ins):
        v, bv, sv = ins[0], ins[1], ins[2]
        if bv.batched or sv.batched:
            self.fail("begin and size must be the same for every sample")
        shape = self.t_in(0).shape
        idx = []
        for ax, dim in enumerate(shape):
            b = int(bv.a[ax])
            s = int(sv.a[ax])
            idx.append(slice(b, dim if s < 0 else b + s))
        y = v.a[((slice(None),) if v.batched else ()) + tuple(idx)]
        return [Val(np.ascontiguousarray(y), v.batched)]


@kernel("GATHER")
class Gather(Kernel):
    """``reference_ops::Gather`` (``batch_dims`` 0): ``take`` along ``axis`` with int32 indices."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        self.axis = int(self.opts.axis) if self.opts is not None else 0
        if self.opts is not None and getattr(self.opts, "batchDims", 0):
            self.fail("batch_dims != 0 is not supported")
        if self.axis < 0:
            self.axis += len(self.t_in(0).shape)

    def __call__(self, ins):
        v, iv = ins[0], ins[1]
        if iv.batched:
            # one index set per sample: gather sample by sample
            if not v.batched:
                v = Val(np.broadcast_to(v.a, (iv.a.shape[0],) + v.a.shape), True)
            y = np.stack([np.take(v.a[i], iv.a[i], axis=self.axis) for i in range(iv.a.shape[0])])
            return [Val(y, True)]
        ax = self.axis + (1 if v.batched else 0)
        return [Val(np.take(v.a, iv.a.astype(np.int64), axis=ax), v.batched)]


@kernel("CONCATENATION")
class Concatenation(Kernel):
    """TFLM concatenation: int8 inputs must share the output's scale and zero point, so a copy."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        self.axis = int(self.opts.axis)
        rank = len(self.t_out().shape)
        if self.axis < 0:
            self.axis += rank
        y_t = self.t_out()
        for i in range(len(op.inputs)):
            t = self.t_in(i)
            if y_t.scale is not None and t.scale is not None and (
                    scale_of(t) != scale_of(y_t) or zp_of(t) != zp_of(y_t)):
                self.fail("inputs with quantization differing from the output are not supported (TFLM refuses them)")
        act = int(self.opts.fusedActivationFunction)
        if act != ACT_NONE:
            self.fail("fused activations are not supported")

    def __call__(self, ins):
        arrs, batched = _align(ins)
        if batched:
            n = max(a.shape[0] for a in arrs)
            arrs = [np.broadcast_to(a, (n,) + a.shape[1:]) for a in arrs]
        return [Val(np.concatenate(arrs, axis=self.axis + (1 if batched else 0)), batched)]


@kernel("SPLIT", "SPLIT_V")
class Split(Kernel):
    """``SPLIT`` (equal parts) / ``SPLIT_V`` (given sizes) along a constant axis: raw copies,
    every part keeps the input's quantization. Exact."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        data_i, axis_i = (1, 0) if op.opcode == "SPLIT" else (0, 2)
        self.data_i = data_i
        rank = len(self.t_in(data_i).shape)
        self.axis = int(np.asarray(_const_data(self, axis_i)).reshape(-1)[0]) % rank
        sizes = [self.t_out(i).shape[self.axis] for i in range(len(op.outputs))]
        self.bounds = np.cumsum(sizes)[:-1]

    def __call__(self, ins):
        v = ins[self.data_i]
        parts = np.split(v.a, self.bounds, axis=self.axis + (1 if v.batched else 0))
        return [Val(np.ascontiguousarray(p), v.batched) for p in parts]


@kernel("CAST")
class Cast(Kernel):
    """``CAST``: the values converted to the output type, quantization ignored (TFLM's kernel
    copies numbers, it does not requantize). Exact."""

    def __call__(self, ins):
        v = ins[0]
        return [Val(v.a.astype(_NP[self.t_out().dtype]), v.batched)]


@kernel("FILL")
class Fill(Kernel):
    """``reference_ops::Fill``: a tensor of the given dims holding one value (a copy, exact).

    edgernn's WHILE graphs use it to start an output sequence without a T-sized constant."""

    def __call__(self, ins):
        dims, value = ins[0], ins[1]
        if dims.batched:
            self.fail("dims must be the same for every sample")
        shape = tuple(int(d) for d in np.asarray(dims.a).reshape(-1))
        dtype = _NP[self.t_out().dtype]
        if value.batched:
            v = np.asarray(value.a).reshape(value.a.shape[0])
            return [Val(np.broadcast_to(v.reshape((-1,) + (1,) * len(shape)), (len(v),) + shape).astype(dtype),
                        True)]
        return [Val(np.full(shape, np.asarray(value.a).reshape(-1)[0], dtype=dtype), False)]


@kernel("DYNAMIC_UPDATE_SLICE")
class DynamicUpdateSlice(Kernel):
    """``DYNAMIC_UPDATE_SLICE``: ``operand`` with ``update`` written at ``start`` (a copy, exact).

    Start indices are clamped so the update fits, as TFLite's kernel does. Operand and update
    share one quantization (edgernn's graphs write the hidden state into the sequence buffer)."""

    def __call__(self, ins):
        operand, update, start = ins
        if start.batched:
            self.fail("start indices must be the same for every sample")
        dims = self.t_in(0).shape
        up_dims = self.t_in(1).shape
        begin = [min(max(int(s), 0), d - u) for s, d, u in zip(np.asarray(start.a).reshape(-1), dims, up_dims)]
        batched = operand.batched or update.batched
        base = operand.a
        if batched and not operand.batched:
            n = update.a.shape[0]
            base = np.broadcast_to(base, (n,) + base.shape)
        out = np.array(base, copy=True)
        idx = tuple(slice(b, b + u) for b, u in zip(begin, up_dims))
        lead = (slice(None),) if batched else ()
        out[lead + idx] = update.a if (update.batched or not batched) else update.a[None]
        return [Val(out, batched)]
