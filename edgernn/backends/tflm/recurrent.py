"""GRU / SimpleRNN / LSTM (and stacks, Bidirectional, per-step heads) as int8 TFLM graphs.

Why edgernn writes these graphs itself: the TFLite converter's int8 path crashes on GRU and
SimpleRNN loops (``unroll=False``) and ``unroll=True`` grows the flatbuffer with the sequence
length. So every recurrent layer becomes one ``WHILE`` op whose body is one time step made of
TFLM builtins only (FULLY_CONNECTED, ADD, SUB, MUL, LOGISTIC, TANH, SLICE,
DYNAMIC_UPDATE_SLICE); the flatbuffer size does not depend on T.

Two forms, from one description of the time step (:func:`_cell_step`) and one table of
quantization parameters (so they compute exactly the same int8 numbers):

* **sequence** (``convert``): input int8 ``(1, T, F)``, one int8 output, no custom ops.
  Main graph, per direction of each recurrent layer: ``WHILE(i, pos, h[, c], x_seq[, seq])``
  with a cond graph ``i < T`` and a body graph that slices ``x_t`` at ``pos = [0, t, 0]``, runs
  the cell, and (for ``return_sequences``) writes ``h`` into ``seq`` at ``pos``. Backward
  directions walk ``t`` from T-1 down to 0. Then Bidirectional merges (CONCATENATION or ADD)
  and the Dense head (FULLY_CONNECTED, SOFTMAX...), applied per step when the last recurrent
  layer returns sequences.
* **streaming** (``convert --streaming``): input int8 ``(1, 1, F)``, one output, the cell's
  step ops directly in the main graph. Each layer's state (``h``, and ``c`` for LSTM) is a
  TFLM *variable tensor* that the last op of the step writes in place: TFLM keeps it between
  ``invoke()`` calls and ``reset()`` sets it back to zero (its zero point). This is the same
  mechanism as the fused LSTM's state, so every cell streams with the same application code
  (set one sample, invoke, read the output; reset between sequences). Fed a sequence one
  sample at a time it gives bit-identical outputs to the sequence form: same ops, same
  parameters, same state scale. Bidirectional layers need the whole window and are refused.

Every loop-carried tensor (state, sequence buffers, counters) has one scale and zero point in
the main, cond and body graphs. LOGISTIC outputs are 1/256 & -128, TANH outputs 1/128 & 0
(what TFLM's int8 kernels require); the other activations come from a float run of this very
graph on the calibration data (:mod:`edgernn.quantize.calibrate`).

Costs: the flatbuffer holds the int8 weights plus about 5-6 KB of graph per direction of a
32-unit GRU layer, whatever T: :mod:`.serialize` writes shared shape vectors, quantization
and options tables once and no tensor names, and one weight zero point per tensor (which
TFLM expands per channel) keeps the per-channel tables short. TFLM's WHILE copies the loop-carried tensors (the input sequence
and, with ``return_sequences``, the output sequence) between the main, cond and body graphs at
every step, so the sequence form's arena and copy time grow with T; the streaming form's do
not (GRU(32) x 2 layers, 6 features: arena 19 KB at T=25, 35 KB at T=150, 13 KB streaming).

The model's flatbuffer metadata ``"edgernn"`` (JSON) maps the graph back to cells, see
:func:`metadata_doc`.
"""

from __future__ import annotations

import numpy as np

from ... import ir
from ...errors import EdgeRNNError
from ...quantize.calibrate import Ranges, run_float
from ...quantize.params import SATURATING_RANGE, TANH_OUT
from .graph import Graph, Program, assign_quantization, fixed_output, write_flatbuffer
from .layers import KINDS as LAYER_KINDS
from .layers import share_tied, write_layer

METADATA_VERSION = 1


def metadata_doc() -> str:
    """The format of the ``"edgernn"`` metadata entry (a UTF-8 JSON object).

    ``{"version": 1, "form": "sequence" | "streaming", "timesteps": T (1 when streaming),
    "features": F, "input": main-graph tensor index, "output": main-graph tensor index,
    "layers": [LAYER...], "head": [HEAD...]}``

    LAYER (one per direction of each recurrent layer, in execution order)::

        {"name": Keras layer name, "cell": "gru" | "rnn" | "lstm", "units": U, "input_dim": F_in,
         "reset_after": bool (GRU), "activation": "tanh" | "relu", "direction": "forward" |
         "backward", "return_sequences": bool, "bidirectional": wrapper name or null,
         "merge_mode": "concat" | "sum" | null,
         "subgraph": index of the subgraph holding the step ops (the WHILE body; 0 when streaming),
         "cond_subgraph": WHILE cond index or null, "while_op": index of the WHILE op in subgraph 0
         or null,
         "gates": gate order (Keras'): GRU ["z", "r", "h"], LSTM ["i", "f", "c", "o"], RNN ["h"],
         "tensors": {"kernel": [per gate, (U, F_in) int8 per-channel], "recurrent_kernel":
         [per gate, (U, U)], "bias": [per gate int32 or null], "recurrent_bias": [per gate
         int32 or null; GRU reset_after only], "input": x_t, "state": h read by the step,
         "state_out": h written by the step, "cell_state"/"cell_state_out": LSTM c or null,
         "gate_out": [per gate: the activated gate tensor]}}

    All tensor indices in LAYER ``tensors`` are in ``subgraph``. HEAD entries are
    ``{"name", "kind": "dense", "kernel", "bias", "output", "activation"}`` or
    ``{"name", "kind": "activation", "output", "activation"}``, indices in subgraph 0.
    """
    return metadata_doc.__doc__


# --- building blocks --------------------------------------------------------------------------

def _fc(g: Graph, name: str, x: str, w_in_out: np.ndarray, b: np.ndarray | None, out_shape, *,
        fused: str | None = None, keep_num_dims: bool = False) -> tuple[str, str, str | None]:
    w = g.add(f"{name}/w", w_in_out.T.shape, data=np.ascontiguousarray(w_in_out.T), role="weight")
    bn = None
    if b is not None:
        bn = g.add(f"{name}/b", np.shape(b), "int32", data=np.asarray(b, np.float32), role="bias",
                   bias_of=(x, w))
    out = g.add(name, out_shape)
    # keep_num_dims whenever the output keeps the input's rank (the (1, 1, units) step tensors):
    # TFLM takes the stored shape either way, but desktop TF Lite re-derives it from this flag and
    # would flatten (1, 1, n) to (1, n), which its DYNAMIC_UPDATE_SLICE then refuses.
    keep_num_dims = keep_num_dims or len(out_shape) == len(g.tensors[x].shape)
    g.op("FULLY_CONNECTED", [x, w, bn], [out], out_shape=tuple(out_shape), fused=fused,
         keep_num_dims=keep_num_dims)
    return out, w, bn


def _out(g: Graph, name: str, shape, dtype: str = "int8") -> str:
    """A new output tensor, or the existing state variable the step writes in place."""
    if name in g.tensors and g.tensors[name].variable:
        return name
    if (name in g.tensors and g.tensors[name].role == "act" and name not in g.inputs
            and not any(name in op.outputs for op in g.ops)):
        return name  # declared ahead by the caller (h_new / c_new), not yet written
    return g.add(name, shape, dtype)


def _unary(prog: Program, g: Graph, code: str, x: str, name: str, shape, *, x_only_here: bool = False) -> str:
    """``out = code(x)``; ``x_only_here``: no other op reads x, so its range may be clipped."""
    out = _out(g, name, shape)
    g.op(code, [x], [out])
    q = fixed_output(code)
    if q is not None:
        prog.fixed[out] = q
    if x_only_here and code in SATURATING_RANGE:
        prog.clip[x] = SATURATING_RANGE[code]
    return out


def _binary(g: Graph, code: str, a: str, b: str, name: str, shape, fused: str | None = None,
            dtype: str = "int8") -> str:
    out = _out(g, name, shape, dtype)
    g.op(code, [a, b], [out], fused=fused)
    return out


def _cell_step(prog: Program, g: Graph, layer: ir.Recurrent, p: str, x: str, h: str, c: str | None,
               h_out: str, c_out: str | None, info: dict) -> None:
    """Append one time step of ``layer`` to ``g``: reads x, h (c), writes h_out (c_out).

    ``h_out`` may equal ``h`` (streaming: the state variable is written in place by the last
    op, after every read of the old value).
    """
    u = layer.units
    s = (1, 1, u)
    k, r, b = layer.kernel, layer.recurrent_kernel, layer.bias
    t = info.setdefault("tensors", {})
    kern, rkern, bias, rbias, gates = [], [], [], [], []

    def gate_pre(gi: int, gname: str, rec_bias: bool, rec_input: str | None = None):
        sl = slice(gi * u, (gi + 1) * u)
        in_b = b[0, sl] if b.ndim == 2 else b[sl]
        xo, xw, xb = _fc(g, f"{p}x{gname}", x, k[:, sl], in_b, s)
        kern.append(xw)
        bias.append(xb)
        if rec_input is None:
            rb = b[1, sl] if rec_bias else None
            ho, hw, hb = _fc(g, f"{p}h{gname}", h, r[:, sl], rb, s)
            rkern.append(hw)
            rbias.append(hb)
            return xo, ho
        return xo, None

    if layer.cell == "gru":
        ra = layer.reset_after
        z = _unary(prog, g, "LOGISTIC", _binary(g, "ADD", *gate_pre(0, "z", ra), f"{p}z_pre", s), f"{p}z", s,
                   x_only_here=True)
        rg = _unary(prog, g, "LOGISTIC", _binary(g, "ADD", *gate_pre(1, "r", ra), f"{p}r_pre", s), f"{p}r", s,
                    x_only_here=True)
        if ra:  # hh = tanh(W_h x + b_h + r * (U_h h + b_rh))
            xh, hh = gate_pre(2, "h", True)
            rhh = _binary(g, "MUL", rg, hh, f"{p}r_hh", s)
        else:  # hh = tanh(W_h x + b_h + U_h (r * h))
            xh, _ = gate_pre(2, "h", False, rec_input="rh")
            rh = _binary(g, "MUL", rg, h, f"{p}rh", s)
            rhh, hw, _ = _fc(g, f"{p}hh", rh, r[:, 2 * u:], None, s)
            rkern.append(hw)
            rbias.append(None)
        hc = _unary(prog, g, "TANH", _binary(g, "ADD", xh, rhh, f"{p}hc_pre", s), f"{p}hc", s, x_only_here=True)
        d = _binary(g, "SUB", h, hc, f"{p}h_minus_hc", s)
        zd = _binary(g, "MUL", z, d, f"{p}z_d", s)
        _binary(g, "ADD", hc, zd, h_out, s)  # h' = z*h + (1-z)*hh = hh + z*(h - hh)
        gates = [z, rg, hc]
    elif layer.cell == "rnn":
        xo, ho = gate_pre(0, "h", False)
        if layer.activation == "relu":
            _binary(g, "ADD", xo, ho, h_out, s, fused="RELU")
            gates = [h_out]
        else:
            pre = _binary(g, "ADD", xo, ho, f"{p}h_pre", s)
            gates = [_unary(prog, g, "TANH", pre, h_out, s, x_only_here=True)]
    elif layer.cell == "lstm":
        acts = []
        for gi, gname in enumerate("ifco"):
            pre = _binary(g, "ADD", *gate_pre(gi, gname, False), f"{p}{gname}_pre", s)
            acts.append(_unary(prog, g, "TANH" if gname == "c" else "LOGISTIC", pre, f"{p}{gname}_gate", s,
                               x_only_here=True))
        i_, f_, g_, o_ = acts
        fc_ = _binary(g, "MUL", f_, c, f"{p}f_c", s)
        ig = _binary(g, "MUL", i_, g_, f"{p}i_g", s)
        _binary(g, "ADD", fc_, ig, c_out, s)  # c' = f*c + i*g
        tc = _unary(prog, g, "TANH", c_out, f"{p}tanh_c", s)
        _binary(g, "MUL", o_, tc, h_out, s)  # h' = o * tanh(c')
        gates = acts
    else:  # pragma: no cover - the IR checks cells
        raise AssertionError(layer.cell)
    if layer.cell in ("gru", "lstm"):
        # |h| < 1 (a blend of tanh values / a sigmoid times a tanh): the state gets TANH's
        # own symmetric 1/128 scale, exact zero, nothing clipped however long the stream runs
        prog.fixed[h_out] = TANH_OUT
    t.update(kernel=kern, recurrent_kernel=rkern, bias=bias,
             recurrent_bias=rbias if (layer.cell == "gru" and layer.reset_after) else None,
             input=x, state=h, state_out=h_out, cell_state=c, cell_state_out=c_out, gate_out=gates)


def _layer_info(layer: ir.Recurrent, direction: str, wrapper: ir.Bidirectional | None) -> dict:
    return {"name": wrapper.name if wrapper else layer.name, "cell": layer.cell, "units": layer.units,
            "input_dim": layer.input_dim, "reset_after": bool(layer.reset_after) if layer.cell == "gru" else None,
            "activation": layer.activation, "direction": direction,
            "return_sequences": bool(layer.return_sequences),
            "bidirectional": wrapper.name if wrapper else None,
            "merge_mode": wrapper.merge_mode if wrapper else None,
            "gates": {"gru": ["z", "r", "h"], "lstm": ["i", "f", "c", "o"], "rnn": ["h"]}[layer.cell]}


def _check_layer(layer: ir.Recurrent) -> None:
    if layer.cell == "rnn" and layer.activation not in ("tanh", "relu"):
        raise EdgeRNNError(f"layer '{layer.name}': SimpleRNN activation '{layer.activation}' is not supported; "
                           "use 'tanh' or 'relu'")
    if layer.cell != "rnn" and (layer.activation != "tanh" or layer.recurrent_activation != "sigmoid"):
        raise EdgeRNNError(f"layer '{layer.name}': only activation='tanh', recurrent_activation='sigmoid' "
                           "are supported for GRU/LSTM")


# --- the sequence form ------------------------------------------------------------------------

def _while_layer(prog: Program, main: Graph, layer: ir.Recurrent, p: str, x_seq: str, t_steps: int,
                 reverse: bool, info: dict) -> tuple[str, str | None]:
    u, f = layer.units, layer.input_dim
    lstm = layer.cell == "lstm"
    seq = layer.return_sequences
    cond, body = Graph(f"{p}cond"), Graph(f"{p}body")
    prog.graphs += [cond, body]
    ci, bi = len(prog.graphs) - 2, len(prog.graphs) - 1

    # main: initial values of the loop-carried tensors
    i0 = main.const_i32(f"{p}i0", [0])
    pos0 = main.const_i32(f"{p}pos0", [0, t_steps - 1 if reverse else 0, 0])
    h0 = main.add(f"{p}h0", (1, 1, u), data=np.zeros((1, 1, u), np.float32), role="state")
    c0 = main.add(f"{p}c0", (1, 1, u), data=np.zeros((1, 1, u), np.float32), role="state") if lstm else None
    seq0 = None
    if seq:
        dims = main.const_i32(f"{p}seq_dims", [1, t_steps, u])
        zero = main.add(f"{p}seq_fill", (), data=np.zeros((), np.float32), role="fill_value")
        seq0 = main.add(f"{p}seq0", (1, t_steps, u))
        main.op("FILL", [dims, zero], [seq0])
        prog.tie(seq0, zero)
    carried = [("i", (1,), "int32"), ("pos", (3,), "int32"), ("h", (1, 1, u), "int8")]
    if lstm:
        carried.append(("c", (1, 1, u), "int8"))
    carried.append(("x", (1, t_steps, f), "int8"))
    if seq:
        carried.append(("seq", (1, t_steps, u), "int8"))
    init = {"i": i0, "pos": pos0, "h": h0, "c": c0, "x": x_seq, "seq": seq0}

    # cond: i < T
    for key, shape, dt in carried:
        cond.inputs.append(cond.add(f"{p}cond/{key}", shape, dt))
    t_const = cond.const_i32(f"{p}cond/T", [t_steps])
    keep = cond.add(f"{p}cond/keep_going", (1,), "bool")
    cond.op("LESS", [f"{p}cond/i", t_const], [keep])
    cond.outputs = [keep]

    # body: one time step
    names = {}
    for key, shape, dt in carried:
        names[key] = body.add(f"{p}{key}", shape, dt)
        body.inputs.append(names[key])
    one = body.const_i32(f"{p}one", [1])
    step = body.const_i32(f"{p}pos_step", [0, -1 if reverse else 1, 0])
    size = body.const_i32(f"{p}x_size", [1, 1, f])
    i1 = _binary(body, "ADD", names["i"], one, f"{p}i_next", (1,), dtype="int32")
    x_t = body.add(f"{p}x_t", (1, 1, f))
    body.op("SLICE", [names["x"], names["pos"], size], [x_t])
    h_new = body.add(f"{p}h_new", (1, 1, u))
    c_new = body.add(f"{p}c_new", (1, 1, u)) if lstm else None
    _cell_step(prog, body, layer, p, x_t, names["h"], names.get("c"), h_new, c_new, info)
    pos1 = _binary(body, "ADD", names["pos"], step, f"{p}pos_next", (3,), dtype="int32")
    outs = {"i": i1, "pos": pos1, "h": h_new, "c": c_new, "x": names["x"]}
    if seq:
        seq1 = body.add(f"{p}seq_next", (1, t_steps, u))
        body.op("DYNAMIC_UPDATE_SLICE", [names["seq"], h_new, names["pos"]], [seq1])
        outs["seq"] = seq1
    body.outputs = [outs[key] for key, _, _ in carried]

    # main: the WHILE op
    results = {}
    for key, shape, dt in carried:
        results[key] = main.add(f"{p}out/{key}", shape, dt)
    main.op("WHILE", [init[key] for key, _, _ in carried], [results[key] for key, _, _ in carried],
            cond=ci, body=bi)
    info.update(subgraph=bi, cond_subgraph=ci, while_op=len(main.ops) - 1)
    for key, _, dt in carried:
        if dt == "int8":
            group = [init[key], f"{p}cond/{key}", names[key], outs[key], results[key]]
            if key == "x":
                group.append(x_t)
            if key == "seq":
                group.append(h_new)
            prog.tie(*group)
    return results["h"], results.get("seq")


def _head(prog: Program, g: Graph, layer, cur: str, shape: tuple, per_step: bool, info: list) -> tuple[str, tuple]:
    if layer.kind == "dense":
        n = layer.units
        out_shape = shape[:-1] + (n,) if per_step else (1, n)
        fused = "RELU" if layer.activation == "relu" else None
        out, w, b = _fc(g, f"{layer.name}/dense", cur, layer.kernel, layer.bias, out_shape, fused=fused,
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
    cur = _unary(prog, g, code, cur, f"{layer.name}/{act}", shape)
    entry["output"] = cur
    return cur, shape


def build_sequence_program(model: ir.Model, t_steps: int) -> Program:
    """The whole-sequence program: input (1, T, F) -> one output."""
    main = Graph("main")
    prog = Program([main])
    x = main.add("input", (1, t_steps, model.input.features))
    main.inputs = [x]
    cur, shape, is_seq = x, (1, t_steps, model.input.features), True
    layers_info, head_info = [], []
    for k, layer in enumerate(model.layers):
        if layer.kind in LAYER_KINDS:  # conv front-ends, pooling, reshapes (.layers)
            cur, shape = write_layer(prog, main, layer, cur, shape)
            is_seq = len(shape) > 2
        elif layer.kind in ("recurrent", "bidirectional"):
            if not is_seq:
                raise EdgeRNNError(f"layer '{layer.name}' follows a layer that dropped the time axis")
            t_in = shape[1]  # a conv front-end or pooling may have changed the length
            if layer.kind == "recurrent":
                _check_layer(layer)
                info = _layer_info(layer, "backward" if layer.go_backwards else "forward", None)
                h, sq = _while_layer(prog, main, layer, f"L{k}/", cur, t_in, layer.go_backwards, info)
                layers_info.append(info)
                u = layer.units
            else:
                outs = []
                for d, sub in (("f", layer.forward), ("b", layer.backward)):
                    _check_layer(sub)
                    info = _layer_info(sub, "forward" if d == "f" else "backward", layer)
                    outs.append(_while_layer(prog, main, sub, f"L{k}{d}/", cur, t_in, d == "b", info))
                    layers_info.append(info)
                u = layer.forward.units
                pick = 1 if layer.return_sequences else 0
                a, b = outs[0][pick], outs[1][pick]
                mshape = (1, t_in, u) if layer.return_sequences else (1, 1, u)
                if layer.merge_mode == "concat":
                    mshape = mshape[:-1] + (2 * u,)
                    merged = main.add(f"L{k}/concat", mshape)
                    main.op("CONCATENATION", [a, b], [merged], axis=2)
                    prog.tie(a, b, merged)
                else:
                    merged = _binary(main, "ADD", a, b, f"L{k}/sum", mshape)
                h = sq = merged
                u = mshape[-1]
            if layer.return_sequences:
                cur, shape = sq, (1, t_in, u)
            else:
                cur, shape, is_seq = h, (1, 1, u), False
        else:
            cur, shape = _head(prog, main, layer, cur, shape, is_seq, head_info)
    main.outputs = [cur]
    prog.metadata = {"version": METADATA_VERSION, "form": "sequence", "timesteps": t_steps,
                     "features": model.input.features, "input": x, "output": cur,
                     "layers": layers_info, "head": head_info}
    return prog


# --- the streaming form -----------------------------------------------------------------------

def build_streaming_program(model: ir.Model) -> Program:
    """The one-step program: input (1, 1, F) -> one output; states are variable tensors."""
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
        if layer.kind in LAYER_KINDS:
            cur, shape = write_layer(prog, main, layer, cur, shape, streaming=True)
            is_seq = len(shape) > 2
        elif layer.kind == "recurrent":
            _check_layer(layer)
            if layer.go_backwards:
                raise EdgeRNNError(f"layer '{layer.name}': go_backwards needs the whole window; it cannot stream")
            p = f"L{k}/"
            u = layer.units
            h = main.add(f"{p}h", (1, 1, u), variable=True)
            c = main.add(f"{p}c", (1, 1, u), variable=True) if layer.cell == "lstm" else None
            info = _layer_info(layer, "forward", None)
            info.update(subgraph=0, cond_subgraph=None, while_op=None)
            _cell_step(prog, main, layer, p, cur, h, c, h, c, info)
            layers_info.append(info)
            cur, shape = h, (1, 1, u)
            is_seq = layer.return_sequences
        else:
            cur, shape = _head(prog, main, layer, cur, shape, is_seq, head_info)
    main.outputs = [cur]
    prog.metadata = {"version": METADATA_VERSION, "form": "streaming", "timesteps": 1,
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
        info = dict(info)
        idx = {n: i for i, n in enumerate(program.graphs[info["subgraph"]].tensors)}
        info["tensors"] = {k: conv(v, idx) for k, v in info["tensors"].items()}
        layers.append(info)
    out["layers"] = layers
    out["head"] = [{k: (conv(v, main_idx) if k in ("kernel", "bias", "output") else v) for k, v in h.items()}
                   for h in meta["head"]]
    return out


def calibrate(model: ir.Model, calib: np.ndarray) -> tuple[Program, dict]:
    """The sequence program for calib's T and its int8 parameters (name -> QParams)."""
    x = np.asarray(calib, np.float32)
    prog = build_sequence_program(model, x.shape[1])
    ranges = Ranges()
    run_float(prog, {"input": x}, ranges)
    return prog, assign_quantization(prog, ranges)


def convert_recurrent(model: ir.Model, calib: np.ndarray, *, streaming: bool = False,
                      extra_metadata: dict[str, bytes] | None = None) -> bytes:
    """Int8 flatbuffer of ``model`` (sequence form, or streaming one-step form); ``extra_metadata``
    (name -> bytes) is written beside the ``"edgernn"`` entry."""
    prog, quant = calibrate(model, calib)
    if streaming:
        prog = build_streaming_program(model)
        quant = share_tied(prog, quant)  # the conv ring buffers: their input's parameters
    prog.metadata = _indices(prog)
    return write_flatbuffer(prog, quant, description=f"edgernn {prog.metadata['form']} {model.name}",
                            extra_metadata=extra_metadata)
