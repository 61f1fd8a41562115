"""``build_graph_model``: the native plan of a graph with tensor ops, streaming when it can.

It tries :func:`.stream.step_program` first (one time step per call, rings for causal
convolutions) and falls back to :func:`.graph.sequence_program` (whole tensors) with the
reason the model does not stream; :func:`.graph.resolve` then places the buffers.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ...tflite_model import TFLiteModel
from . import tensorops as T
from .graph import Builder, GraphPlan, StreamRefusal, resolve, sequence_program
from .plan import NativePlan, _scale, _zp
from .stream import step_program


def _head_from(steps: list, x_index: int) -> int:
    """The index of the first step after the last one that carries state to the next time step (a
    recurrent layer's step, a causal convolution's ring): the steps from there on (a Dense head,
    its SOFTMAX) only make the step's output, so NAME_run, which returns the last step's output,
    runs them once after its last step. len(steps) when there are none or one reads x_t."""
    k = 0
    for i, st in enumerate(steps):
        if st.opcode in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "WHILE") or any("$ring" in line for line in st.lines):
            k = i + 1
    if any(T.t(x_index) in line or "x_t" in line for st in steps[k:] for line in st.lines):
        return len(steps)
    return k


def build_graph_model(m: TFLiteModel, kernel: str = "reference") -> NativePlan:
    """The NativePlan of any graph of supported ops (see the module docstring); its LSTM layers
    on ``kernel`` where the fast kernels' preconditions hold."""
    b = Builder(m, kernel)
    xs = b.x.shape
    timesteps = int(xs[1]) if len(xs) >= 3 else 1
    features = T.numel(xs[2:]) if len(xs) >= 3 else T.numel(xs[1:])
    reason = ""
    try:
        steps, locs, out_info = step_program(b)
        mode = "step"
    except StreamRefusal as exc:
        reason = str(exc)
        steps, locs = sequence_program(b)
        mode, out_info = "sequence", None
    output = out_info["output"] if out_info else b.y.index
    buffers, r, arena = resolve(b, steps, locs, "x_t" if mode == "step" else "x", output)
    rings = out_info["rings"] if out_info else []
    structs = [s for st in steps for s in st.structs]
    arrays = [a for st in steps for a in st.arrays] + list(b.consts.values())
    head = _head_from(steps, b.x.index) if mode == "step" and not out_info["per_step"] else len(steps)
    text = "\n".join(line for st in steps[:head] for line in st.lines)
    head_text = "\n".join(line for st in steps[head:] for line in st.lines)
    if mode == "step":
        step_outputs, per_step = out_info["row"], out_info["per_step"]
    else:
        step_outputs, per_step = T.numel(b.y.shape), False
    graph = GraphPlan(mode=mode, reason=reason, steps=steps, structs=structs, arrays=arrays, arena_bytes=arena,
                      rings=rings, output_expr=r["expr"](output), step_outputs=step_outputs, per_step=per_step,
                      output_shape=tuple(b.y.shape), input_bytes=timesteps * features,
                      uses_t=bool(re.search(r"\bt = ", text)), uses_r=bool(re.search(r"\br = ", text)),
                      uses_input=bool(re.search(r"\bx_t\b", text)),
                      buffers=buffers, fc8_kernels=list({k.kernel: k for st in steps for k in st.kernels}.values()),
                      head_from=head if head < len(steps) else -1, head_uses_t=bool(re.search(r"\bt = ", head_text)),
                      head_uses_r=bool(re.search(r"\br = ", head_text)))
    names = [sg_op.opcode for sg_op in b.sg.operators]
    return NativePlan(source=Path(m.path).name, sha256=hashlib.sha256(m.raw).hexdigest(), flatbuffer_bytes=len(m.raw),
                      timesteps=timesteps, features=features, input_scale=_scale(b.x), input_zero_point=_zp(b.x),
                      output_scale=_scale(b.y), output_zero_point=_zp(b.y), recurrent=b.recurrent,
                      last_step_only=not per_step, head=[], ops=names, graph=graph)

