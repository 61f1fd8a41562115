"""Pooling and reduction kernels: MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, SUM, REDUCE_MAX, REDUCE_MIN.

Each mirrors its TFLM reference kernel (``reference_integer_ops`` pooling,
``micro/kernels/pooling_common.cc``, ``micro/kernels/reduce_common.cc``,
``reference_ops::QuantizedMeanOrSum``), vectorized over the samples. Exact (0 LSB).
"""

from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from .conv import conv_padding
from .ops import ACT_NONE, Kernel, Val, activation_range, kernel, scale_of, zp_of


class _Pool(Kernel):
    """Prepare shared by the two pools: in/out quantization must match (TFLM checks it)."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t, y_t = self.t_in(0), self.t_out()
        if x_t.dtype != "int8" or y_t.dtype != "int8":
            self.fail(f"only int8 -> int8 pooling is simulated (got {x_t.dtype} -> {y_t.dtype})")
        if len(x_t.shape) != 4:
            self.fail(f"4-D input expected (got {x_t.shape})")
        if abs(scale_of(x_t) - scale_of(y_t)) > 1e-6 or zp_of(x_t) != zp_of(y_t):
            self.fail("input and output quantization differ; TFLM's int8 pooling requires them equal")
        o = self.opts
        self.k = (int(o.filterHeight), int(o.filterWidth))
        self.stride = (int(o.strideH), int(o.strideW))
        h, w = int(x_t.shape[1]), int(x_t.shape[2])
        oh, self.pad_top, _ = conv_padding(int(o.padding), h, self.k[0], self.stride[0], 1)
        ow, self.pad_left, _ = conv_padding(int(o.padding), w, self.k[1], self.stride[1], 1)
        if (oh, ow) != tuple(int(d) for d in y_t.shape[1:3]):
            self.fail(f"output shape {y_t.shape} does not match the input {x_t.shape} and options")
        self.in_hw, self.out_hw = (h, w), (oh, ow)
        self.lo, self.hi = activation_range(int(getattr(o, "fusedActivationFunction", ACT_NONE)), y_t)

    def windows(self):
        """For each output position, the in-image window: ((oy, ox), (y0, y1, x0, x1))."""
        (h, w), (oh, ow) = self.in_hw, self.out_hw
        for oy in range(oh):
            y0 = oy * self.stride[0] - self.pad_top
            for ox in range(ow):
                x0 = ox * self.stride[1] - self.pad_left
                yield (oy, ox), (max(y0, 0), min(y0 + self.k[0], h), max(x0, 0), min(x0 + self.k[1], w))

    def reduce(self, win: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, ins):
        v = ins[0]
        a = v.a
        lead = a.shape[:a.ndim - 3]
        x = a.reshape((-1,) + a.shape[-3:])
        y = np.empty((x.shape[0],) + self.out_hw + (x.shape[3],), np.int64)
        for (oy, ox), (y0, y1, x0, x1) in self.windows():
            y[:, oy, ox] = self.reduce(x[:, y0:y1, x0:x1, :].reshape(x.shape[0], -1, x.shape[3]))
        y = np.clip(y, self.lo, self.hi).astype(np.int8)
        return [Val(y.reshape(lead + y.shape[1:]), v.batched)]


@kernel("MAX_POOL_2D")
class MaxPool2D(_Pool):
    """``reference_integer_ops::MaxPool``: the max of the in-image taps, clamped."""

    def reduce(self, win):
        return win.max(axis=1).astype(np.int64)


@kernel("AVERAGE_POOL_2D")
class AveragePool2D(_Pool):
    """``reference_integer_ops::AveragePool``: the sum of the **raw** int8 values of the
    in-image taps divided by their count, rounded half away from zero on the raw sum
    (C's truncating division of ``sum ± count/2``), clamped. No zero point is subtracted."""

    def reduce(self, win):
        s = win.sum(axis=1, dtype=np.int64)
        n = win.shape[1]
        q = np.where(s > 0, s + n // 2, s - n // 2)
        return np.sign(q) * (np.abs(q) // n)  # C division truncates toward zero


def _axes(k: Kernel) -> tuple[int, ...]:
    t = k.t_in(1)
    if t is None or t.data is None:
        k.fail("the axis input must be a constant tensor")
    rank = len(k.t_in(0).shape)
    axes = sorted({int(a) + rank if int(a) < 0 else int(a) for a in np.asarray(t.data).reshape(-1)})
    if any(not 0 <= a < rank for a in axes):
        k.fail(f"axis {axes} out of range for a rank-{rank} input")
    return tuple(axes)


class _Reduce(Kernel):
    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t, y_t = self.t_in(0), self.t_out()
        if x_t.dtype != "int8" or y_t.dtype != "int8":
            self.fail(f"only int8 -> int8 is simulated (got {x_t.dtype} -> {y_t.dtype})")
        self.axes = _axes(self)
        self.count = int(np.prod([x_t.shape[a] for a in self.axes])) if self.axes else 1

    def reduced(self, v: Val, fn) -> tuple[np.ndarray, bool]:
        off = 1 if v.batched else 0
        return fn(v.a, tuple(a + off for a in self.axes)), v.batched

    def finish(self, y: np.ndarray, v: Val) -> list[Val]:
        shape = ((v.a.shape[0],) if v.batched else ()) + tuple(self.t_out().shape)
        return [Val(y.reshape(shape), v.batched)]


@kernel("MEAN", "SUM")
class MeanOrSum(_Reduce):
    """``reference_ops::QuantizedMeanOrSum`` (int8), what current TFLM runs for every axis set.

    Prepare: ``(M, s) = QuantizeMultiplier(double(s_in) / double(s_out))``. Eval, with n the
    number of reduced elements (1 for SUM): ``shift = min(floor(log2 n), 32, 31 + s)``,
    ``M' = (M << shift) / n`` (int64, truncating), ``y = MBQM(sum(q) - zp_in * n, M', s - shift)
    + zp_out``, clamped. (Older TFLM releases had a truncating shortcut for equal in/out scales.)
    """

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t, y_t = self.t_in(0), self.t_out()
        m, s = fp.quantize_multiplier(float(np.float32(scale_of(x_t))) / float(np.float32(scale_of(y_t))))
        n = self.count if op.opcode == "MEAN" else 1
        shift = min(n.bit_length() - 1, 32, 31 + s)
        self.mult, self.shift = (m << shift) // n, s - shift
        self.x_zp, self.y_zp = zp_of(x_t), zp_of(y_t)

    def __call__(self, ins):
        v = ins[0]
        s, _ = self.reduced(v, lambda a, ax: a.sum(axis=ax, dtype=np.int64))
        y = fp.multiply_by_quantized_multiplier(fp.wrap_int32(s - self.x_zp * self.count), self.mult, self.shift)
        return self.finish(np.clip(y + self.y_zp, -128, 127).astype(np.int8), v)


@kernel("REDUCE_MAX", "REDUCE_MIN")
class ReduceMaxMin(_Reduce):
    """``reference_ops::ReduceGeneric`` with max (min): raw values, in = out quantization."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t, y_t = self.t_in(0), self.t_out()
        if float(np.float32(scale_of(x_t))) != float(np.float32(scale_of(y_t))) or zp_of(x_t) != zp_of(y_t):
            self.fail("input and output quantization differ; TFLM's int8 REDUCE_MAX requires them equal")
        self.fn = np.max if op.opcode == "REDUCE_MAX" else np.min

    def __call__(self, ins):
        v = ins[0]
        y, _ = self.reduced(v, lambda a, ax: self.fn(a, axis=ax) if ax else a)
        return self.finish(np.asarray(y, np.int8), v)
