"""GRU / SimpleRNN / LSTM (and stacks, Bidirectional, per-step heads) as TFLM WHILE graphs.

Why edgernn writes these graphs itself: the TFLite converter's int8 path crashes on GRU and
SimpleRNN loops (``unroll=False``) and ``unroll=True`` grows the flatbuffer with the sequence
length. So every recurrent layer becomes one ``WHILE`` op whose body is one time step made of
TFLM builtins only; the flatbuffer size does not depend on T. The time step itself is
:mod:`.cells`: by default the state and the step arithmetic are int16 with one
FULLY_CONNECTED per input side (``convert --state int16``), or everything int8 with one
FULLY_CONNECTED per gate (``--state int8``). Inputs, outputs and the sequences between layers
are int8 either way. With ``--state int16`` a Dense head right after the last layer's final
state reads the int16 h itself (FULLY_CONNECTED 16x8: int64 bias, int16 logits, then QUANTIZE
to int8 before SOFTMAX / the output), as does a Bidirectional layer's final merge (int16
CONCATENATION of two Q15 halves, or int16 ADD): h is not rounded to int8 on its way to the
logits (see :class:`_Final`).

Two forms, from one description of the time step and one table of quantization parameters
(so they compute exactly the same numbers):

* **sequence** (``convert``): input int8 ``(1, T, F)``, one int8 output, no custom ops.
  Main graph, per direction of each recurrent layer: ``WHILE(i, pos, h[, c], x_seq[, seq])``
  with a cond graph ``i < T`` and a body graph that slices ``x_t`` at ``pos = [0, t, 0]``, runs
  the cell, and (for ``return_sequences``) writes the int8 ``h`` into ``seq`` at ``pos``
  (DYNAMIC_UPDATE_SLICE in place). Backward directions walk ``t`` from T-1 down to 0. Then
  Bidirectional merges (CONCATENATION or ADD) and the Dense head (FULLY_CONNECTED,
  SOFTMAX...), applied per step when the last recurrent layer returns sequences.
* **streaming** (``convert --streaming``): input int8 ``(1, 1, F)``, one output, the cell's
  step ops directly in the main graph. Each layer's state (``h``, and ``c`` for LSTM) is a
  TFLM *variable tensor* that the last op of the step writes in place: TFLM keeps it between
  ``invoke()`` calls and ``reset()`` sets it back to zero (its zero point). This is the same
  mechanism as the fused LSTM's state, so every cell streams with the same application code
  (set one sample, invoke, read the output; reset between sequences). Fed a sequence one
  sample at a time it gives bit-identical outputs to the sequence form: same ops, same
  parameters, same state scale. Bidirectional layers need the whole window and are refused.

Every loop-carried tensor (state, sequence buffers, counters) has one scale and zero point in
the main, cond and body graphs; the sequences are even one tensor in the main graph (the
WHILE's input and output, FILL's output) and in the body (DYNAMIC_UPDATE_SLICE's operand and
output). LOGISTIC / TANH outputs have the scales TFLM's kernels require; the other
activations come from a float run of this very graph on the calibration data
(:mod:`edgernn.quantize.calibrate`).

Costs, whatever T: the flatbuffer holds the int8 weights plus about 3-4 KB of graph per
direction of a 32-unit GRU (:mod:`.serialize` writes shared tables once and no tensor names).
TFLM's WHILE copies every loop-carried tensor between the main, cond and body graphs three
times a step; the sequence form's metadata ``OfflineMemoryAllocation`` (:mod:`.memory_plan`)
gives each sequence one arena offset in every graph, so TFLM skips those copies: the cost of a
step and the arena beyond the input and output sequences do not depend on T.

The model's flatbuffer metadata ``"edgernn"`` (JSON) maps the graph back to cells, see
:func:`metadata_doc`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ... import ir
from ...errors import EdgeRNNError
from ...quantize.calibrate import Ranges, run_float
from . import cells
from .cells import STATES, binary, fc, int8_output_grid, quantize, unary
from .graph import Graph, Program, assign_quantization, share_constants, write_flatbuffer
from .layers import KINDS as LAYER_KINDS
from .layers import share_tied, write_layer
from .memory_plan import plan_offline

METADATA_VERSION = 3


def metadata_doc() -> str:
    """The format of the ``"edgernn"`` metadata entry: a UTF-8 JSON object, zlib-compressed
    (version 3; :func:`edgernn.tflite_model.decode_edgernn_metadata` reads both).

    ``{"version": 3, "form": "sequence" | "streaming", "timesteps": T (1 when streaming),
    "features": F, "state": "int16" | "int8", "input": main-graph tensor index,
    "output": main-graph tensor index, "layers": [LAYER...], "head": [HEAD...]}``

    LAYER (one per direction of each recurrent layer, in execution order)::

        {"name": Keras layer name, "cell": "gru" | "rnn" | "lstm", "units": U,
         "direction": "forward" | "backward", "return_sequences": bool,
         "reset_after": bool (GRU only), "activation": "tanh" | "relu" (SimpleRNN only),
         "merge_mode": "concat" | "sum" (Bidirectional only; "name" is the wrapper's),
         "subgraph": index of the subgraph holding the step ops (the WHILE body; 0 when streaming),
         "while_op": index of the WHILE op in subgraph 0 (sequence form only),
         "tensors": {"kernel": [input-side weights], "recurrent_kernel": [state-side weights],
         "state": h read by the step, "state_out": h written by the step,
         "cell_state" / "cell_state_out": LSTM c}}

    Weights are int8 per output channel, (rows, inputs). ``state`` "int16": one matrix per
    side with every gate's rows, gate order i f o c (LSTM), h (RNN); a GRU has two per side,
    (2U, inputs) for z r, then (U, inputs) for h (the recurrent h matrix applied to h, or to
    r * h when ``reset_after`` is false); a GRU or LSTM reading the Q15 h of the layer below
    gives each recurrent matrix the per-channel scales of the input matrix with the same rows
    (:func:`.cells.shares_row_scales`). ``state`` "int8": one
    (U, inputs) matrix per gate, Keras' gate order (GRU z r h, LSTM i f c o).

    All tensor indices in LAYER ``tensors`` are in ``subgraph``. HEAD entries are
    ``{"name", "kind": "dense", "kernel", "bias", "output", "activation"}`` or
    ``{"name", "kind": "activation", "output", "activation"}``, indices in subgraph 0.
    """
    return metadata_doc.__doc__


def _layer_info(layer: ir.Recurrent, direction: str, wrapper: ir.Bidirectional | None) -> dict:
    info = {"name": wrapper.name if wrapper else layer.name, "cell": layer.cell, "units": layer.units,
            "direction": direction, "return_sequences": bool(layer.return_sequences)}
    if layer.cell == "gru":
        info["reset_after"] = bool(layer.reset_after)
    if layer.cell == "rnn":
        info["activation"] = layer.activation
    if wrapper:
        info["merge_mode"] = wrapper.merge_mode
    return info


def _check_layer(layer: ir.Recurrent) -> None:
    if layer.cell == "rnn" and layer.activation not in ("tanh", "relu"):
        raise EdgeRNNError(f"layer '{layer.name}': SimpleRNN activation '{layer.activation}' is not supported; "
                           "use 'tanh' or 'relu'")
    if layer.cell != "rnn" and (layer.activation != "tanh" or layer.recurrent_activation != "sigmoid"):
        raise EdgeRNNError(f"layer '{layer.name}': only activation='tanh', recurrent_activation='sigmoid' "
                           "are supported for GRU/LSTM")


# --- the sequence form ------------------------------------------------------------------------

def _while_stack(prog: Program, main: Graph, stack: list[tuple[ir.Recurrent, str, dict]], x_seq: str,
                 t_steps: int, reverse: bool, state: str) -> tuple[str, str | None]:
    """One WHILE op running a stack of layers over ``x_seq``, every layer one step per iteration
    (layer j+1 reads layer j's int8 h of the same step: no sequence between them is stored).
    ``stack``: (layer, tensor-name prefix, metadata dict) each. Returns (the last layer's final
    h, its int8 sequence or None)."""
    s = stack[0][1]  # the loop's own tensors are named after its first layer
    last = stack[-1][0]
    f = stack[0][0].input_dim
    seq = last.return_sequences
    cond, body = Graph(f"{s}cond"), Graph(f"{s}body")
    prog.graphs += [cond, body]
    ci, bi = len(prog.graphs) - 2, len(prog.graphs) - 1

    # main: initial values of the loop-carried tensors
    init = {"i": main.const_i32(f"{s}i0", [0]), "pos": main.const_i32(f"{s}pos0", [0, t_steps - 1 if reverse else 0, 0])}
    carried = [("i", "i", (1,), "int32"), ("pos", "pos", (3,), "int32")]
    for layer, p, _ in stack:
        u = layer.units
        for key in ("h", "c") if layer.cell == "lstm" else ("h",):
            init[f"{p}{key}"] = main.add(f"{p}{key}0", (1, 1, u), state, data=np.zeros((1, 1, u), np.float32),
                                         role="state")
            carried.append((f"{p}{key}", key, (1, 1, u), state))
    init["x"] = x_seq
    carried.append(("x", "x", (1, t_steps, f), "int8"))
    if seq:
        dims = main.const_i32(f"{s}seq_dims", [1, t_steps, last.units])
        zero = main.add(f"{s}seq_fill", (), data=np.zeros((), np.float32), role="fill_value")
        init["seq"] = main.add(f"{s}seq", (1, t_steps, last.units))
        main.op("FILL", [dims, zero], [init["seq"]])
        prog.tie(init["seq"], zero)
        carried.append(("seq", "seq", (1, t_steps, last.units), "int8"))

    def local(key: str) -> str:  # a loop variable's name in the cond / body graphs
        return key if "/" in key else f"{s}{key}"

    # cond: i < T
    for key, _, shape, dt in carried:
        cond.inputs.append(cond.add(f"{s}cond/{local(key)}", shape, dt))
    t_const = cond.const_i32(f"{s}cond/T", [t_steps])
    keep = cond.add(f"{s}cond/keep_going", (1,), "bool")
    cond.op("LESS", [cond.inputs[0], t_const], [keep])
    cond.outputs = [keep]

    # body: one time step of every layer
    names = {key: body.add(local(key), shape, dt) for key, _, shape, dt in carried}
    body.inputs = [names[key] for key, _, _, _ in carried]
    one = body.const_i32(f"{s}one", [1])
    step = body.const_i32(f"{s}pos_step", [0, -1 if reverse else 1, 0])
    size = body.const_i32(f"{s}x_size", [1, 1, f])
    outs = {"i": binary(body, "ADD", names["i"], one, f"{s}i_next", (1,), dtype="int32"), "x": names["x"]}
    x_t = body.add(f"{s}x_t", (1, 1, f))
    body.op("SLICE", [names["x"], names["pos"], size], [x_t])
    cur = x_t
    for layer, p, info in stack:
        u = layer.units
        h_new = body.add(f"{p}h_new", (1, 1, u), state)
        c_new = body.add(f"{p}c_new", (1, 1, u), state) if layer.cell == "lstm" else None
        cells.step(prog, body, layer, p, cur, names[f"{p}h"], names.get(f"{p}c"), h_new, c_new, info, state)
        outs[f"{p}h"], outs[f"{p}c"] = h_new, c_new
        info.update(subgraph=bi)
        if layer is not last:  # the next layer reads this h (int16 too: no QUANTIZE / CAST between)
            cur = h_new
        elif seq:  # the int8 h of this step, written into the output sequence
            cur = h_new if state == "int8" else quantize(prog, body, h_new, f"{p}h8", (1, 1, u), int8_output_grid(layer))
    outs["pos"] = binary(body, "ADD", names["pos"], step, f"{s}pos_next", (3,), dtype="int32")
    if seq:  # written into the sequence in place
        body.op("DYNAMIC_UPDATE_SLICE", [names["seq"], cur, names["pos"]], [names["seq"]])
        outs["seq"] = names["seq"]
    body.outputs = [outs[key] for key, _, _, _ in carried]

    # main: the WHILE op; each sequence's input and output are one buffer (see .memory_plan)
    results = {key: main.add(f"{s}out/{local(key)}", shape, dt) for key, _, shape, dt in carried}
    main.op("WHILE", [init[key] for key, _, _, _ in carried], [results[key] for key, _, _, _ in carried],
            cond=ci, body=bi)
    for _, _, info in stack:
        info.update(while_op=len(main.ops) - 1)
    for key, _, _, dt in carried:
        if dt != "int32":
            group = [init[key], f"{s}cond/{local(key)}", names[key], outs[key], results[key]]
            if key == "x":
                group.append(x_t)
            if key == "seq":
                group.append(cur)
            prog.tie(*group)
    prog.alias.append([(0, x_seq), (0, results["x"]), (ci, f"{s}cond/{s}x"), (bi, names["x"])])
    if seq:
        prog.alias.append([(0, init["seq"]), (0, results["seq"]), (ci, f"{s}cond/{s}seq"), (bi, names["seq"])])
    return results[f"{stack[-1][1]}h"], results.get("seq")


def _int8_state(prog: Program, main: Graph, layer: ir.Recurrent, h: str, p: str, state: str) -> str:
    """The layer's final h as int8 (a QUANTIZE of the int16 state)."""
    if state == "int8":
        return h
    return quantize(prog, main, h, f"{p}h8", (1, 1, layer.units), int8_output_grid(layer))


@dataclass
class _Final:
    """The last recurrent layer's final int16 state (``--state int16``), written only once the
    next layer is known: a Dense reads the int16 vector itself (``as_int16``: FULLY_CONNECTED
    16x8 in :func:`_head`, so h is never rounded to int8 on its way to the logits), anything
    else, or the model output, its int8 QUANTIZE (``as_int8``). ``as_int16`` None: no int16
    form (a Bidirectional concat of states on different scales)."""

    as_int8: Callable[[], str]
    as_int16: Callable[[], str] | None = None


def _resolve(cur, nxt) -> str:
    """``cur`` as the tensor the layer ``nxt`` (None: the model output) reads."""
    if not isinstance(cur, _Final):
        return cur
    if nxt is not None and nxt.kind == "dense" and cur.as_int16 is not None:
        return cur.as_int16()
    return cur.as_int8()


def _final(prog: Program, main: Graph, layer: ir.Recurrent, h: str, p: str, state: str):
    """A layer's final state as the head reads it (see :class:`_Final`)."""
    if state == "int8":
        return h
    return _Final(as_int8=lambda: _int8_state(prog, main, layer, h, p, state), as_int16=lambda: h)


def _head(prog: Program, g: Graph, layer, cur: str, shape: tuple, per_step: bool, info: list) -> tuple[str, tuple]:
    if layer.kind == "dense":
        n = layer.units
        out_shape = shape[:-1] + (n,) if per_step else (1, n)
        fused = "RELU" if layer.activation == "relu" else None
        if g.tensors[cur].dtype == "int16":  # a final int16 state (see _Final): FC 16x8, then QUANTIZE
            out16, w, b = fc(g, f"{layer.name}/dense16", cur, layer.kernel, layer.bias, out_shape, fused=fused,
                             dtype="int16")
            out = quantize(prog, g, out16, f"{layer.name}/dense", out_shape)
        else:
            out, w, b = fc(g, f"{layer.name}/dense", cur, layer.kernel, layer.bias, out_shape, fused=fused,
                           keep_num_dims=per_step)
        entry = {"name": layer.name, "kind": "dense", "kernel": w, "bias": b, "activation": layer.activation}
        info.append(entry)
        cur, shape = out, out_shape
        act = layer.activation
        if act in ("linear", "relu"):
            entry["output"] = cur
            return cur, shape
    else:
        act = layer.activation
        entry = {"name": layer.name, "kind": "activation", "activation": act}
        info.append(entry)
    code = {"softmax": "SOFTMAX", "tanh": "TANH", "sigmoid": "LOGISTIC", "relu": "RELU"}.get(act)
    if code is None:
        entry["output"] = cur
        return cur, shape
    cur = unary(prog, g, code, cur, f"{layer.name}/{act}", shape)
    entry["output"] = cur
    return cur, shape


def _bidirectional(prog: Program, main: Graph, layer: ir.Bidirectional, k: int, cur: str, t_steps: int,
                   state: str, layers_info: list) -> tuple[str, int]:
    """Both directions of ``layer`` and their merge; returns (the merged int8 output, its width)."""
    outs = []
    for d, sub in (("f", layer.forward), ("b", layer.backward)):
        _check_layer(sub)
        info = _layer_info(sub, "forward" if d == "f" else "backward", layer)
        h, sq = _while_stack(prog, main, [(sub, f"L{k}{d}/", info)], cur, t_steps, d == "b", state)
        outs.append((h, sq))
        layers_info.append(info)
    u = layer.forward.units
    seqs = layer.return_sequences
    mshape = (1, t_steps, u) if seqs else (1, 1, u)
    if not seqs and state == "int16":
        return _final_merge(prog, main, layer, k, [h for h, _ in outs]), (2 * u if layer.merge_mode == "concat" else u)
    if seqs:
        a, b = outs[0][1], outs[1][1]
    else:
        a, b = (_int8_state(prog, main, sub, h, f"L{k}{d}/", state)
                for (h, _), sub, d in zip(outs, (layer.forward, layer.backward), "fb"))
    return _merge(prog, main, layer, k, a, b, mshape), (2 * u if layer.merge_mode == "concat" else u)


def _merge(prog: Program, main: Graph, layer: ir.Bidirectional, k: int, a: str, b: str, mshape: tuple) -> str:
    """The int8 merge of a Bidirectional layer's two halves (sequences or final states)."""
    u = layer.forward.units
    if layer.merge_mode == "concat":
        mshape = mshape[:-1] + (2 * u,)
        merged = main.add(f"L{k}/concat", mshape)
        main.op("CONCATENATION", [a, b], [merged], axis=2)
        prog.tie(a, b, merged)
        return merged
    return binary(main, "ADD", a, b, f"L{k}/sum", mshape)


def _final_merge(prog: Program, main: Graph, layer: ir.Bidirectional, k: int, hs: list[str]) -> _Final:
    """The merge of a Bidirectional layer's two final int16 states (see :class:`_Final`): sum,
    one int16 ADD (then one QUANTIZE for int8); concat, an int16 CONCATENATION (a copy: both
    halves on Q15; else no int16 form), or each QUANTIZEd and the int8 halves concatenated."""
    u = layer.forward.units
    s = (1, 1, u)
    subs = (layer.forward, layer.backward)
    if layer.merge_mode == "sum":
        total = []

        def sum16() -> str:
            if not total:
                total.append(binary(main, "ADD", hs[0], hs[1], f"L{k}/sum16", s, dtype="int16"))
            return total[0]

        return _Final(as_int8=lambda: quantize(prog, main, sum16(), f"L{k}/sum", s), as_int16=sum16)

    def concat8() -> str:
        a, b = (_int8_state(prog, main, sub, h, f"L{k}{d}/", "int16") for h, sub, d in zip(hs, subs, "fb"))
        return _merge(prog, main, layer, k, a, b, s)

    def concat16() -> str:
        merged = main.add(f"L{k}/concat16", (1, 1, 2 * u), "int16")
        main.op("CONCATENATION", list(hs), [merged], axis=2)
        prog.tie(*hs, merged)
        return merged

    q15 = all(int8_output_grid(sub) is not None for sub in subs)  # h on the fixed Q15 grid
    return _Final(as_int8=concat8, as_int16=concat16 if q15 else None)


def build_sequence_program(model: ir.Model, t_steps: int, state: str = "int16") -> Program:
    """The whole-sequence program: input (1, T, F) -> one output."""
    _check_state(state)
    main = Graph("main")
    prog = Program([main])
    x = main.add("input", (1, t_steps, model.input.features))
    main.inputs = [x]
    cur, shape, is_seq = x, (1, t_steps, model.input.features), True
    layers_info, head_info = [], []
    stack: list = []  # consecutive unidirectional recurrent layers: one WHILE loop

    def flush():
        nonlocal cur, shape, is_seq, stack
        if stack:
            last = stack[-1][0]
            t_in = shape[1]  # a conv front-end or pooling may have changed the length
            h, sq = _while_stack(prog, main, stack, cur, t_in, False, state)
            if last.return_sequences:
                cur, shape = sq, (1, t_in, last.units)
            else:
                cur, shape, is_seq = _final(prog, main, last, h, stack[-1][1], state), (1, 1, last.units), False
            stack = []

    for k, layer in enumerate(model.layers):
        if layer.kind in ("recurrent", "bidirectional") and (not is_seq or (stack and not stack[-1][0].return_sequences)):
            raise EdgeRNNError(f"layer '{layer.name}' follows a layer that dropped the time axis")
        if layer.kind == "recurrent":
            _check_layer(layer)
            info = _layer_info(layer, "backward" if layer.go_backwards else "forward", None)
            layers_info.append(info)
            if layer.go_backwards:  # pragma: no cover - the frontend refuses go_backwards
                raise EdgeRNNError(f"layer '{layer.name}': go_backwards is not supported")
            stack.append((layer, f"L{k}/", info))
            continue
        flush()
        cur = _resolve(cur, layer)
        if layer.kind in LAYER_KINDS:  # conv front-ends, pooling, reshapes (.layers)
            cur, shape = write_layer(prog, main, layer, cur, shape)
            is_seq = len(shape) > 2
        elif layer.kind == "bidirectional":
            t_in = shape[1]
            h, u = _bidirectional(prog, main, layer, k, cur, t_in, state, layers_info)
            if layer.return_sequences:
                cur, shape = h, (1, t_in, u)
            else:
                cur, shape, is_seq = h, (1, 1, u), False
        else:
            cur, shape = _head(prog, main, layer, cur, shape, is_seq, head_info)
    flush()
    cur = _resolve(cur, None)
    main.outputs = [cur]
    prog.metadata = {"version": METADATA_VERSION, "form": "sequence", "timesteps": t_steps, "state": state,
                     "features": model.input.features, "input": x, "output": cur,
                     "layers": layers_info, "head": head_info}
    return prog


def _check_state(state: str) -> None:
    if state not in STATES:
        raise EdgeRNNError(f"--state {state!r}: use one of {', '.join(STATES)}")


# --- the streaming form -----------------------------------------------------------------------

def build_streaming_program(model: ir.Model, state: str = "int16") -> Program:
    """The one-step program: input (1, 1, F) -> one output; states are variable tensors."""
    _check_state(state)
    if model.is_bidirectional:
        name = next(l.name for l in model.layers if l.kind == "bidirectional")
        raise EdgeRNNError(f"layer '{name}' is Bidirectional: its backward direction needs the whole window "
                           "before the first output, so it cannot stream; convert without --streaming")
    main = Graph("main")
    prog = Program([main])
    x = main.add("input", (1, 1, model.input.features))
    main.inputs = [x]
    cur, shape, is_seq = x, (1, 1, model.input.features), True
    layers_info, head_info = [], []
    for k, layer in enumerate(model.layers):
        if layer.kind not in ("recurrent", "bidirectional"):
            cur = _resolve(cur, layer)
        if layer.kind in LAYER_KINDS:
            cur, shape = write_layer(prog, main, layer, cur, shape, streaming=True)
            is_seq = len(shape) > 2
        elif layer.kind == "recurrent":
            _check_layer(layer)
            if layer.go_backwards:
                raise EdgeRNNError(f"layer '{layer.name}': go_backwards needs the whole window; it cannot stream")
            p = f"L{k}/"
            u = layer.units
            h = main.add(f"{p}h", (1, 1, u), state, variable=True)
            c = main.add(f"{p}c", (1, 1, u), state, variable=True) if layer.cell == "lstm" else None
            info = _layer_info(layer, "forward", None)
            info.update(subgraph=0)
            cells.step(prog, main, layer, p, cur, h, c, h, c, info, state)
            layers_info.append(info)
            stacked = k + 1 < len(model.layers) and model.layers[k + 1].kind == "recurrent"
            # the next layer of the stack reads the int16 h itself, as in the sequence form's loop;
            # a per-step head the int8 h (the sequence form's output sequence), a last-step head h
            if stacked:
                cur = h
            elif layer.return_sequences:
                cur = _int8_state(prog, main, layer, h, p, state)
            else:
                cur = _final(prog, main, layer, h, p, state)
            shape = (1, 1, u)
            is_seq = layer.return_sequences
        else:
            cur, shape = _head(prog, main, layer, cur, shape, is_seq, head_info)
    cur = _resolve(cur, None)
    main.outputs = [cur]
    prog.metadata = {"version": METADATA_VERSION, "form": "streaming", "timesteps": 1, "state": state,
                     "features": model.input.features, "input": x, "output": cur,
                     "layers": layers_info, "head": head_info}
    return prog


# --- quantize and write -----------------------------------------------------------------------

def _indices(program: Program) -> dict:
    """Replace tensor names in the metadata with indices into their subgraph."""
    meta = program.metadata
    main_idx = {n: i for i, n in enumerate(program.graphs[0].tensors)}

    def conv(v, idx):
        if v is None:
            return None
        if isinstance(v, list):
            return [conv(e, idx) for e in v]
        return idx[v]

    out = dict(meta)
    out["input"], out["output"] = main_idx[meta["input"]], main_idx[meta["output"]]
    layers = []
    for info in meta["layers"]:
        info = {k: v for k, v in info.items() if v is not None}
        idx = {n: i for i, n in enumerate(program.graphs[info["subgraph"]].tensors)}
        info["tensors"] = {k: conv(v, idx) for k, v in info["tensors"].items() if v is not None}
        layers.append(info)
    out["layers"] = layers
    out["head"] = [{k: (conv(v, main_idx) if k in ("kernel", "bias", "output") else v) for k, v in h.items()}
                   for h in meta["head"]]
    return out


def calibrate(model: ir.Model, calib: np.ndarray, state: str = "int16") -> tuple[Program, dict]:
    """The sequence program for calib's T and its quantization parameters (name -> QParams)."""
    x = np.asarray(calib, np.float32)
    prog = build_sequence_program(model, x.shape[1], state)
    ranges = Ranges()
    run_float(prog, {"input": x}, ranges)
    return prog, assign_quantization(prog, ranges)


def convert_recurrent(model: ir.Model, calib: np.ndarray, *, streaming: bool = False,
                      state: str = "int16", extra_metadata: dict[str, bytes] | None = None) -> bytes:
    """Int8 flatbuffer of ``model`` (sequence form, or streaming one-step form); ``extra_metadata``
    (name -> bytes) is written beside the ``"edgernn"`` entry."""
    prog, quant = calibrate(model, calib, state)
    if streaming:
        prog = build_streaming_program(model, state)
        quant = share_tied(prog, quant)  # the conv ring buffers: their input's parameters
    share_constants(prog, quant)
    if not streaming:
        prog.offline_plan = plan_offline(prog)  # reorders tensors: before the metadata's indices
    prog.metadata = _indices(prog)
    return write_flatbuffer(prog, quant, description=f"edgernn {prog.metadata['form']} {model.name}",
                            extra_metadata=extra_metadata)
