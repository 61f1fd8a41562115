"""A WHILE loop run as one compiled kernel (the "numba" engine) instead of op by op.

edgernn writes every stack of recurrent layers (GRU, SimpleRNN, and the LSTM layers of
Bidirectional or mixed models) as a WHILE op whose body is one time step of every layer of
the stack: int32 counters (``i + 1``, ``pos + step``), a SLICE of the input sequence at
``pos``, then int8 or int16 FULLY_CONNECTED / ADD / SUB / MUL / LOGISTIC / TANH on per-sample
vectors with SPLIT / SPLIT_V / CAST / QUANTIZE between them, and maybe a
DYNAMIC_UPDATE_SLICE writing the last layer's int8 output into the output sequence.
:class:`CompiledLoop` recognises such a body, computes the counters (the same for every
sample) ahead, and hands the rest to :func:`._loop_kernel.run_loop` as a straight-line program
whose instructions reuse the prepared kernels' arithmetic: the FULLY_CONNECTED requantization
constants, the 65,536-entry tables of the int8 binary ops, the activation tables. Any other
body is run op by op (:class:`.control.While`).
"""

from __future__ import annotations

import numpy as np

from ._loop_kernel import ARITH16, COPY, FC, FC16, TABLE1, TABLE16, TABLE2
from .elementwise import AddSub, Compare, Mul, Quantize, Relu, _GemmlowpActivation
from .ops import Cast, DynamicUpdateSlice, FullyConnected, Slice, Split, Val

#: The most iterations a WHILE op may run, compiled here or op by op (:class:`.control.While`).
MAX_WHILE_ITERATIONS = 1_000_000

_NP_OF = {"int8": np.int8, "int16": np.int16}


class Unsupported(Exception):
    """The body is not a straight-line int8 step (run it op by op)."""


def _vector_width(shape) -> int:
    """Elements of a per-sample vector tensor (1, 1, W) / (1, W); else Unsupported."""
    if len(shape) < 1 or any(d != 1 for d in shape[:-1]):
        raise Unsupported(f"shape {shape}")
    return int(shape[-1])


class CompiledLoop:
    """A prepared WHILE loop; ``loop(ins)`` returns the WHILE outputs like the interpreter."""

    @classmethod
    def build(cls, while_kernel) -> CompiledLoop | None:
        try:
            return cls(while_kernel)
        except Unsupported:
            return None

    def __init__(self, wk):
        sim = wk.sim
        cond, body = sim.graphs[wk.cond], sim.graphs[wk.body]
        self.wk = wk
        bsg = body.sg
        n_vars = len(bsg.inputs)
        # cond: i < T on loop variable 0, T constant
        if len(cond.kernels) != 1 or not isinstance(cond.kernels[0], Compare) or cond.kernels[0].op.opcode != "LESS":
            raise Unsupported("cond")
        ck = cond.kernels[0]
        if ck.op.inputs[0] != cond.sg.inputs[0] or ck.t_in(1).data is None or cond.sg.outputs != [ck.op.outputs[0]]:
            raise Unsupported("cond operands")
        self.limit = int(np.asarray(ck.t_in(1).data).reshape(-1)[0])
        var_of = {t: k for k, t in enumerate(bsg.inputs)}  # body input tensor -> loop variable
        tensors = bsg.tensors
        self.counter_steps: dict[int, np.ndarray] = {}  # loop var -> constant int32 increment
        slots: dict[int, int] = {}  # body tensor -> slot
        widths: list[int] = []
        const_slots: list[tuple[int, np.ndarray]] = []

        def slot(t: int, create: bool = False) -> int:
            if t not in slots:
                if not create:
                    tt = tensors[t]
                    if tt.data is None or tt.dtype != "int8":
                        raise Unsupported(f"tensor {tt.name}")
                    w = _vector_width(tt.shape)
                    slots[t] = len(widths)
                    widths.append(w)
                    const_slots.append((slots[t], np.asarray(tt.data, np.int64).reshape(-1)))
                    return slots[t]
                slots[t] = len(widths)
                widths.append(_vector_width(tensors[t].shape))
            return slots[t]

        self.x_var = self.pos_var = self.seq_var = None
        self.xt_slot, self.seq_src = -1, None
        instr, fcs, tab2, tab1, fc16, ar16, tab16 = [], [], [], [], [], [], []
        next_of: dict[int, int] = {}  # body output tensor -> loop var it feeds (filled below)
        state_vars = [k for k, t in enumerate(bsg.inputs) if tensors[t].dtype in ("int8", "int16")
                      and len(tensors[t].shape) >= 1 and all(d == 1 for d in tensors[t].shape[:-1])]
        for k in state_vars:
            slot(bsg.inputs[k], create=True)
        for k in body.kernels:
            op = k.op
            outs = op.outputs
            if isinstance(k, AddSub) and k.dtype == "int32":
                a, c = op.inputs[0], op.inputs[1]
                if a not in var_of or tensors[c].data is None:
                    raise Unsupported("int32 op")
                self.counter_steps[var_of[a]] = k.sign * np.asarray(tensors[c].data, np.int64)
                next_of[outs[0]] = var_of[a]
            elif isinstance(k, Slice):
                src, begin = op.inputs[0], op.inputs[1]
                if src not in var_of or begin not in var_of or tensors[op.inputs[2]].data is None:
                    raise Unsupported("slice")
                size = np.asarray(tensors[op.inputs[2]].data).reshape(-1)
                shape = tensors[src].shape
                if len(shape) != 3 or shape[0] != 1 or list(size) != [1, 1, shape[2]] or self.xt_slot >= 0:
                    raise Unsupported("slice shape")
                self.x_var, self.pos_var = var_of[src], var_of[begin]
                self.xt_slot = slot(outs[0], create=True)
            elif isinstance(k, DynamicUpdateSlice):
                operand, update, start = op.inputs
                if operand not in var_of or start not in var_of or self.seq_var is not None:
                    raise Unsupported("dynamic update slice")
                if self.pos_var is not None and var_of[start] != self.pos_var:
                    raise Unsupported("two positions")
                self.seq_var, self.seq_src = var_of[operand], update
                next_of[outs[0]] = self.seq_var
            elif isinstance(k, FullyConnected) and k.int16:
                if k.x_zp or k.w_zp:
                    raise Unsupported("16x8 zero points")
                o_rows = k.w.shape[0]
                mult = np.broadcast_to(k.mult, (o_rows,)).astype(np.int64)
                shift = np.broadcast_to(k.shift, (o_rows,)).astype(np.int64)
                if k.acc64:  # the 16-bit reduced multiplier and the total shift
                    mult = np.where(mult < 0x7FFF0000, (mult + (1 << 15)) >> 16, 0x7FFF)
                    shift = 15 - shift
                bias = k.bias if k.bias is not None else np.zeros(o_rows, np.int64)
                instr.append((FC16, slot(op.inputs[0]), 0, slot(outs[0], True), len(fc16), o_rows))
                fc16.append((k.w.reshape(-1), np.stack([bias, np.full(o_rows, int(k.acc64)), mult, shift]),
                             (k.y_zp, k.lo, k.hi, k.w.shape[1])))
            elif isinstance(k, FullyConnected):
                if k._compiled is None:
                    raise Unsupported("fully connected bounds")
                x_zp, wt, bias, rq, y_zp, lo, hi = k._compiled
                instr.append((FC, slot(op.inputs[0]), 0, slot(outs[0], True), len(fcs), wt.shape[1]))
                fcs.append((wt, bias, rq, (x_zp, y_zp, lo, hi, wt.shape[0])))
            elif isinstance(k, (AddSub, Mul)) and k.dtype in ("int8", "int16"):
                a, b, o = slot(op.inputs[0]), slot(op.inputs[1]), slot(outs[0], True)
                if not widths[a] == widths[b] == widths[o]:  # no broadcasting here
                    raise Unsupported("broadcast")
                if k.table is not None:
                    instr.append((TABLE2, a, b, o, len(tab2), widths[o]))
                    tab2.append(k.table)
                elif k.dtype == "int16":
                    instr.append((ARITH16, a, b, o, len(ar16), widths[o]))
                    if isinstance(k, Mul):
                        ar16.append((2, k.off1, k.off2, k.off_out, *k.m, 0, 0, 0, 0, k.lo, k.hi, 0))
                    else:
                        ar16.append((int(k.sign < 0), k.off1, k.off2, k.off_out, *k.m1, *k.m2, *k.mo, k.lo, k.hi,
                                     k.left_shift))
                else:
                    raise Unsupported("int8 op without a table")
            elif isinstance(k, _GemmlowpActivation) and k.table16 is not None:
                a, o = slot(op.inputs[0]), slot(outs[0], True)
                instr.append((TABLE16, a, 0, o, len(tab16), widths[o]))
                tab16.append(k.table16)
            elif isinstance(k, Quantize) and k.src == "int16":
                a, o = slot(op.inputs[0]), slot(outs[0], True)
                instr.append((TABLE16, a, 0, o, len(tab16), widths[o]))
                tab16.append(k([Val(np.arange(-32768, 32768, dtype=np.int16), False)])[0].a)
            elif isinstance(k, (_GemmlowpActivation, Relu)):
                a, o = slot(op.inputs[0]), slot(outs[0], True)
                if widths[a] != widths[o]:
                    raise Unsupported("shape")
                instr.append((TABLE1, a, 0, o, len(tab1), widths[o]))
                tab1.append(k.table)
            elif isinstance(k, Cast):
                a, o = slot(op.inputs[0]), slot(outs[0], True)
                instr.append((COPY, a, 0, o, 0, widths[o]))
            elif isinstance(k, Split):
                a, start = slot(op.inputs[k.data_i]), 0
                if k.axis != len(tensors[op.inputs[k.data_i]].shape) - 1:
                    raise Unsupported("split axis")
                for t_out in outs:
                    o = slot(t_out, True)
                    instr.append((COPY, a, start, o, 0, widths[o]))
                    start += widths[o]
            else:
                raise Unsupported(op.opcode)
        if self.seq_src is not None:
            self.seq_slot = slot(self.seq_src)
        # every loop variable: a counter, the (unchanged) input sequence, the output sequence or a state
        self.state_in, self.state_out = [], []
        for k, t_out in enumerate(bsg.outputs):
            t_in = bsg.inputs[k]
            if k in self.counter_steps or k == self.seq_var:
                if next_of.get(t_out) != k:
                    raise Unsupported("counter wiring")
            elif k == self.x_var:
                if t_out != t_in:
                    raise Unsupported("input sequence rewritten")
            elif k in state_vars:
                if t_out not in slots:
                    raise Unsupported("state output")
                self.state_in.append(slots[t_in])
                self.state_out.append(slots[t_out])
            else:
                raise Unsupported(f"loop variable {k}")
        if any(o in self.state_in for o in self.state_out):  # the kernel copies out -> in, one by one
            raise Unsupported("state slots overlap")
        if self.pos_var is None or set(self.counter_steps) != {0, self.pos_var}:
            raise Unsupported("counters")
        self.steps = tensors[bsg.inputs[self.x_var]].shape[1]
        self.n_vars = n_vars
        self.state_vars = [k for k in range(n_vars) if k in state_vars]
        self.width = max(widths)
        self.n_slots = len(widths)
        self.instr = np.array(instr, np.int64).reshape(-1, 6)
        self.const_slots = np.array([s for s, _ in const_slots], np.int64)
        self.const_vals = np.zeros((len(const_slots), self.width), np.int32)
        for i, (_, vals) in enumerate(const_slots):
            self.const_vals[i, :len(vals)] = vals
        w_off, b_off, offs = [], [], [0, 0]
        for wt, bias, _, _ in fcs:
            w_off.append(offs[0])
            b_off.append(offs[1])
            offs[0] += wt.size
            offs[1] += bias.size
        self.fc_w = (np.concatenate([wt.reshape(-1) for wt, *_ in fcs]).astype(np.float32) if fcs
                     else np.zeros(1, np.float32))
        self.fc_woff, self.fc_boff = np.array(w_off + [0], np.int64), np.array(b_off + [0], np.int64)
        self.fc_bias = np.concatenate([b for _, b, _, _ in fcs]) if fcs else np.zeros(1)
        self.fc_rq = np.concatenate([rq for _, _, rq, _ in fcs], axis=1) if fcs else np.zeros((4, 1))
        self.fc_scal = np.array([s for *_, s in fcs], np.float64).reshape(-1, 5)
        self.tab2 = np.stack(tab2) if tab2 else np.zeros((1, 65536), np.int8)
        self.tab1 = np.stack(tab1) if tab1 else np.zeros((1, 256), np.int8)
        self.w16 = np.concatenate([w for w, _, _ in fc16]).astype(np.int8) if fc16 else np.zeros(1, np.int8)
        self.w16off = np.cumsum([0] + [w.size for w, _, _ in fc16])[:-1].astype(np.int64) if fc16 else np.zeros(1, np.int64)
        self.rq16 = np.concatenate([r for _, r, _ in fc16], axis=1).astype(np.int64) if fc16 else np.zeros((4, 1), np.int64)
        self.b16off = (np.cumsum([0] + [r.shape[1] for _, r, _ in fc16])[:-1].astype(np.int64) if fc16
                       else np.zeros(1, np.int64))
        self.scal16 = np.array([c for _, _, c in fc16], np.int64).reshape(-1, 4)
        self.ar16 = np.array(ar16, np.int64).reshape(-1, 13)
        self.tab16 = np.stack(tab16).astype(np.int32) if tab16 else np.zeros((1, 65536), np.int32)

    def __call__(self, ins: list[Val]) -> list[Val]:
        from . import _fast, _loop_kernel

        vals = list(ins)
        if any(vals[k].batched for k in self.counter_steps):
            raise Unsupported("batched counters")
        # the counters are the same for every sample: run them here
        counters = {k: np.asarray(vals[k].a, np.int64).reshape(-1).copy() for k in self.counter_steps}
        t_x = []
        for _ in range(MAX_WHILE_ITERATIONS):
            if not counters[0][0] < self.limit:
                break
            pos = counters[self.pos_var]
            if pos[0] != 0 or pos[2] != 0 or not 0 <= pos[1] < self.steps:
                raise Unsupported("position")  # (TFLM's SLICE would refuse it too)
            t_x.append(int(pos[1]))
            for k, step in self.counter_steps.items():
                counters[k] = counters[k] + step
        else:
            raise Unsupported("too many iterations")
        x = vals[self.x_var]
        n = x.a.shape[0] if x.batched else max((v.a.shape[0] for v in vals if v.batched), default=1)
        xa = np.ascontiguousarray(
            (x.a if x.batched else np.broadcast_to(x.a, (n,) + x.a.shape)).reshape(n, x.a.shape[-2], x.a.shape[-1]),
            np.int8)
        state0 = np.zeros((len(self.state_vars), n, self.width), np.int32)
        for i, k in enumerate(self.state_vars):
            a = vals[k].a
            w = a.shape[-1]
            state0[i, :, :w] = (a.reshape(n, w) if vals[k].batched else np.broadcast_to(a.reshape(1, w), (n, w)))
        if self.seq_var is not None:
            sv = vals[self.seq_var]
            seq = np.array(sv.a if sv.batched else np.broadcast_to(sv.a, (n,) + sv.a.shape), np.int8, copy=True)
            seq_shape = seq.shape
            seq = seq.reshape(n, seq_shape[-2], seq_shape[-1])
            if seq.shape[1] != self.steps:
                raise Unsupported("sequence length")
        else:
            seq = np.zeros((1, 1, 1), np.int8)
        final = np.empty_like(state0)
        block = _fast.block_size(n)
        t_x = np.array(t_x, np.int64)  # SLICE and DYNAMIC_UPDATE_SLICE share the position (checked above)
        _loop_kernel.run_loop(xa, self.xt_slot, t_x, state0, np.array(self.state_in, np.int64),
                              np.array(self.state_out, np.int64), self.const_vals, self.const_slots, self.instr,
                              self.fc_w, self.fc_woff, self.fc_boff, self.fc_bias, self.fc_rq, self.fc_scal,
                              self.tab2, self.tab1, self.w16, self.w16off, self.b16off, self.rq16, self.scal16, self.ar16,
                              self.tab16, seq, self.seq_slot if self.seq_var is not None else -1, t_x,
                              self.n_slots, self.width, block, final)
        out = list(vals)
        for k, c in counters.items():
            out[k] = Val(c.astype(np.int32).reshape(np.asarray(vals[k].a).shape), False)
        bsg = self.wk.sim.graphs[self.wk.body].sg
        for i, k in enumerate(self.state_vars):
            shape = bsg.tensors[bsg.inputs[k]].shape
            w = shape[-1]
            out[k] = Val(final[i, :, :w].astype(_NP_OF[bsg.tensors[bsg.inputs[k]].dtype]).reshape((n,) + tuple(shape)),
                         True)
        if self.seq_var is not None:
            out[self.seq_var] = Val(seq.reshape(seq_shape), True)
        return out
