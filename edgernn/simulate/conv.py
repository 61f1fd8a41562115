"""Convolution kernels: CONV_2D and DEPTHWISE_CONV_2D (int8 activations, int8 weights).

Both mirror TFLM's reference integer kernels (``reference_integer_ops::ConvPerChannel`` and
``DepthwiseConvPerChannel``; Prepare in ``micro/kernels/conv_common.cc`` /
``depthwise_conv_common.cc`` with ``PopulateConvolutionQuantizationParams``):

* one Q31 multiplier per output channel, ``QuantizeMultiplier(double(s_in) * double(s_w[c]) /
  double(s_out))`` (a per-tensor weight scale is broadcast to every channel);
* ``acc = sum w * (x - zp_in)`` over the taps that fall **inside** the input (TFLM skips the
  others, which equals padding with the input zero point), ``+ bias[c]`` (int32),
  requantized, ``+ zp_out``, clamped to the fused activation's range;
* SAME padding puts ``total // 2`` before and the odd extra after (``ComputePaddingWithOffset``).

Eval is vectorized over the samples (and the tensor's own batch axis, which
SPACE_TO_BATCH_ND makes larger than 1): one matrix product per filter tap on the input padded
with its zero point, summed exactly in float64. Exact (0 LSB).
"""

from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from .ops import ACT_NONE, Kernel, Val, activation_range, kernel, scale_of, zp_of

PADDING_SAME, PADDING_VALID = 0, 1

# Samples per chunk: keeps the per-tap float64 products at a few MB whatever N is.
_CHUNK_ELEMENTS = 1 << 21


def conv_output_size(padding: int, size: int, kernel_size: int, stride: int, dilation: int) -> int:
    """TFLM ``ComputeOutSize``."""
    effective = (kernel_size - 1) * dilation + 1
    if padding == PADDING_SAME:
        return (size + stride - 1) // stride
    return (size + stride - effective) // stride


def conv_padding(padding: int, size: int, kernel_size: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """(output size, padding before, padding after) as TFLM's ``ComputePaddingHeightWidth``."""
    out = conv_output_size(padding, size, kernel_size, stride, dilation)
    effective = (kernel_size - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2, total - total // 2


def channel_multipliers(s_in: float, w_scales, s_out: float, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``PopulateConvolutionQuantizationParams``: one (multiplier, shift) per output channel."""
    scales = [float(s) for s in w_scales]
    if len(scales) == 1:
        scales = scales * channels
    qs = [fp.quantize_multiplier(float(np.float32(s_in)) * float(np.float32(s)) / float(np.float32(s_out)))
          for s in scales]
    return np.array([m for m, _ in qs], np.int64), np.array([s for _, s in qs], np.int64)


class _Conv(Kernel):
    """Prepare shared by CONV_2D and DEPTHWISE_CONV_2D."""

    depthwise = False

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        x_t, w_t, y_t = self.t_in(0), self.t_in(1), self.t_out()
        b_t = self.t_in(2) if len(op.inputs) > 2 else None
        if x_t.dtype != "int8" or y_t.dtype != "int8" or w_t.dtype != "int8":
            self.fail(f"only int8 x int8 -> int8 is simulated (got {x_t.dtype}, {w_t.dtype} -> {y_t.dtype})")
        if w_t.data is None:
            self.fail("the filter must be a constant tensor")
        if len(x_t.shape) != 4 or len(w_t.shape) != 4:
            self.fail(f"4-D input and filter expected (got {x_t.shape}, {w_t.shape})")
        if w_t.zero_point is not None and np.any(np.asarray(w_t.zero_point) != 0):
            self.fail("filter zero points must be 0 (symmetric int8 weights)")
        o = self.opts
        self.padding = int(o.padding)
        self.stride = (int(o.strideH), int(o.strideW))
        self.dilation = (int(getattr(o, "dilationHFactor", 1) or 1), int(getattr(o, "dilationWFactor", 1) or 1))
        self.w = w_t.data.astype(np.int64)
        self.kh, self.kw = int(w_t.shape[1]), int(w_t.shape[2])
        self.cin = int(x_t.shape[3])
        self.cout = int(y_t.shape[3])
        self.bias = None
        if b_t is not None:
            if b_t.data is None or b_t.dtype != "int32":
                self.fail("the bias must be a constant int32 tensor")
            self.bias = b_t.data.astype(np.int64).reshape(-1)
        h, w = int(x_t.shape[1]), int(x_t.shape[2])
        oh, self.pad_top, self.pad_bottom = conv_padding(self.padding, h, self.kh, self.stride[0], self.dilation[0])
        ow, self.pad_left, self.pad_right = conv_padding(self.padding, w, self.kw, self.stride[1], self.dilation[1])
        if (oh, ow) != (int(y_t.shape[1]), int(y_t.shape[2])):
            self.fail(f"output shape {y_t.shape} does not match the input {x_t.shape}, filter and options "
                      f"(expected {oh}x{ow})")
        self.mult, self.shift = channel_multipliers(scale_of(x_t), w_t.scale, scale_of(y_t), self.cout)
        self.x_zp, self.y_zp = zp_of(x_t), zp_of(y_t)
        self.lo, self.hi = activation_range(int(getattr(o, "fusedActivationFunction", ACT_NONE)), y_t)
        self.prepare_filter()

    def prepare_filter(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def taps(self, x: np.ndarray):
        """Each filter tap's view of ``x`` (M, H, W, C) padded with the zero point: (fy, fx, view)."""
        padded = np.pad(x, ((0, 0), (self.pad_top, self.pad_bottom), (self.pad_left, self.pad_right), (0, 0)),
                        constant_values=self.x_zp)
        (sh, sw), (dh, dw) = self.stride, self.dilation
        oh, ow = self.t_out().shape[1:3]
        for fy in range(self.kh):
            for fx in range(self.kw):
                y0, x0 = fy * dh, fx * dw
                yield fy, fx, padded[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]

    def accumulate(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, ins):
        v = ins[0]
        a = v.a
        lead = a.shape[:a.ndim - 3]  # (N, B) batched, (B,) otherwise
        x = a.reshape((-1,) + a.shape[-3:])
        per_sample = max(1, int(np.prod(self.t_out().shape[1:])) * max(self.cin, self.cout))
        step = max(1, _CHUNK_ELEMENTS // per_sample)
        outs = []
        for i in range(0, x.shape[0], step):
            acc = self.accumulate(x[i:i + step])
            if self.bias is not None:
                acc = acc + self.bias
            y = fp.multiply_by_quantized_multiplier_fast(fp.wrap_int32(acc), self.mult, self.shift) + self.y_zp
            outs.append(np.clip(y, self.lo, self.hi).astype(np.int8))
        y = np.concatenate(outs) if len(outs) > 1 else outs[0]
        return [Val(y.reshape(lead + tuple(self.t_out().shape[1:])), v.batched)]


@kernel("CONV_2D")
class Conv2D(_Conv):
    """``reference_integer_ops::ConvPerChannel``: filter (O, kh, kw, Cin / groups), NHWC input.

    Grouped convolutions (the filter's input depth divides the input's) run group by group."""

    def prepare_filter(self):
        fcin = int(self.w.shape[3])
        if fcin < 1 or self.cin % fcin:
            self.fail(f"filter input depth {fcin} does not divide the input depth {self.cin}")
        self.groups = self.cin // fcin
        if self.cout % self.groups:
            self.fail(f"{self.cout} output channels are not a multiple of {self.groups} groups")
        if int(self.w.shape[0]) != self.cout:
            self.fail(f"filter has {self.w.shape[0]} output channels, the output {self.cout}")
        self.fcin = fcin
        # per tap, per group: (fcin, O / groups) float matrices
        opg = self.cout // self.groups
        w = self.w.reshape(self.groups, opg, self.kh, self.kw, fcin)
        dtype = np.float32 if fcin * 255 * 128 < (1 << 24) else np.float64
        self.w_taps = w.transpose(2, 3, 0, 4, 1).astype(dtype)  # (kh, kw, groups, fcin, opg)

    def accumulate(self, x):
        m = x.shape[0]
        oh, ow = self.t_out().shape[1:3]
        acc = np.zeros((m, oh, ow, self.cout), np.float64)
        opg = self.cout // self.groups
        dtype = self.w_taps.dtype
        for fy, fx, view in self.taps(x):
            xs = (view.astype(np.int16) - self.x_zp).astype(dtype)
            for g in range(self.groups):
                xg = xs[..., g * self.fcin:(g + 1) * self.fcin]
                acc[..., g * opg:(g + 1) * opg] += xg @ self.w_taps[fy, fx, g]
        return acc.astype(np.int64)


@kernel("DEPTHWISE_CONV_2D")
class DepthwiseConv2D(_Conv):
    """``reference_integer_ops::DepthwiseConvPerChannel``: filter (1, kh, kw, Cin * multiplier),
    per-channel scales on axis 3; output channel ``c * multiplier + m`` reads input channel c."""

    depthwise = True

    def prepare_filter(self):
        if int(self.w.shape[0]) != 1 or int(self.w.shape[3]) != self.cout:
            self.fail(f"filter shape {tuple(self.w.shape)}: (1, kh, kw, {self.cout}) expected")
        if self.cout % self.cin:
            self.fail(f"{self.cout} output channels are not a multiple of the {self.cin} input channels")
        self.multiplier = self.cout // self.cin
        declared = int(getattr(self.opts, "depthMultiplier", 0) or 0)
        if declared and declared != self.multiplier:
            self.fail(f"depth_multiplier {declared} disagrees with the filter ({self.multiplier})")

    def accumulate(self, x):
        m = x.shape[0]
        oh, ow = self.t_out().shape[1:3]
        acc = np.zeros((m, oh, ow, self.cout), np.int64)
        for fy, fx, view in self.taps(x):
            xs = view.astype(np.int64) - self.x_zp
            if self.multiplier > 1:
                xs = np.repeat(xs, self.multiplier, axis=-1)
            acc += xs * self.w[0, fy, fx]
        return acc
