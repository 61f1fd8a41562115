"""A loop step's input CAST folded into the 16x8 FC on weight rows that reads it.

An int16 loop step (``--state int16``) starts with a CAST of the int8 ``x_t`` to int16, read
only by the input-side 16x8 FULLY_CONNECTED. On the ``rows`` kernel choice that FC
(``edgernn_mve_fc.h``) holds its input in registers for the whole FC when it has at most 32
columns, so it can read ``x_t`` itself: on Helium one widening VLDRB.S16 per chunk of eight
columns (predicated for the last) in place of the VLDRH of the copy, the CAST's copy loop (one
LDRSB and one STRH per column) gone; the C twin makes the int16 copy on its stack
(``EDGERNN_FC16R_KERNEL_X8``). The values are the same: the CAST of an int8 value to int16 has
no rounding and no zero point in TFLM's 16x8 graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fastloop import FastFc16

X8_MAX = 32  # EDGERNN_FC16R_X8_MAX: four chunks of eight, held in registers


@dataclass
class FastFc16X8(FastFc16):
    """A :class:`.fastloop.FastFc16` on weight rows that reads the int8 ``x_t`` itself."""

    @property
    def kernel(self) -> str:
        return super().kernel + "_x8"

    @property
    def input_c(self) -> str:
        return "NULL"  # the kernel takes x_t as its second argument


def _overlap(a, b) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def _only_readers(ops: list, cast, fc_ops: list) -> bool:
    """Whether ``fc_ops`` are the only ops after ``cast`` that read its output before a later op
    writes over it (never written over: the end of the step may copy it, False)."""
    out = cast.regions[-1]
    for op in ops[ops.index(cast) + 1:]:
        if all(op is not f for f in fc_ops) and any(_overlap(r, out) for r in op.regions[:-1]):
            return False
        if _overlap(op.regions[-1], out):
            return True
    return False


def _foldable(fc, e, op) -> bool:
    return (isinstance(fc, FastFc16) and bool(fc.wbytes) and fc.n_input <= X8_MAX and fc.n_input == e.op.n
            and op.regions[0] == e.op.regions[-1])


def fold_input_casts(plan) -> None:
    """For each fast loop layer of ``plan`` whose step opens with the CAST of ``x_t`` read only by
    the 16x8 FCs on weight rows (at most :data:`X8_MAX` columns) that follow it (a GRU's two): those
    FCs read ``x_t`` (``EDGERNN_FC16R_KERNEL_X8`` kernels) and the CAST's run is dropped."""
    for layer in plan.recurrent:
        f = getattr(layer, "fast", None)
        if f is None or layer.kind != "loop":
            continue
        for k in range(len(f.steps) - 1):
            st = f.steps[k]
            if st[0] != "run" or len(st[2]) != 1:
                continue
            e = st[2][0]
            if e.op.kind != "widen" or e.ins != ["(x_t)[i]"] or e.ctype != "int16_t":
                continue
            end = k + 1
            while end < len(f.steps) and f.steps[end][0] == "fc" and _foldable(f.steps[end][2], e, f.steps[end][1]):
                end += 1
            if end == k + 1 or not _only_readers(layer.ops, e.op, [f.steps[j][1] for j in range(k + 1, end)]):
                continue
            folded = []
            for j in range(k + 1, end):
                fc = f.steps[j][2]
                x8 = FastFc16X8(**{name: getattr(fc, name) for name in fc.__dataclass_fields__})
                f.fcs[f.fcs.index(fc)] = x8
                folded.append(("fc", f.steps[j][1], x8))
            f.steps[k:end] = folded
            f.scratch_in_step = _scratch_in_step(layer)
            break


def _scratch_in_step(layer) -> bool:
    """:attr:`.fastloop.FastLoop.scratch_in_step` again, without the folded CAST's buffer."""
    f = layer.fast
    texts = [st.source for st in layer.states if st.name not in f.direct_states]
    for st in f.steps:
        if st[0] == "widen":
            texts.append(st[1].source)
        elif st[0] == "fc" and (st[2] is None or isinstance(st[2], FastFc16)):
            texts += ([] if isinstance(st[2], FastFc16X8) else [st[1].inputs[0]]) + [st[1].output]
        elif st[0] == "run":
            texts += [t for e in st[2] for t in (e.expr, e.store or "")]
    return any("scratch" in t.replace("$scratch", "") for t in texts)
