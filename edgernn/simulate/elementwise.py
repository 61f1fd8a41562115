"""Elementwise kernels (ADD, SUB, MUL, LOGISTIC, TANH in int8 and int16; RELU, RELU6, LESS and
the other comparisons, LOGICAL_AND, QUANTIZE, DEQUANTIZE), each mirroring its TFLM reference
kernel.

These serve the GRU / SimpleRNN / LSTM graphs the converter builds as WHILE loops (the loop
itself is :mod:`.control`). Every kernel is exact (0 LSB) against TFLM.
"""

from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from .ops import (ACT_NONE, _NP, _QRANGE, Kernel, Val, _align, activation_range, kernel, scale_of, zp_of)


def _act(k: Kernel) -> int:
    return int(getattr(k.opts, "fusedActivationFunction", ACT_NONE) or ACT_NONE) if k.opts is not None else ACT_NONE


class _Binary(Kernel):
    """Shared Prepare of the two-input elementwise ops."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        self.t1, self.t2, self.ty = self.t_in(0), self.t_in(1), self.t_out()
        self.dtype = self.ty.dtype
        if self.dtype not in ("int8", "int16", "int32"):
            self.fail(f"{self.dtype} outputs are not simulated (int8, int16 and int32 are)")
        if self.dtype == "int32":
            self.lo, self.hi = fp.INT32_MIN, fp.INT32_MAX
        else:
            self.lo, self.hi = activation_range(_act(self), self.ty)
        self.table = None

    def tabulate(self) -> None:
        """Int8 x int8 -> int8: the result depends on the pair of inputs only, so compute
        :meth:`int8` once for all 65,536 pairs; a call is then one table lookup."""
        if self.dtype == "int8" and self.t1.dtype == "int8" and self.t2.dtype == "int8":
            v = np.arange(-128, 128, dtype=np.int64)
            self.table = self.int8(v[:, None], v[None, :]).astype(np.int8).reshape(-1)
        elif self.dtype == "int16" and self.op.opcode == "MUL" and (self.off1 or self.off2):
            self.fail("int16 MUL needs zero points 0 (TFLM refuses others)")

    def int8(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, ins):
        (a, b), batched = _align(ins[:2])
        if self.table is not None:  # index (a + 128) * 256 + (b + 128)
            if self.sim.engine == "numba" and a.shape == b.shape:
                from . import _fast

                y = np.empty(a.shape, np.int8)
                try:
                    _fast.pair_table_lookup(self.table, np.ascontiguousarray(a).reshape(-1),
                                            np.ascontiguousarray(b).reshape(-1), y.reshape(-1))
                    return [Val(y, batched)]
                except Exception as exc:
                    _fast.fall_back(self.sim, f"{self.op.opcode} table", exc)
            return [Val(self.table[(a.astype(np.intp) << 8) + b.astype(np.intp) + 32896], batched)]
        a, b = a.astype(np.int64), b.astype(np.int64)
        if self.dtype == "int32":
            return [Val(np.clip(fp.wrap_int32(self.int32(a, b)), self.lo, self.hi).astype(np.int32), batched)]
        return [Val(self.int8(a, b).astype(_NP[self.dtype]), batched)]


def add_sub_multipliers(s1: float, s2: float, so: float, left_shift: int):
    """The three (multiplier, shift) of TFLM's quantized ADD / SUB Prepare: each input's scale
    over twice the larger one, then twice that over ``2^left_shift`` times the output scale,
    the ratios in double. (Some TFLM versions compute SUB's ratios in float32: edgernn's graphs
    give SUB scales whose ratios are exact either way.)"""
    s1, s2, so = (float(np.float32(v)) for v in (s1, s2, so))
    twice_max = 2 * max(s1, s2)
    return tuple(fp.quantize_multiplier(r) for r in (s1 / twice_max, s2 / twice_max,
                                                    twice_max / ((1 << left_shift) * so)))


@kernel("ADD", "SUB")
class AddSub(_Binary):
    """``reference_integer_ops::Add`` / ``Sub`` (int8, int16) and the plain int32 add/sub.

    Quantized: both inputs shifted left by 20 bits (int16: 15), each scaled by its scale over
    twice the larger input scale, summed (or subtracted) and requantized to the output scale,
    plus zero point, clamped to the fused activation (int8: tabulated over all input pairs,
    see :meth:`tabulate`). Int32 (loop counters): wrapping add/sub.
    """

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        self.sign = 1 if op.opcode == "ADD" else -1
        if self.dtype in ("int8", "int16"):
            self.left_shift = 20 if self.dtype == "int8" else 15
            self.m1, self.m2, self.mo = add_sub_multipliers(scale_of(self.t1), scale_of(self.t2), scale_of(self.ty),
                                                            self.left_shift)
            self.off1, self.off2, self.off_out = -zp_of(self.t1), -zp_of(self.t2), zp_of(self.ty)
        self.tabulate()

    def int32(self, a, b):
        return a + self.sign * b

    def int8(self, a, b):  # int8 or int16 (the name of the tabulated case)
        sa = fp.multiply_by_quantized_multiplier_fast((a + self.off1) << self.left_shift, *self.m1)
        sb = fp.multiply_by_quantized_multiplier_fast((b + self.off2) << self.left_shift, *self.m2)
        y = fp.multiply_by_quantized_multiplier_fast(sa + self.sign * sb, *self.mo) + self.off_out
        return np.clip(y, self.lo, self.hi).astype(np.int64)


@kernel("MUL")
class Mul(_Binary):
    """``reference_integer_ops::Mul`` (int8): ``(a - za) * (b - zb)`` requantized by
    ``s_a * s_b / s_out`` plus the output zero point, clamped. Int32: wrapping product."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        if self.dtype in ("int8", "int16"):
            s1, s2, so = (float(np.float32(scale_of(t))) for t in (self.t1, self.t2, self.ty))
            self.m = fp.quantize_multiplier(s1 * s2 / so)
            self.off1, self.off2, self.off_out = -zp_of(self.t1), -zp_of(self.t2), zp_of(self.ty)
        self.tabulate()

    def int32(self, a, b):
        return a * b

    def int8(self, a, b):  # int8 or int16
        y = fp.multiply_by_quantized_multiplier_fast((a + self.off1) * (b + self.off2), *self.m) + self.off_out
        return np.clip(y, self.lo, self.hi).astype(np.int64)


class _GemmlowpActivation(Kernel):
    """Prepare shared by int8 LOGISTIC and TANH: input rescaled to Q4.27 by a hand-built
    multiplier (frexp of ``scale * 2^27``), inputs beyond the radius saturate.

    int16 (zero points 0, output 2^-15): TFLM's table kernels
    (:func:`~edgernn.fixedpoint.logistic_int16` / ``tanh_int16``) with the input multiplier and
    shift of :func:`~edgernn.fixedpoint.int16_activation_params`, tabulated over all 65,536
    inputs (``table16``)."""

    INPUT_INTEGER_BITS = 4
    table16 = None

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t, y_t = self.t_in(0), self.t_out()
        if x_t.dtype == y_t.dtype == "int16":
            if zp_of(x_t) or zp_of(y_t) or not fp.checked_log2(scale_of(y_t)) == (True, -15):
                self.fail("int16 needs zero points 0 and an output scale of 2^-15 (TFLM refuses others)")
            tanh = op.opcode == "TANH"
            self.mult, self.left_shift = fp.int16_activation_params(scale_of(x_t), tanh)
            fn = fp.tanh_int16 if tanh else fp.logistic_int16
            self.table16 = fn(np.arange(-32768, 32768, dtype=np.int64), self.mult, self.left_shift).astype(np.int16)
            return
        if x_t.dtype != "int8" or y_t.dtype != "int8":
            self.fail(f"only int8 -> int8 and int16 -> int16 are simulated (got {x_t.dtype} -> {y_t.dtype})")
        real = float(np.float32(scale_of(x_t))) * float(1 << (31 - self.INPUT_INTEGER_BITS))
        self.mult, self.left_shift = fp.quantize_multiplier_frexp_only(real)
        self.radius = fp.calculate_input_radius(self.INPUT_INTEGER_BITS, self.left_shift, 31)
        self.x_zp = zp_of(x_t)
        # The result depends on the int8 input only: tabulate all 256 values once.
        self.table = self.compute(np.arange(-128, 128, dtype=np.int64)).astype(np.int8)

    def compute(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, ins):
        v = ins[0]
        if self.table16 is not None:
            return [Val(self.table16[v.a.astype(np.int64) + 32768], v.batched)]
        return [Val(self.table[v.a.astype(np.int64) + 128], v.batched)]


@kernel("LOGISTIC")
class Logistic(_GemmlowpActivation):
    """``reference_integer_ops::Logistic`` (int8): gemmlowp ``logistic`` on Q4.27, output Q0.8 - 128."""

    def compute(self, x):
        d = x - self.x_zp
        q4 = fp.multiply_by_quantized_multiplier(d, self.mult, self.left_shift)
        out = fp.rounding_divide_by_pot(fp.fixed_point_logistic(q4, 4), 31 - 8)
        out = np.clip(out - 128, -128, 127)
        return np.where(d <= -self.radius, -128, np.where(d >= self.radius, 127, out))


@kernel("TANH")
class Tanh(_GemmlowpActivation):
    """``reference_integer_ops::Tanh`` (int8): gemmlowp ``tanh`` on Q4.27, output Q0.7."""

    def compute(self, x):
        d = x - self.x_zp
        q4 = fp.multiply_by_quantized_multiplier(d, self.mult, self.left_shift)
        out = np.clip(fp.rounding_divide_by_pot(fp.fixed_point_tanh(q4, 4), 31 - 7), -128, 127)
        return np.where(d <= -self.radius, -128, np.where(d >= self.radius, 127, out))


@kernel("RELU")
class Relu(Kernel):
    """TFLM ``ReluQuantized`` (int8): requantize to the output scale, clamp at the quantized 0."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t, y_t = self.t_in(0), self.t_out()
        if x_t.dtype != "int8":
            self.fail(f"only int8 is simulated (got {x_t.dtype})")
        sx, sy = float(np.float32(scale_of(x_t))), np.float32(scale_of(y_t))
        self.m = fp.quantize_multiplier(sx / float(sy))
        self.x_zp, self.y_zp = zp_of(x_t), zp_of(y_t)
        self.lo = max(-128, self.y_zp)  # zp + roundf(0 / scale)
        self.table = np.clip(self.y_zp + fp.multiply_by_quantized_multiplier(
            np.arange(-128, 128) - self.x_zp, *self.m), self.lo, 127).astype(np.int8)

    def __call__(self, ins):
        v = ins[0]
        return [Val(self.table[v.a.astype(np.int64) + 128], v.batched)]


@kernel("RELU6")
class Relu6(Kernel):
    """TFLM ``Relu6Quantized`` (int8): clamp the raw input to [zp_in, q_in(6.0)].

    TFLM does not requantize here: the output reuses the input's integers even when the output
    tensor's scale differs (the simulator follows TFLM, not the flatbuffer's output scale).
    """

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t = self.t_in(0)
        if x_t.dtype != "int8":
            self.fail(f"only int8 is simulated (got {x_t.dtype})")
        zp = zp_of(x_t)
        six = zp + int(fp.tflite_round(float(np.float32(6.0) / np.float32(scale_of(x_t)))))
        self.lo, self.hi = zp, min(127, max(-128, six))

    def __call__(self, ins):
        v = ins[0]
        return [Val(np.clip(v.a, self.lo, self.hi).astype(np.int8), v.batched)]


@kernel("LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL")
class Compare(Kernel):
    """TFLM comparisons: int32/bool compared as is; int8 inputs first rescaled to a common
    scale (left shift 8, ``MultiplyByQuantizedMultiplierSmallerThanOneExp`` by each scale)."""

    FN = {"LESS": np.less, "LESS_EQUAL": np.less_equal, "GREATER": np.greater,
          "GREATER_EQUAL": np.greater_equal, "EQUAL": np.equal, "NOT_EQUAL": np.not_equal}

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        self.fn = self.FN[op.opcode]
        t1, t2 = self.t_in(0), self.t_in(1)
        self.quantized = t1.dtype in ("int8", "uint8") and t1.scale is not None
        if self.quantized:
            self.m1 = fp.quantize_multiplier(float(np.float32(scale_of(t1))))
            self.m2 = fp.quantize_multiplier(float(np.float32(scale_of(t2))))
            self.off1, self.off2 = -zp_of(t1), -zp_of(t2)

    def __call__(self, ins):
        (a, b), batched = _align(ins[:2])
        if self.quantized:
            a = fp.multiply_by_quantized_multiplier((a.astype(np.int64) + self.off1) << 8, *self.m1)
            b = fp.multiply_by_quantized_multiplier((b.astype(np.int64) + self.off2) << 8, *self.m2)
        return [Val(self.fn(a, b), batched)]


@kernel("LOGICAL_AND")
class LogicalAnd(Kernel):
    def __call__(self, ins):
        (a, b), batched = _align(ins[:2])
        return [Val(np.logical_and(a, b), batched)]


@kernel("QUANTIZE")
class Quantize(Kernel):
    """TFLM QUANTIZE: float -> int8 (``round(x / scale) + zp``, float32 division, half away from
    zero) or int8/int16 -> int8 requantization (``MultiplyByQuantizedMultiplier`` by s_in / s_out)."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t, y_t = self.t_in(0), self.t_out()
        self.src = x_t.dtype
        self.lo, self.hi = _QRANGE[y_t.dtype]
        self.out_dtype = _NP[y_t.dtype]
        self.y_scale, self.y_zp = float(np.float32(scale_of(y_t))), zp_of(y_t)
        if self.src != "float32":
            self.x_zp = zp_of(x_t)
            self.m = fp.quantize_multiplier(float(np.float32(scale_of(x_t))) / self.y_scale)

    def __call__(self, ins):
        v = ins[0]
        if self.src == "float32":
            q = fp.round_half_away(v.a.astype(np.float32) / np.float32(self.y_scale)) + self.y_zp
        else:
            q = fp.multiply_by_quantized_multiplier(v.a.astype(np.int64) - self.x_zp, *self.m) + self.y_zp
        return [Val(np.clip(q, self.lo, self.hi).astype(self.out_dtype), v.batched)]


@kernel("DEQUANTIZE")
class Dequantize(Kernel):
    """TFLM DEQUANTIZE: ``float(double(scale) * (x - zp))``."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t = self.t_in(0)
        self.scale, self.zp = float(np.float32(scale_of(x_t))), zp_of(x_t)

    def __call__(self, ins):
        v = ins[0]
        return [Val((self.scale * (v.a.astype(np.int64) - self.zp)).astype(np.float32), v.batched)]
