"""The native plan of a WHILE-graph model: its loops (:mod:`.loop`), a Bidirectional merge, the head.

Supported main graphs (what ``edgernn convert`` writes): a chain of WHILE loops (each a stack
of layers), each reading the model input or the previous loop's int8 output sequence, and
Bidirectional layers anywhere in the chain (two loops over the same sequence, forward then
backward, merged by CONCATENATION or ADD of their sequences or of their final states; with a
Bidirectional layer the model runs whole windows only, ``NAME_run``, layer by layer). Then a
head: with ``--state int16`` a QUANTIZE of the last state to int8, then FULLY_CONNECTED /
SOFTMAX, on the last step's output or on every step's (the loop's output sequence); with
``--state int16`` and a Dense first, that FULLY_CONNECTED reads the final int16 state itself
(16x8, int16 logits) and a QUANTIZE brings its output to int8.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ...tflite_model import Operator, Subgraph, TFLiteModel
from .loop import (AddPlan, FullyConnected16Plan, LoopPlan, RequantPlan, _fully_connected16, add_plan, build_loop_layer,
                   model_metadata, requant_plan)
from .plan import NativePlan, _check_sequence_io, _fail, _fully_connected, _scale, _softmax, _zp


@dataclass
class QuantizePlan:
    """A head step: QUANTIZE of an int16 state to int8."""

    index: int
    op_index: int
    n: int
    requant: RequantPlan

    @property
    def kind(self) -> str:
        return "quantize"

    @property
    def arrays(self) -> list:
        return []

    @property
    def n_out(self) -> int:
        return self.n


@dataclass
class FullyConnected16HeadPlan:
    """A head step: FULLY_CONNECTED 16x8 on a final int16 state (int16 logits, in the static
    ``NAME_head16`` buffer, which the QUANTIZE after it reads)."""

    index: int
    op_index: int
    params: FullyConnected16Plan
    fast: object = None  # fastloop.FastFc16 on int16 weight pairs (edgernn_fc16w.h), or None: the reference

    @property
    def kind(self) -> str:
        return "fc16"

    @property
    def arrays(self) -> list:
        return [self.fast.stream] if self.fast is not None else self.params.arrays

    @property
    def n_out(self) -> int:
        return self.params.n_output


@dataclass
class Stage:
    """One recurrent loop of a whole-window model, run over every time step before the next:
    a forward loop (one or more stacked layers), or a Bidirectional pair (forward t = 0..T-1,
    then backward t = T-1..0). ``output``: the ``$seq<k>`` buffer its int8 output sequence is
    written to, row t at ``t * width`` (None: only the final state is used); a pair writes the
    forward half at offset 0 and the backward half at ``n_forward`` (concat), or adds the
    backward row into the forward row in place (sum)."""

    layers: list  # [LoopPlan] or [forward LoopPlan, backward LoopPlan]
    input: str  # C expression of the input rows: "x" (the model input) or a previous "$seq<k>"
    input_width: int
    output: str | None = None
    width: int = 0
    merge: object = None  # MergePlan of a Bidirectional pair's sequences (None: one loop)


@dataclass
class MergePlan:
    """How a Bidirectional layer's two final states become one vector: CONCATENATION or ADD;
    with int16 states each is QUANTIZEd into its half (concat), or the int16 sum is
    (``add16``); or, read by a 16x8 FULLY_CONNECTED, they stay int16 (``concat16``, ``add16``
    without ``quantize``: the vector is ``NAME_merged16``)."""

    op_index: int
    kind: str  # "concat" | "add" | "add16"
    forward: str
    backward: str
    n_forward: int
    n_backward: int
    add: AddPlan | None = None
    quantize: list[RequantPlan] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.n_forward + self.n_backward if self.kind in ("concat", "concat16") else self.n_forward

    @property
    def int16_out(self) -> bool:
        """The merged vector is int16 (``NAME_merged16``), not int8 (``NAME_merged``)."""
        return self.kind == "concat16" or (self.kind == "add16" and not self.quantize)


def _while_chain(m: TFLiteModel, sg: Subgraph, layer_meta: dict):
    """Walks the main graph: the loops as stages, then the head ops.

    Returns (stages, loop plans, head ops [(index, op)], the merge of a Bidirectional pair's final
    states or None, the tensor the head starts from, where tensors come from)."""
    where: dict[int, tuple] = {sg.inputs[0]: ("input",)}
    stages: list[Stage] = []
    plans: list[LoopPlan] = []
    final_merge = None
    cur = None
    head_ops = []
    pair_source = None  # where the last forward loop read its sequence from
    for i, op in enumerate(sg.operators):
        if op.opcode == "FILL":
            continue  # the initial value of an output sequence: not needed step by step
        last = stages[-1] if stages else None
        if op.opcode == "WHILE":
            if head_ops or final_merge is not None:
                raise _fail(m, f"op {i}: a recurrent layer after the output layers is not supported")
            plan, mp = build_loop_layer(m, op, i, len(plans), layer_meta.get(i, []))
            src = where.get(op.inputs[mp["x"]])
            if plan.direction == "backward":
                if last is None or len(last.layers) != 1 or src != pair_source:
                    raise _fail(m, f"op {i} (WHILE): a backward layer that is not the second half of a "
                                   "Bidirectional pair is not supported by the native backend -- use --backend tflm")
                last.layers.append(plan)
            else:
                if last is not None and len(last.layers) == 2 and last.merge is None:
                    raise _fail(m, f"op {i} (WHILE): the Bidirectional layer before it is not merged into one "
                                   "sequence (concat or sum)")
                want = ("input",) if last is None else ("seq", len(stages) - 1)
                if src != want:
                    raise _fail(m, f"op {i} (WHILE): its input sequence is not "
                                   f"{'the model input' if last is None else 'the previous layer output sequence'}; "
                                   "the native backend compiles a chain of layers")
                if last is not None:
                    last.output = f"$seq{(len(stages) - 1) % 2}"  # two buffers, used in turn
                stages.append(Stage(layers=[plan], input="x" if last is None else last.output, input_width=0))
                pair_source = src
            cur = None
            for pos, name in mp["states"].items():
                where[op.outputs[pos]] = ("state", len(plans), name, mp["ctypes"][pos])
                if name == plan.output_state:
                    cur = op.outputs[pos]
            if mp["seq"] is not None:
                backward = plan.direction == "backward"
                where[op.outputs[mp["seq"]]] = ("half", len(plans)) if backward else ("seq", len(stages) - 1)
            plans.append(plan)
            continue
        if last is None:
            raise _fail(m, f"op {i} ({op.opcode}) before the first recurrent layer is not supported")
        if len(last.layers) == 2 and last.merge is None and final_merge is None:
            fwd, bwd = last.layers
            got = [where.get(t) for t in op.inputs[:2]]
            if op.opcode == "FULLY_CONNECTED" and got[0] is not None and got[0][0] == "sum16":
                # the int16 sum of the final states read by the head's 16x8 FULLY_CONNECTED
                final_merge = MergePlan(kind="add16", add=got[0][1], op_index=got[0][2], forward=fwd.output_state,
                                        backward=bwd.output_state, n_forward=fwd.n_cell, n_backward=bwd.n_cell)
                cur = op.inputs[0]
                head_ops.append((i, op))
                continue
            if got == [("seq", len(stages) - 1), ("half", len(plans) - 1)]:
                last.merge = _merge_sequences(m, sg, op, i, fwd, bwd)
                where[op.outputs[0]] = ("seq", len(stages) - 1)
                cur = None  # read next by a layer or a per-step head
                continue
            found = _merge_states(m, sg, op, i, where, len(plans), fwd, bwd)
            if found is not None:
                final_merge = found
                cur = op.outputs[0]
            continue
        head_ops.append((i, op))
    return stages, plans, head_ops, final_merge, cur, where


def build_loop_model(m: TFLiteModel) -> NativePlan:
    """NativePlan of a model whose recurrent layers are WHILE loops (GRU, SimpleRNN...)."""
    sg = m.main
    x = _check_sequence_io(m)
    meta = model_metadata(m) or {}
    if meta.get("form", "sequence") != "sequence":
        raise _fail(m, "this is a streaming (--streaming) model; emit the native C from the sequence model: "
                       "its NAME_step already streams")
    layer_meta: dict[int, list[dict]] = {}
    for info in meta.get("layers", []):
        if info.get("while_op") is not None:
            layer_meta.setdefault(int(info["while_op"]), []).append(info)
    stages, recurrent, head_ops, merge, cur, where = _while_chain(m, sg, layer_meta)
    if not stages:
        raise _fail(m, "the graph has no recurrent layer")
    last = stages[-1]
    if len(last.layers) == 2 and last.merge is None and merge is None:
        raise _fail(m, "a Bidirectional layer must be merged (concat or sum) before the output")
    per_step = False
    head: list = []
    for i, op in head_ops:
        if op.inputs[0] != cur or cur is None:
            if not head and where.get(op.inputs[0]) == ("seq", len(stages) - 1):
                per_step = True  # return_sequences=True: the head runs on every step's output
            else:
                raise _fail(m, f"op {i} ({op.opcode}) does not read the previous op's output; the native "
                               "backend compiles a single chain of layers")
        if op.opcode == "FULLY_CONNECTED" and sg.tensors[op.inputs[0]].dtype == "int16" and not head:
            params = _fully_connected16(m, sg, op, i, f"fc{len(head)}")
            head.append(FullyConnected16HeadPlan(index=len(head), op_index=i, params=params))
        elif op.opcode == "FULLY_CONNECTED":
            head.append(_fully_connected(m, sg, op, i, len(head)))
        elif op.opcode == "SOFTMAX":
            head.append(_softmax(m, sg, op, i, len(head)))
        elif op.opcode == "QUANTIZE" and (not head or head[-1].kind == "fc16") and \
                sg.tensors[op.inputs[0]].dtype == "int16":
            x16, y8 = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
            head.append(QuantizePlan(index=len(head), op_index=i, n=int(x16.shape[-1]), requant=requant_plan(x16, y8)))
        else:
            raise _fail(m, f"operator {op.opcode} (op {i}) after the recurrent layers is not supported by the "
                           "native backend (FULLY_CONNECTED and SOFTMAX are) -- use --backend tflm for this model")
        cur = op.outputs[0]
    if not head and where.get(sg.outputs[0]) == ("seq", len(stages) - 1):
        per_step = True  # the output is the last layer's whole hidden-state sequence
    elif cur is None or cur != sg.outputs[0]:
        raise _fail(m, "the graph's output is not the end of a recurrent-layer chain")
    # A Bidirectional layer anywhere: every loop runs over the whole window before the next.
    window = any(len(s.layers) == 2 for s in stages)
    if window and per_step:
        last.output = f"$seq{(len(stages) - 1) % 2}"  # the per-step head reads its rows afterwards
    for s in stages:
        s.width = s.merge.n if s.merge is not None else s.layers[0].n_cell
    for prev, s in zip(stages, stages[1:]):
        s.input_width = prev.width
    y = sg.tensors[sg.outputs[0]]
    return NativePlan(source=Path(m.path).name, sha256=hashlib.sha256(m.raw).hexdigest(),
                      flatbuffer_bytes=len(m.raw), timesteps=int(x.shape[1]), features=int(x.shape[2]),
                      input_scale=_scale(x), input_zero_point=_zp(x), output_scale=_scale(y), output_zero_point=_zp(y),
                      recurrent=recurrent, last_step_only=not per_step, head=head, ops=[o.opcode for o in sg.operators],
                      bidirectional=window, merge=merge, stages=stages if window else [])


def _merge_sequences(m: TFLiteModel, sg: Subgraph, op: Operator, i: int, fwd: LoopPlan, bwd: LoopPlan) -> MergePlan:
    """A Bidirectional pair's int8 sequences merged row by row by CONCATENATION (inputs quantized
    like the output, as TFLM requires: the bytes are copied) or ADD."""
    y = sg.tensors[op.outputs[0]]
    args = dict(op_index=i, forward=fwd.output_state, backward=bwd.output_state, n_forward=fwd.n_cell,
                n_backward=bwd.n_cell)
    if op.opcode == "CONCATENATION":
        a, b = (sg.tensors[t] for t in op.inputs[:2])
        if len(op.inputs) != 2 or any(_scale(t) != _scale(y) or _zp(t) != _zp(y) for t in (a, b)):
            raise _fail(m, f"op {i} (CONCATENATION): inputs quantized unlike the output are not supported")
        return MergePlan(kind="concat", **args)
    if op.opcode == "ADD":
        return MergePlan(kind="add", add=add_plan(m, sg, op, f"op {i} (ADD)"), **args)
    raise _fail(m, f"op {i}: Bidirectional merge {op.opcode} is not supported (concat and sum are)")


def _merge_states(m: TFLiteModel, sg: Subgraph, op: Operator, i: int, where: dict, n_plans: int,
                  fwd: LoopPlan, bwd: LoopPlan) -> MergePlan | None:
    """Follow the ops merging a Bidirectional pair's final states; the plan once complete."""
    states = [("state", n_plans - 2, fwd.output_state, fwd.output_ctype),
              ("state", n_plans - 1, bwd.output_state, bwd.output_ctype)]
    got = [where.get(t) for t in op.inputs[:2]]
    y = sg.tensors[op.outputs[0]]
    args = dict(op_index=i, forward=fwd.output_state, backward=bwd.output_state, n_forward=fwd.n_cell,
                n_backward=bwd.n_cell)
    if op.opcode == "QUANTIZE" and got[0] in states:  # an int16 state to int8, for a CONCATENATION
        where[op.outputs[0]] = ("q8", states.index(got[0]), requant_plan(sg.tensors[op.inputs[0]], y))
        return None
    if op.opcode == "QUANTIZE" and got[0] is not None and got[0][0] == "sum16":
        return MergePlan(kind="add16", add=got[0][1], quantize=[requant_plan(sg.tensors[op.inputs[0]], y)], **args)
    if op.opcode == "CONCATENATION" and len(op.inputs) == 2:
        if all(g is not None and g[0] == "q8" for g in got) and [g[1] for g in got] == [0, 1]:
            return MergePlan(kind="concat", quantize=[got[0][2], got[1][2]], **args)
        a, b = (sg.tensors[t] for t in op.inputs[:2])
        if got != states[:2] or any(_scale(t) != _scale(y) or _zp(t) != _zp(y) for t in (a, b)):
            raise _fail(m, f"op {i} (CONCATENATION) does not merge the forward and backward halves of the "
                           "Bidirectional layer")
        return MergePlan(kind="concat16" if y.dtype == "int16" else "concat", **args)
    if op.opcode == "ADD" and got == states[:2]:
        if y.dtype == "int16":
            where[op.outputs[0]] = ("sum16", add_plan(m, sg, op, f"op {i} (ADD)"), i)
            return None
        return MergePlan(kind="add", add=add_plan(m, sg, op, f"op {i} (ADD)"), **args)
    raise _fail(m, f"op {i} ({op.opcode}) does not merge the forward and backward halves of the "
                   "Bidirectional layer (concat and sum are supported)")
