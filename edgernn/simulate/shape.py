"""Data-movement kernels: PAD, PADV2, TRANSPOSE, PACK, UNPACK, SPACE_TO_BATCH_ND,
BATCH_TO_SPACE_ND and SHAPE (what the TFLite converter emits around convolutions and for
dynamic-batch exports). No arithmetic: each is a copy, exact by construction; the fill values
and the index maps follow TFLM's reference kernels (``micro/kernels/pad.cc``,
``transpose.cc``, ``pack.cc``, ``unpack.cc``, ``space_to_batch_nd.cc``, ``batch_to_space_nd.cc``).
"""

from __future__ import annotations

import logging

import numpy as np

from .ops import _NP, Kernel, Val, _const_data, kernel, zp_of

log = logging.getLogger(__name__)


def _lead(v: Val) -> tuple:
    return (slice(None),) if v.batched else ()


@kernel("PAD", "PADV2")
class Pad(Kernel):
    """``reference_ops::Pad``: constant paddings (rank x 2); the fill is the output zero point
    (PAD) or the given constant (PADV2, which must share the output's quantization)."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        pads = _const_data(self, 1).astype(np.int64).reshape(-1, 2)
        if len(pads) != len(self.t_in(0).shape) or np.any(pads < 0):
            self.fail(f"paddings {pads.tolist()} do not fit the rank-{len(self.t_in(0).shape)} input")
        self.pads = [tuple(int(p) for p in row) for row in pads]
        y_t = self.t_out()
        self.fill = zp_of(y_t) if y_t.dtype == "int8" else 0
        if op.opcode == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            self.fill = np.asarray(_const_data(self, 2)).reshape(-1)[0]
        want = tuple(d + a + b for d, (a, b) in zip(self.t_in(0).shape, self.pads))
        if want != tuple(y_t.shape):
            self.fail(f"output shape {y_t.shape} is not the input padded ({want})")

    def __call__(self, ins):
        v = ins[0]
        pads = ([(0, 0)] if v.batched else []) + self.pads
        return [Val(np.pad(v.a, pads, constant_values=self.fill), v.batched)]


@kernel("TRANSPOSE")
class Transpose(Kernel):
    """``reference_ops::Transpose`` with a constant permutation."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        self.perm = [int(p) for p in _const_data(self, 1).reshape(-1)]
        if sorted(self.perm) != list(range(len(self.t_in(0).shape))):
            self.fail(f"permutation {self.perm} does not fit the rank-{len(self.t_in(0).shape)} input")

    def __call__(self, ins):
        v = ins[0]
        perm = ([0] + [p + 1 for p in self.perm]) if v.batched else self.perm
        return [Val(np.ascontiguousarray(np.transpose(v.a, perm)), v.batched)]


@kernel("PACK")
class Pack(Kernel):
    """``reference_ops::Pack``: the inputs stacked along a new ``axis`` (a copy: TFLM does not
    requantize, so quantized inputs share the output's parameters)."""

    def __call__(self, ins):
        rank = len(self.t_out().shape)
        axis = int(self.opts.axis)
        axis = axis + rank if axis < 0 else axis
        batched = any(v.batched for v in ins)
        if batched:
            n = next(v.a.shape[0] for v in ins if v.batched)
            arrs = [v.a if v.batched else np.broadcast_to(v.a, (n,) + v.a.shape) for v in ins]
            return [Val(np.stack(arrs, axis=axis + 1), True)]
        return [Val(np.stack([v.a for v in ins], axis=axis), False)]


@kernel("UNPACK")
class Unpack(Kernel):
    """``reference_ops::Unpack``: one output per index along ``axis``."""

    def __call__(self, ins):
        v = ins[0]
        rank = len(self.t_in(0).shape)
        axis = int(self.opts.axis)
        axis = axis + rank if axis < 0 else axis
        ax = axis + (1 if v.batched else 0)
        return [Val(np.ascontiguousarray(np.take(v.a, i, axis=ax)), v.batched) for i in range(v.a.shape[ax])]


def _block_args(k: Kernel) -> tuple[list[int], np.ndarray]:
    block = [int(b) for b in _const_data(k, 1).reshape(-1)]
    pads = _const_data(k, 2).astype(np.int64).reshape(-1, 2)
    rank = len(k.t_in(0).shape)
    if rank not in (3, 4) or len(block) != rank - 2 or len(pads) != rank - 2 or min(block) < 1:
        k.fail(f"block shape {block} / paddings {pads.tolist()} do not fit the rank-{rank} input "
               "(TFLM takes 3-D and 4-D inputs)")
    return block, pads


def _as4d(a: np.ndarray, rank: int) -> np.ndarray:
    """(..., B, H, C) -> (..., B, H, 1, C) for 3-D tensors (TFLM extends them with W = 1)."""
    return a[..., None, :] if rank == 3 else a


def _from4d(k: Kernel, a: np.ndarray, rank: int, batched: bool) -> Val:
    """The inverse of ``_as4d``, shaped as the op's output (with the leading batch when ``batched``)."""
    if rank == 3:
        a = a[..., 0, :]
    return Val(np.ascontiguousarray(a).reshape(((a.shape[0],) if batched else ()) + tuple(k.t_out().shape)), batched)


@kernel("SPACE_TO_BATCH_ND")
class SpaceToBatchNd(Kernel):
    """``reference_ops::SpaceToBatchND``: pad H and W, cut them into blocks, and move the block
    offsets into the batch axis: out batch = (dy * bw + dx) * B + b.

    The padding value is ``params.output_offset``, which TFLM's micro kernel never sets (it lives
    in an uninitialized persistent buffer): where an int8 SPACE_TO_BATCH_ND really pads, TFLM's
    outputs are undefined (observed: raw 0, or other values from run to run). The simulator pads
    with the output zero point, the value desktop TFLite uses and the float graph means, and warns."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        self.block, self.pads = _block_args(self)
        y_t = self.t_out()
        self.fill = zp_of(y_t) if y_t.dtype == "int8" else 0
        if np.any(self.pads) and y_t.dtype == "int8":
            log.warning("%s pads an int8 tensor: TFLM pads with uninitialized memory there (its outputs are "
                        "undefined); the simulator pads with the zero point %d", self.where(), self.fill)

    def __call__(self, ins):
        v = ins[0]
        rank = len(self.t_in(0).shape)
        a = _as4d(v.a, rank)
        lead = a.shape[:-4]
        bh, bw = (self.block + [1])[:2]
        pads = [tuple(p) for p in self.pads.tolist()] + ([(0, 0)] if rank == 3 else [])
        a = np.pad(a, [(0, 0)] * (len(lead) + 1) + pads + [(0, 0)], constant_values=self.fill)
        b, h, w, c = a.shape[-4:]
        a = a.reshape(lead + (b, h // bh, bh, w // bw, bw, c))
        k = len(lead)
        a = a.transpose(tuple(range(k)) + (k + 2, k + 4, k, k + 1, k + 3, k + 5))
        a = a.reshape(lead + (bh * bw * b, h // bh, w // bw, c))
        return [_from4d(self, a, rank, v.batched)]


@kernel("BATCH_TO_SPACE_ND")
class BatchToSpaceNd(Kernel):
    """``reference_ops::BatchToSpaceND``: the inverse of SPACE_TO_BATCH_ND, then the crops."""

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        self.block, self.crops = _block_args(self)

    def __call__(self, ins):
        v = ins[0]
        rank = len(self.t_in(0).shape)
        a = _as4d(v.a, rank)
        lead = a.shape[:-4]
        bh, bw = (self.block + [1])[:2]
        b, h, w, c = a.shape[-4:]
        k = len(lead)
        a = a.reshape(lead + (bh, bw, b // (bh * bw), h, w, c))
        a = a.transpose(tuple(range(k)) + (k + 2, k + 3, k, k + 4, k + 1, k + 5))
        a = a.reshape(lead + (b // (bh * bw), h * bh, w * bw, c))
        crops = [tuple(p) for p in self.crops.tolist()] + ([(0, 0)] if rank == 3 else [])
        (t0, t1), (l0, l1) = crops
        a = a[..., t0:a.shape[-3] - t1, l0:a.shape[-2] - l1, :]
        return [_from4d(self, a, rank, v.batched)]


@kernel("SHAPE")
class Shape(Kernel):
    """The static shape of the input (TFLM's shapes are fixed once allocated), as int32/int64."""

    def __call__(self, ins):
        dtype = _NP.get(self.t_out().dtype, np.int32)
        return [Val(np.asarray(self.t_in(0).shape, dtype), False)]
