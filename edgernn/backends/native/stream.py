"""The one-step program of a graph model, or the reason it has none.

A tensor with a time axis is handled one row (one time step) at a time: every dimension
before its time axis is 1, so a row is contiguous, and each op runs on its inputs' rows with
the time dimension set to 1 (the same kernels and constants as the whole tensor). The rules:

* pointwise in time: RESHAPE that keeps the time axis, FULLY_CONNECTED and SOFTMAX along the
  features, the int8 tables (LOGISTIC, TANH, RELU, QUANTIZE...), ADD/SUB/MUL with constants
  broadcast over time, CONCATENATION and TRANSPOSE that leave time alone, pools and
  convolutions whose time kernel and stride are 1;
* causal convolution: a PAD of exactly ``(k - 1) * dilation`` steps before the time axis
  (the converter's ``padding="causal"``), then a VALID CONV_2D / DEPTHWISE_CONV_2D with stride 1
  over time. The window of the last ``(k - 1) * d + 1`` rows is kept in a ring, initialized to
  the PAD's fill (TFLM's PAD writes the zero point, exactly what the first steps read);
* recurrent layers (fused LSTM, forward WHILE loops) advance their state by one step;
* the last time step (STRIDED_SLICE ``[:, -1]``, a WHILE's final state) is the current row.

Everything else needs the whole window and makes :class:`StreamRefusal` say which op and why.
"""

from __future__ import annotations

import numpy as np

from ...tflite_model import strided_slice_index
from . import tensorops as T
from .copyops import plan_copy
from .graph import ALIAS_OPS, Builder, StreamRefusal, _data_inputs, _recurrent_step_call, Ring

LAST = -1  # "time axis" of a tensor that is the current step's value only


def _time_axis_of(shape, length: int, row: int) -> int | None:
    """The axis of ``shape`` that can hold ``length`` time steps of ``row`` values each, with
    only size-1 dimensions before it."""
    for ax, d in enumerate(shape):
        if T.numel(shape[:ax]) != 1:
            return None
        if d == length and T.numel(shape[ax + 1:]) == row:
            return ax
    return None


def _row(shape, axis: int, size: int = 1) -> tuple:
    """``shape`` with its time dimension set to ``size`` (one step: 1; a ring window: p + 1)."""
    if axis == LAST:
        return tuple(shape)
    s = list(shape)
    s[axis] = size
    return tuple(s)


def step_program(b: Builder):
    m, sg = b.m, b.sg
    x = b.x
    if len(x.shape) < 3:
        raise StreamRefusal(f"input '{x.name}' {list(x.shape)} has no time axis")
    ti: dict[int, tuple[int, int]] = {x.index: (1, int(x.shape[1]))}  # tensor -> (time axis, steps)
    pending: dict[int, tuple[int, int]] = {}  # tensor -> (causal steps padded before time, fill)
    locs: dict = {x.index: ("input",)}
    rings: list[Ring] = []
    steps: list = []
    n_fc = 0

    def shape(k):
        return tuple(sg.tensors[k].shape)

    def new(k, axis, length):
        ti[k] = (axis, length)
        locs[k] = ("arena", T.numel(_row(shape(k), axis)) * (2 if sg.tensors[k].dtype == "int16" else 1))

    for i in b.live:
        op = sg.operators[i]
        oc = op.opcode
        where = f"op {i} ({oc})"
        ins = _data_inputs(sg, op, b.x_pos(i))
        for k in ins:
            if k in pending and oc not in ALIAS_OPS + ("CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "PADV2"):
                raise StreamRefusal(f"{where} reads a tensor padded over time, which only a causal convolution "
                                    "can consume step by step")
        axes = {ti[k][0] for k in ins}
        if len(axes) > 1 and LAST in axes:
            raise StreamRefusal(f"{where} combines the last time step with the whole sequence")
        a, length = ti[ins[0]] if ins else (LAST, 1)
        out = op.outputs[0] if op.outputs else None

        if oc in ALIAS_OPS:
            if a == LAST:
                ti[out] = (LAST, 1)
            else:
                b_ax = _time_axis_of(shape(out), length, T.numel(shape(ins[0])[a + 1:]))
                if b_ax is None:
                    raise StreamRefusal(f"{where} merges the time axis into the features (Flatten): it needs the "
                                        "whole window")
                ti[out] = (b_ax, length)
                if ins[0] in pending:
                    pending[out] = pending[ins[0]]
            locs[out] = ("alias", ins[0])
            continue

        if oc in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "WHILE"):
            plan = b.rec_of[i]
            xi = ins[0]
            if a != 1 or len(shape(xi)) != 3:
                raise StreamRefusal(f"{where} reads {list(shape(xi))} with time on axis {a}")
            if getattr(plan, "direction", "forward") == "backward":
                raise StreamRefusal(f"{where} runs backward in time (Bidirectional): it needs the whole sequence")
            steps.append(T.Step(i, oc, f"{oc} (op {i}): layer {plan.index}, one step",
                                [_recurrent_step_call(plan, T.t(xi))]))
            if oc == "WHILE":
                mp = b.loops[i][1]
                for pos, name in mp["states"].items():
                    locs[op.outputs[pos]] = ("static", name)
                    ti[op.outputs[pos]] = (LAST, 1)
                if mp["seq"] is not None:
                    seq = op.outputs[mp["seq"]]
                    locs[seq] = ("static", plan.output_state)
                    ti[seq] = (1, length)
            else:
                locs[out] = ("static", f"$hidden{plan.index}")
                ti[out] = (1, length)
            continue

        if oc in ("PAD", "PADV2"):
            pads = T._const(m, sg, op, 1, "paddings").reshape(-1, 2).astype(np.int64)
            if a == LAST:
                raise StreamRefusal(f"{where} pads the last step")
            before, after = int(pads[a][0]), int(pads[a][1])
            if after:
                raise StreamRefusal(f"{where} pads {after} steps after the time axis: it needs future steps")
            if np.any(pads[:a]):
                raise StreamRefusal(f"{where} pads a dimension before the time axis")
            y = sg.tensors[out]
            fill = T._zp(y)
            if oc == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
                fill = int(T._const(m, sg, op, 2, "constant value").reshape(-1)[0])
            prev = pending.get(ins[0])
            if prev is not None and prev[1] != fill:
                raise StreamRefusal(f"{where} pads time again with another value")
            if before or prev:
                pending[out] = ((prev[0] if prev else 0) + before, fill)
            if np.any(pads[a + 1:]):
                row_pads = pads.copy()
                row_pads[a] = 0
                steps.append(plan_copy(m, sg, op, i, [_row(shape(ins[0]), a)], [_row(shape(out), a)],
                                         pads=row_pads))
                new(out, a, length + before)
            else:
                ti[out] = (a, length + before)
                locs[out] = ("alias", ins[0])
            continue

        if oc in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"):
            conv = oc.endswith("CONV_2D")
            xs = shape(ins[0])
            if a not in (1, 2):
                raise StreamRefusal(f"{where}: time is on axis {a} of {list(xs)}, not H or W")
            o = op.options
            if conv:
                w = sg.tensors[op.inputs[1]]
                k_t = int(w.shape[a])
                d_t = int((o.dilationHFactor if a == 1 else o.dilationWFactor) or 1)
            else:
                k_t, d_t = int(o.filterHeight if a == 1 else o.filterWidth), 1
            s_t = int(o.strideH if a == 1 else o.strideW)
            p, fill = pending.get(ins[0], (0, 0))
            span = (k_t - 1) * d_t
            if s_t != 1:
                raise StreamRefusal(f"{where} has stride {s_t} over time: it emits one output every {s_t} steps")
            if not conv and span:
                raise StreamRefusal(f"{where} pools {k_t} steps over time: it needs the whole window")
            if span and int(o.padding) == 0:
                raise StreamRefusal(f"{where} has 'same' padding over time: its output at t needs {span - span // 2} "
                                    "future steps (use padding='causal')")
            if p != span:
                raise StreamRefusal(f"{where} is a 'valid' convolution over time ({k_t} taps, dilation {d_t}): the "
                                    "sequence loses steps; only causal convolutions stream (padding='causal')")
            ys = shape(out)
            if conv:
                _, _, pt, pl = T.conv_geometry(op, xs, sg.tensors[op.inputs[1]].shape)
                pads = (0, pl) if a == 1 else (pt, 0)
                st = T.plan_conv(m, sg, op, i, _row(xs, a, p + 1), _row(ys, a), pads, kernel=b.kernel)
            else:
                st = T.plan_pool(m, sg, op, i, _row(xs, a), _row(ys, a))
            if p:
                row = T.numel(_row(xs, a))
                name = f"$ring{i}"
                rings.append(Ring(f"ring{i}", (p + 1) * row, fill,
                                  f"op {i} ({oc}): the last {p} input rows of {row} values and the current one"))
                st.lines = [f"memcpy({name} + {p * row}, {T.t(ins[0])}, {row});",
                            st.lines[0].replace(T.t(ins[0]), name),
                            f"memmove({name}, {name} + {row}, {p * row});"]
            steps.append(st)
            new(out, a, int(ys[a]))
            continue

        if oc in T.REDUCE_OPS:
            rank = len(shape(ins[0]))
            axes = sorted({int(v) % rank for v in T._const(m, sg, op, 1, "axis").reshape(-1)})
            if a in axes:
                raise StreamRefusal(f"{where} reduces over the time axis (global pooling): it needs the whole window")
            steps.append(T.plan_reduce(m, sg, op, i, _row(shape(ins[0]), a), axes))
            keep = bool(getattr(op.options, "keepDims", False))
            new(out, a if keep or a == LAST else a - sum(1 for v in axes if v < a), length)
            continue

        if oc in ("FULLY_CONNECTED", "SOFTMAX"):
            xs = shape(ins[0])
            if a == len(xs) - 1:
                raise StreamRefusal(f"{where} reads the time axis as features (after a Flatten): it needs the "
                                    "whole window")
            depth = int(xs[-1])
            rows = T.numel(_row(xs, a)) // depth
            if oc == "SOFTMAX":
                steps.append(T.plan_softmax(m, sg, op, i, rows, n_fc))
            else:
                steps.append(T.plan_fc(m, sg, op, i, rows, n_fc, b.kernel))
                n_fc += 1
            n_out = int(shape(out)[-1])
            b_ax = a if a == LAST else _time_axis_of(shape(out), length, rows * n_out)
            if b_ax is None:
                raise StreamRefusal(f"{where} mixes time steps into rows")
            new(out, b_ax, length)
            continue

        if oc in T.LUT_OPS:
            steps.append(T.plan_lut(m, sg, op, i, T.numel(_row(shape(ins[0]), a))))
            new(out, a, length)
            continue

        if oc in T.BINARY_OPS:
            ys = shape(out)
            rows = []
            for k in op.inputs[:2]:
                s = (1,) * (len(ys) - len(shape(k))) + shape(k)
                if k in ti and ti[k][0] != LAST and ti[k][0] + len(ys) - len(shape(k)) != a:
                    raise StreamRefusal(f"{where}: its inputs have their time axes apart")
                if k not in ti and a != LAST and s[a] != 1:
                    raise StreamRefusal(f"{where} adds a constant that varies along time")
                rows.append(_row(s, a) if a != LAST else s)
            steps.append(T.plan_binary(m, sg, op, i, rows[0], rows[1], _row(ys, a)))
            new(out, a, length)
            continue

        if oc in ("CONCATENATION", "TRANSPOSE", "STRIDED_SLICE"):
            xs = shape(ins[0])
            if oc == "STRIDED_SLICE" and a != LAST:
                idx = strided_slice_index(xs, *(T._const(m, sg, op, k, "bound").reshape(-1) for k in (1, 2, 3)),
                                            op.options)
                sel = idx[a]
                picked = [sel % length] if isinstance(sel, int) else list(range(length)[sel])
                rest_full = all(isinstance(ix, slice) and len(range(d)[ix]) == d and (ix.step or 1) == 1
                                for ax, (ix, d) in enumerate(zip(idx, xs)) if ax != a)
                if picked == [length - 1] and rest_full:
                    ti[out] = (LAST, 1)
                    locs[out] = ("alias", ins[0])
                    continue
                if picked != list(range(length)):
                    raise StreamRefusal(f"{where} selects time steps {picked[:4]}...: it needs the whole window")
                b_ax = a - sum(1 for ax in range(a) if isinstance(idx[ax], int))
                steps.append(plan_copy(m, sg, op, i, [_row(xs, a)], [_row(shape(out), b_ax)]))
                new(out, b_ax, length)
                continue
            if oc == "TRANSPOSE":
                perm = [int(v) for v in T._const(m, sg, op, 1, "permutation").reshape(-1)]
                b_ax = a if a == LAST else perm.index(a)
                if a != LAST and T.numel(shape(out)[:b_ax]) != 1:
                    raise StreamRefusal(f"{where} moves the time axis inside the features")
                steps.append(plan_copy(m, sg, op, i, [_row(xs, a)], [_row(shape(out), b_ax)]))
                new(out, b_ax, length)
                continue
            axis = int(op.options.axis) % len(shape(out))
            if axis == a or any(k not in ti for k in op.inputs):
                raise StreamRefusal(f"{where} concatenates along time or with constants")
            steps.append(plan_copy(m, sg, op, i, [_row(shape(k), a) for k in op.inputs], [_row(shape(out), a)]))
            new(out, a, length)
            continue

        raise StreamRefusal(f"{where} has no one-step form")

    y = b.y.index
    if y in pending:
        raise StreamRefusal("the output is padded over time")
    a, length = ti[y]
    row = T.numel(_row(shape(y), a))
    k = y
    while locs[k][0] == "alias":
        k = locs[k][1]
    if locs[k][0] == "input":  # NAME_run reads the output after x_t is gone: keep a copy
        y, copy = len(sg.tensors), y
        locs[y] = ("arena", row)
        steps.append(T.Step(-1, "COPY", "the output is the input row", [f"memcpy({T.t(y)}, {T.t(copy)}, {row});"]))
    return steps, locs, {"rings": rings, "row": row, "per_step": a != LAST, "output": y}
