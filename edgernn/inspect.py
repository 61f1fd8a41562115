"""``edgernn.inspect``: what is inside a model, and what it costs on a device.

For a ``.tflite`` flatbuffer: operators with counts, tensors with shape, dtype and
quantization, flatbuffer bytes, the exact minimum TFLM arena, and parameters and MACs per
inference for each operator. For a Keras model: the IR's layers with parameter counts (equal
to Keras' ``count_params``) and MACs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import tflite_model
from .errors import EdgeRNNError

# Ops whose weights feed multiply-accumulates, with where the weight tensors sit in the inputs.
_LSTM_WEIGHT_INPUTS = range(1, 9)  # input->gate (4) and recurrent->gate (4) weights


@dataclass
class OpCost:
    index: int
    subgraph: int
    opcode: str
    params: int
    macs: int
    output_shape: tuple


@dataclass
class InspectReport:
    path: str
    kind: str  # "tflite" | "keras"
    flatbuffer_bytes: int = 0
    weight_bytes: int = 0
    arena_bytes: int | None = None  # exact minimum in tflite_micro.runtime (64-bit host), bisected
    arena_cortex_m: dict = field(default_factory=dict)  # kernels -> minimum on a Cortex-M4, replayed
    ops: dict = field(default_factory=dict)
    tensors: list = field(default_factory=list)
    per_op: list = field(default_factory=list)
    layers: list = field(default_factory=list)
    params: int = 0
    macs: int = 0
    input: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    engines: dict = field(default_factory=dict)  # engine -> what it does with this .tflite

    def to_json(self) -> dict:
        return asdict(self)


def _tensor_dict(t: tflite_model.Tensor, subgraph: int) -> dict:
    d = {"subgraph": subgraph, "index": t.index, "name": t.name, "shape": list(t.shape), "dtype": t.dtype,
         "constant": t.data is not None, "variable": t.is_variable}
    if t.scale is not None:
        if len(t.scale) == 1:
            d["scale"] = float(t.scale[0])
            d["zero_point"] = int(t.zero_point[0])
        else:
            d["scale"] = [float(s) for s in t.scale]
            d["zero_point"] = [int(z) for z in t.zero_point]
            d["quantized_dimension"] = t.quantized_dimension
    return d


def _op_costs(m: tflite_model.TFLiteModel, timesteps: int) -> list[OpCost]:
    rows = []
    loop_subgraphs = set()
    for sg in m.subgraphs:
        for op in sg.operators:
            if op.opcode == "WHILE":
                loop_subgraphs.add(op.options.bodySubgraphIndex)
    for si, sg in enumerate(m.subgraphs):
        repeat = timesteps if si in loop_subgraphs else 1
        for oi, op in enumerate(sg.operators):
            consts = [sg.tensors[i] for i in op.inputs if i >= 0 and sg.tensors[i].data is not None]
            params = int(sum(t.data.size for t in consts if t.dtype in ("int8", "int16", "int32", "float32")))
            out = sg.tensors[op.outputs[0]] if op.outputs else None
            macs = 0
            if op.opcode == "FULLY_CONNECTED":
                w = sg.tensors[op.inputs[1]]
                rows_in = int(np.prod(out.shape[:-1])) if out is not None and len(out.shape) > 1 else 1
                macs = int(np.prod(w.shape)) * rows_in
            elif op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D") and out is not None:
                w = sg.tensors[op.inputs[1]]
                taps = int(np.prod(w.shape[1:3]))  # depthwise: each output reads one input channel
                macs = int(np.prod(out.shape)) * taps * (int(w.shape[3]) if op.opcode == "CONV_2D" else 1)
            elif op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM":
                t_axis = sg.tensors[op.inputs[0]].shape[1]
                w = sum(int(np.prod(sg.tensors[i].shape)) for i in (op.inputs[j] for j in _LSTM_WEIGHT_INPUTS) if i >= 0)
                macs = w * int(t_axis)
            rows.append(OpCost(oi, si, op.opcode, params, macs * repeat, tuple(out.shape) if out is not None else ()))
    return rows


def engine_support(m: tflite_model.TFLiteModel) -> dict:
    """Whether the simulator and the native backend take ``m``, and how (or why not)."""
    from .backends.native.emit import build_plan
    from .simulate import Simulator

    out = {}
    try:
        Simulator(m, engine="numpy")
        out["simulator"] = "bit-exact int8 interpreter"
    except EdgeRNNError as exc:
        out["simulator"] = f"refused: {str(exc).replace(f'{m.path}: ', '')}"
    try:
        plan = build_plan(m)
    except EdgeRNNError as exc:
        out["native"] = f"refused: {str(exc).replace(f'{m.path}: ', '')}"
    else:
        g = plan.graph
        if g is not None and not g.streaming:
            out["native"] = f"whole window only (NAME_run on {plan.timesteps} steps); no NAME_step: {g.reason}"
        elif plan.bidirectional:
            out["native"] = "whole window only (NAME_run): a Bidirectional layer"
        else:
            out["native"] = "streams (NAME_step, one time step per call; NAME_run on any T)"
    return out


def inspect_tflite(path, *, arena: bool = True) -> InspectReport:
    m = tflite_model.read(path)
    tin, tout = m.input(), m.output()
    timesteps = tin.shape[1] if len(tin.shape) >= 3 else 1
    costs = _op_costs(m, timesteps)
    arena_bytes, arena_cortex_m = None, {}
    if arena:
        from .backends.tflm.allocator import KERNELS, replay
        from .backends.tflm.arena import min_arena_bytes
        arena_bytes = min_arena_bytes(m.raw)
        replays = {k: replay(m, "cortex-m", k) for k in KERNELS}
        if all(r.exact for r in replays.values()):
            arena_cortex_m = {k: r.minimum for k, r in replays.items()}
    return InspectReport(
        path=str(path), kind="tflite", flatbuffer_bytes=len(m.raw), weight_bytes=m.weight_bytes,
        arena_bytes=arena_bytes, arena_cortex_m=arena_cortex_m, ops=m.op_counts,
        tensors=[_tensor_dict(t, si) for si, sg in enumerate(m.subgraphs) for t in sg.tensors],
        per_op=[asdict(c) for c in costs], params=sum(c.params for c in costs), macs=sum(c.macs for c in costs),
        input=_tensor_dict(tin, 0), output=_tensor_dict(tout, 0), engines=engine_support(m))


def inspect_keras(path) -> InspectReport:
    from .frontend import load_model

    model = load_model(path)
    rows = model.summary_rows()
    return InspectReport(path=str(path), kind="keras", layers=rows, params=model.param_count, macs=model.macs(),
                         input={"timesteps": model.input.timesteps, "features": model.input.features})


def inspect(path, *, arena: bool = True) -> InspectReport:
    """Inspect a ``.tflite`` flatbuffer or a Keras model file."""
    p = Path(path)
    if not p.exists():
        raise EdgeRNNError(f"{p}: no such file (expected a .tflite, .keras, .h5 or SavedModel directory)")
    if p.suffix == ".tflite":
        return inspect_tflite(p, arena=arena)
    return inspect_keras(p)
