"""The native C of the ops that only move int8 (or int16) data: PAD, TRANSPOSE, STRIDED_SLICE,
CONCATENATION, PACK, UNPACK, SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND, each as a fill and
strided boxes for ``edgernn_copy_box_s8`` (``firmware_templates/native/edgernn_tensor.c``).
Same :class:`~.tensorops.Step` contract as :mod:`.tensorops`.
"""

from __future__ import annotations

import numpy as np

from ...tflite_model import Operator, Subgraph, TFLiteModel, strided_slice_index
from .plan import _fail, _scale, _zp
from .tensorops import MAX_DIMS, Step, _act, _const, box_struct, numel, strides, t

COPY_OPS = ("PAD", "PADV2", "TRANSPOSE", "STRIDED_SLICE", "CONCATENATION", "PACK", "UNPACK", "SPACE_TO_BATCH_ND",
            "BATCH_TO_SPACE_ND")


def plan_copy(m: TFLiteModel, sg: Subgraph, op: Operator, i: int, in_shapes=None, out_shapes=None,
              pads=None) -> Step:
    """PAD, TRANSPOSE, STRIDED_SLICE, CONCATENATION, PACK, UNPACK, SPACE_TO_BATCH_ND and
    BATCH_TO_SPACE_ND as fills and strided boxes (``pads``: PAD's paddings, when not the op's)."""
    ins = [sg.tensors[k] for k in op.inputs]
    in_shapes = [tuple(s) for s in (in_shapes or [x.shape for x in ins])]
    outs = [sg.tensors[k] for k in op.outputs]
    out_shapes = [tuple(s) for s in (out_shapes or [y.shape for y in outs])]
    step = Step(i, op.opcode, f"{op.opcode} (op {i}): {[list(s) for s in in_shapes[:1]]} -> "
                              f"{[list(s) for s in out_shapes]}")
    boxes = []  # (dims, src strides, dst strides, src offset, dst offset, src tensor, dst tensor)
    src, dst = op.inputs[0], op.outputs[0]
    xs, ys = in_shapes[0], out_shapes[0]
    sx, sy = strides(xs), strides(ys)
    fill = None
    if op.opcode in ("PAD", "PADV2"):
        if pads is None:
            pads = _const(m, sg, op, 1, "paddings").reshape(-1, 2).astype(np.int64)
        fill = _zp(outs[0])
        if op.opcode == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            fill = int(_const(m, sg, op, 2, "constant value").reshape(-1)[0])
        boxes.append((xs, sx, sy, 0, int(sum(int(p[0]) * s for p, s in zip(pads, sy))), src, dst))
    elif op.opcode == "TRANSPOSE":
        perm = [int(p) for p in _const(m, sg, op, 1, "permutation").reshape(-1)]
        boxes.append((ys, [sx[p] for p in perm], sy, 0, 0, src, dst))
    elif op.opcode == "STRIDED_SLICE":
        o = op.options
        if int(o.ellipsisMask) or int(o.newAxisMask):
            raise _fail(m, f"STRIDED_SLICE (op {i}): ellipsis and new-axis masks are not supported")
        idx = strided_slice_index(xs, *(_const(m, sg, op, k, "slice bound").reshape(-1) for k in (1, 2, 3)), o)
        dims, sstr, off = [], [], 0
        for ax, ix in enumerate(idx):
            if isinstance(ix, int):
                off += ix * sx[ax]
                continue
            r = range(xs[ax])[ix]
            dims.append(len(r))
            sstr.append(sx[ax] * (ix.step or 1))
            off += (r.start if len(r) else 0) * sx[ax]
        boxes.append((dims, sstr, strides(dims), off, 0, src, dst))
    elif op.opcode in ("CONCATENATION", "PACK"):
        axis = int(op.options.axis)
        rank = len(ys)
        axis = axis + rank if axis < 0 else axis
        y = outs[0]
        pos = 0
        for k, (x, shp) in enumerate(zip(ins, in_shapes)):
            if x.dtype in ("int8", "int16") and (_scale(x) != _scale(y) or _zp(x) != _zp(y)):
                raise _fail(m, f"{op.opcode} (op {i}): input {k} is quantized unlike the output (TFLM refuses it)")
            shp = shp if op.opcode == "CONCATENATION" else shp[:axis] + (1,) + shp[axis:]
            boxes.append((shp, strides(shp), sy, 0, pos * sy[axis], op.inputs[k], dst))
            pos += shp[axis]
        if op.opcode == "CONCATENATION" and _act(op):
            raise _fail(m, f"CONCATENATION (op {i}): fused activations are not supported")
    elif op.opcode == "UNPACK":
        axis = int(op.options.axis) % len(xs)
        for k, out in enumerate(op.outputs):
            shp = xs[:axis] + (1,) + xs[axis + 1:]
            boxes.append((shp, sx, strides(shp), k * sx[axis], 0, src, out))
    elif op.opcode in ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"):
        boxes, fill = _batch_space_boxes(m, sg, op, i, xs, ys)
    else:  # pragma: no cover - the callers only pass COPY_OPS
        raise _fail(m, f"{op.opcode} (op {i}) is not a copy")
    if fill is not None:
        if outs[0].dtype != "int8":
            raise _fail(m, f"{op.opcode} (op {i}) fills an {outs[0].dtype} tensor; int8 expected")
        step.lines.append(f"memset({t(dst)}, {fill}, {numel(ys)}); /* fill: {fill} */")
    wide = outs[0].dtype == "int16"  # an int16 state moved as bytes: each element a box row of 2
    if any(x.dtype != outs[0].dtype for x in ins[:1] + outs) or outs[0].dtype not in ("int8", "int16"):
        raise _fail(m, f"{op.opcode} (op {i}) moves {ins[0].dtype} to {outs[0].dtype}; int8 (or int16) expected")
    for k, (dims, s_src, s_dst, o_src, o_dst, a, b) in enumerate(boxes):
        if numel(dims) == 0:
            continue
        if wide:
            dims, s_src, s_dst = [*dims, 2], [2 * v for v in s_src] + [1], [2 * v for v in s_dst] + [1]
            o_src, o_dst = 2 * o_src, 2 * o_dst
        name = f"op{i}_box{k}" if len(boxes) > 1 else f"op{i}"
        try:
            step.structs.append(box_struct(name, dims, s_src, s_dst, ""))
        except ValueError:
            raise _fail(m, f"{op.opcode} (op {i}): a box over more than {MAX_DIMS} dimensions") from None
        cast = "(int8_t *)(void *)" if wide else ""
        src_expr = cast + t(a) + (f" + {o_src}" if o_src else "")
        dst_expr = cast + t(b) + (f" + {o_dst}" if o_dst else "")
        step.lines.append(f"edgernn_copy_box_s8(&${name}, {src_expr}, {dst_expr});")
    return step


def _batch_space_boxes(m, sg, op, i, xs, ys):
    """SPACE_TO_BATCH_ND (pad, blocks into the batch) and its inverse, as one box per block offset.

    Padding is the output zero point (desktop TFLite's value; TFLM's micro kernel pads with an
    uninitialized ``params.output_offset``, so its outputs there are undefined)."""
    block = [int(b) for b in _const(m, sg, op, 1, "block shape").reshape(-1)]
    pads = _const(m, sg, op, 2, "paddings/crops").reshape(-1, 2).astype(np.int64).tolist()
    if len(xs) not in (3, 4) or len(block) != len(xs) - 2:
        raise _fail(m, f"{op.opcode} (op {i}): 3-D or 4-D tensors with {len(xs) - 2} block dims expected")
    x4 = xs if len(xs) == 4 else xs[:2] + (1,) + xs[2:]
    y4 = ys if len(ys) == 4 else ys[:2] + (1,) + ys[2:]
    bh, bw = (block + [1])[:2]
    (p0, _), (q0, _) = (pads + [[0, 0]])[:2]
    sx, sy = strides(x4), strides(y4)
    boxes = []
    to_batch = op.opcode == "SPACE_TO_BATCH_ND"
    space, batched = (x4, y4) if to_batch else (y4, x4)
    s_space, s_batched = (sx, sy) if to_batch else (sy, sx)
    nb = space[0]
    for dy in range(bh):
        for dx in range(bw):
            k = dy * bw + dx
            # batched[(k * nb + b), yy, xx] <-> space[b, yy * bh + dy - p0, xx * bw + dx - q0]
            ys_ = [yy for yy in range(batched[1]) if 0 <= yy * bh + dy - p0 < space[1]]
            xs_ = [xx for xx in range(batched[2]) if 0 <= xx * bw + dx - q0 < space[2]]
            if not ys_ or not xs_:
                continue
            dims = (nb, len(ys_), len(xs_), space[3])
            s_sp = (s_space[0], bh * s_space[1], bw * s_space[2], 1)
            s_bt = (s_batched[0], s_batched[1], s_batched[2], 1)
            o_sp = (ys_[0] * bh + dy - p0) * s_space[1] + (xs_[0] * bw + dx - q0) * s_space[2]
            o_bt = k * nb * s_batched[0] + ys_[0] * s_batched[1] + xs_[0] * s_batched[2]
            if to_batch:
                boxes.append((dims, s_sp, s_bt, o_sp, o_bt, op.inputs[0], op.outputs[0]))
            else:
                boxes.append((dims, s_bt, s_sp, o_bt, o_sp, op.inputs[0], op.outputs[0]))
    return boxes, (_zp(sg.tensors[op.outputs[0]]) if to_batch else None)
