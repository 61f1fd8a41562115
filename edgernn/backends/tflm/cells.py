"""One time step of a GRU / SimpleRNN / LSTM cell as TFLM builtin ops (the WHILE body, or the
main graph of a streaming model). Two layouts, chosen by ``convert --state``:

``int16`` (the default): the recurrent state and the step arithmetic in int16
    ``x_t`` (int8) is CAST to int16 (the int8 zero point folded into the input-side bias), then
    **one FULLY_CONNECTED per input side** computes every gate at once (int8 weights, int64
    bias, int16 out: TFLM's "16x8" kernel), and SPLIT / SPLIT_V cut the result into gates::

      GRU    X_zr = FC(x16) [z r]  X_h = FC(x16) [h]  H_zr = FC(h) [z r]  H_h = FC(h) [h]
             zr = LOGISTIC(X_zr + H_zr);  z, r = SPLIT(zr)   (reset_after; else hh = FC(r * h) [h])
             hc = TANH(X[h] + r * H_h);  h' = hc + z * (h - hc)

    (a GRU's recurrent z and r biases are folded into X_zr's: an int64 bias costs 8 bytes a row;
    X_zr and X_h share one output scale, so they equal one FC over [z r h] cut by SPLIT_V)
      LSTM   pre = FC(x16) + FC(h), rows [i f o c]  (reordered from Keras' i f c o)
             ifo = LOGISTIC(pre[ifo]);  g = TANH(pre[c]);  i, f, o = SPLIT(ifo)
             c' = f * c + i * g;  h' = o * TANH(c')
      RNN    h' = TANH(FC(x16) + FC(h))   (relu: ADD with a fused RELU)

    Every int16 tensor is symmetric (zero point 0); LOGISTIC / TANH outputs, the bounded
    hidden states and the LSTM's i * g are Q15 (2^-15); the LSTM's f * c shares c's scale,
    which covers twice the calibrated range (``CELL_HEADROOM``).

    SUM_SCALE: the two FC outputs an ADD sums share one scale (a GRU's candidate terms join its
    z / r ones), and the sum takes that scale over 2^j, ranging over its activation's saturating
    range where the terms range further (:func:`.graph._sum_scales`); a GRU's z * (h - hc) is
    on (h - hc)'s 2^-14. Every ratio TFLM's ADD derives is then a power of two and the ADD an
    exact integer sum (``(a + b) 2^j``, ``hc + 2 zd`` for h'): the native backend's add and
    saturation, and its activation tables need no clamp.

    The layer's int8 output (the sequence the next layer reads, a final state read by anything
    but a Dense) is a QUANTIZE of h; within a stack of layers (one WHILE loop, or consecutive
    layers of a streaming model) the next layer reads the int16 h itself, and so does a Dense
    head on the final state (FULLY_CONNECTED 16x8, :mod:`.recurrent`).

    Such a GRU or LSTM layer (SHARED_SCALES, :func:`shares_row_scales`), reading a Q15 h below,
    quantizes its input-side and recurrent-side matrices with one scale per
    gate row (the larger of the two rows' ``max|w| / 127``, as if [W | U] were one matrix): both
    sides multiply values on the same grid, and the file holds one per-channel table for the
    two FCs (4 x GRU(32): -1.2 KB). The first layer (int8 x at the input's scale) keeps its own.
``int8``: every tensor int8, one FULLY_CONNECTED per gate and side (the layout before issue
    15). A merged FULLY_CONNECTED would give all gates one int8 output scale, which costs a bit
    of the narrower gates; in int16 it costs nothing measurable.
"""

from __future__ import annotations

import numpy as np

from ... import ir
from ...quantize.params import CELL_HEADROOM, Q15, SATURATING_RANGE, SATURATING_RANGE_INT16, TANH_OUT, QParams
from .graph import Graph, Program, fixed_output

STATES = ("int16", "int8")
# A GRU's h - hc lies in (-2, 2); its output scale is a power of two (and both inputs share
# TANH's scale), so every ratio TFLM's SUB Prepare computes is exact: some TFLM versions
# compute them in float32, others in double (ADD: double), with different roundings otherwise.
SUB_OUT = QParams((1.0 / 64,), (0,))
SUB_OUT16 = QParams((2.0 ** -14,), (0,))
LSTM_ROWS = "ifoc"  # the int16 layout's gate order in the merged LSTM weights


# --- building blocks --------------------------------------------------------------------------

def fc(g: Graph, name: str, x: str, w_in_out: np.ndarray, b: np.ndarray | None, out_shape, *,
       fused: str | None = None, keep_num_dims: bool = False, dtype: str = "int8",
       scale_with: str | None = None) -> tuple[str, str, str | None]:
    """``out = x @ w_in_out + b``: int8 weights (per output channel); int32 bias (int64 and an
    int16 output when ``dtype`` is int16). ``scale_with``: a weight tensor whose per-channel
    scales these rows share (:func:`.graph.quantized_weights`)."""
    w = g.add(f"{name}/w", w_in_out.T.shape, data=np.ascontiguousarray(w_in_out.T), role="weight",
              scale_with=scale_with)
    bn = None
    if b is not None:
        bn = g.add(f"{name}/b", np.shape(b), "int64" if dtype == "int16" else "int32",
                   data=np.asarray(b, np.float32), role="bias", bias_of=(x, w))
    out = g.add(name, out_shape, dtype)
    # keep_num_dims whenever the output keeps the input's rank (the (1, 1, units) step tensors):
    # TFLM takes the stored shape either way, but desktop TF Lite re-derives it from this flag and
    # would flatten (1, 1, n) to (1, n), which its SPLIT / DYNAMIC_UPDATE_SLICE then refuse.
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


def unary(prog: Program, g: Graph, code: str, x: str, name: str, shape, *, x_only_here: bool = False,
          dtype: str = "int8") -> str:
    """``out = code(x)``; ``x_only_here``: no other op reads x, so its range may be clipped."""
    out = _out(g, name, shape, dtype)
    g.op(code, [x], [out])
    q = fixed_output(code, dtype)
    if q is not None:
        prog.fixed[out] = q
    limits = SATURATING_RANGE_INT16 if dtype == "int16" else SATURATING_RANGE
    if x_only_here and code in limits:
        prog.clip[x] = limits[code]
    return out


def binary(g: Graph, code: str, a: str, b: str, name: str, shape, fused: str | None = None,
           dtype: str = "int8") -> str:
    out = _out(g, name, shape, dtype)
    g.op(code, [a, b], [out], fused=fused)
    return out


def split(prog: Program, g: Graph, x: str, sizes: list[int], names: list[str], dtype: str) -> list[str]:
    """Cut the last axis of ``x`` into parts (SPLIT when equal, else SPLIT_V): raw copies, so
    every part has ``x``'s quantization."""
    outs = [g.add(n, (1, 1, k), dtype) for n, k in zip(names, sizes)]
    axis = g.const_i32(f"{names[0]}/axis", [2])
    if len(set(sizes)) == 1:
        g.op("SPLIT", [axis, x], outs)
    else:
        g.op("SPLIT_V", [x, g.const_i32(f"{names[0]}/sizes", sizes), axis], outs)
    prog.tie(x, *outs)
    return outs


def cast16(prog: Program, g: Graph, x8: str, name: str) -> str:
    """int8 -> int16 by CAST (the values unchanged; see :mod:`.graph` for the zero point)."""
    shape = g.tensors[x8].shape if x8 in g.tensors else None
    out = g.add(name, shape, "int16")
    g.op("CAST", [x8], [out])
    prog.cast_source[out] = x8
    return out


def quantize(prog: Program, g: Graph, x: str, name: str, shape, fixed=None, dtype: str = "int8") -> str:
    out = _out(g, name, shape, dtype)
    g.op("QUANTIZE", [x], [out])
    if fixed is not None:
        prog.fixed[out] = fixed
    return out


def int8_output_grid(layer: ir.Recurrent):
    """The int8 quantization of a layer's output h: TANH's 1/128 grid when |h| < 1."""
    return None if (layer.cell == "rnn" and layer.activation == "relu") else TANH_OUT


# --- the int8 layout: one FULLY_CONNECTED per gate and side -------------------------------------

def step_int8(prog: Program, g: Graph, layer: ir.Recurrent, p: str, x: str, h: str, c: str | None,
              h_out: str, c_out: str | None, info: dict) -> None:
    """Append one int8 time step of ``layer`` to ``g``: reads x, h (c), writes h_out (c_out).

    ``h_out`` may equal ``h`` (streaming: the state variable is written in place by the last
    op, after every read of the old value).
    """
    u = layer.units
    s = (1, 1, u)
    k, r, b = layer.kernel, layer.recurrent_kernel, layer.bias
    t = info.setdefault("tensors", {})
    kern, rkern = [], []

    def gate_pre(gi: int, gname: str, rec_bias: bool, rec_input: str | None = None):
        sl = slice(gi * u, (gi + 1) * u)
        in_b = b[0, sl] if b.ndim == 2 else b[sl]
        xo, xw, _ = fc(g, f"{p}x{gname}", x, k[:, sl], in_b, s)
        kern.append(xw)
        if rec_input is None:
            rb = b[1, sl] if rec_bias else None
            ho, hw, _ = fc(g, f"{p}h{gname}", h, r[:, sl], rb, s)
            rkern.append(hw)
            return xo, ho
        return xo, None

    if layer.cell == "gru":
        ra = layer.reset_after
        z = unary(prog, g, "LOGISTIC", binary(g, "ADD", *gate_pre(0, "z", ra), f"{p}z_pre", s), f"{p}z", s,
                  x_only_here=True)
        rg = unary(prog, g, "LOGISTIC", binary(g, "ADD", *gate_pre(1, "r", ra), f"{p}r_pre", s), f"{p}r", s,
                   x_only_here=True)
        if ra:  # hh = tanh(W_h x + b_h + r * (U_h h + b_rh))
            xh, hh = gate_pre(2, "h", True)
            rhh = binary(g, "MUL", rg, hh, f"{p}r_hh", s)
        else:  # hh = tanh(W_h x + b_h + U_h (r * h))
            xh, _ = gate_pre(2, "h", False, rec_input="rh")
            rh = binary(g, "MUL", rg, h, f"{p}rh", s)
            rhh, hw, _ = fc(g, f"{p}hh", rh, r[:, 2 * u:], None, s)
            rkern.append(hw)
        hc = unary(prog, g, "TANH", binary(g, "ADD", xh, rhh, f"{p}hc_pre", s), f"{p}hc", s, x_only_here=True)
        d = binary(g, "SUB", h, hc, f"{p}h_minus_hc", s)
        prog.fixed[d] = SUB_OUT  # see SUB_OUT
        zd = binary(g, "MUL", z, d, f"{p}z_d", s)
        binary(g, "ADD", hc, zd, h_out, s)  # h' = z*h + (1-z)*hh = hh + z*(h - hh)
    elif layer.cell == "rnn":
        xo, ho = gate_pre(0, "h", False)
        if layer.activation == "relu":
            binary(g, "ADD", xo, ho, h_out, s, fused="RELU")
        else:
            pre = binary(g, "ADD", xo, ho, f"{p}h_pre", s)
            unary(prog, g, "TANH", pre, h_out, s, x_only_here=True)
    elif layer.cell == "lstm":
        acts = []
        for gi, gname in enumerate("ifco"):
            pre = binary(g, "ADD", *gate_pre(gi, gname, False), f"{p}{gname}_pre", s)
            acts.append(unary(prog, g, "TANH" if gname == "c" else "LOGISTIC", pre, f"{p}{gname}_gate", s,
                              x_only_here=True))
        i_, f_, g_, o_ = acts
        fc_ = binary(g, "MUL", f_, c, f"{p}f_c", s)
        ig = binary(g, "MUL", i_, g_, f"{p}i_g", s)
        binary(g, "ADD", fc_, ig, c_out, s)  # c' = f*c + i*g
        tc = unary(prog, g, "TANH", c_out, f"{p}tanh_c", s)
        binary(g, "MUL", o_, tc, h_out, s)  # h' = o * tanh(c')
    else:  # pragma: no cover - the IR checks cells
        raise AssertionError(layer.cell)
    if layer.cell in ("gru", "lstm"):
        # |h| < 1 (a blend of tanh values / a sigmoid times a tanh): the state gets TANH's
        # own symmetric 1/128 scale, exact zero, nothing clipped however long the stream runs
        prog.fixed[h_out] = TANH_OUT
    t.update(kernel=kern, recurrent_kernel=rkern, state=h, state_out=h_out, cell_state=c, cell_state_out=c_out)


# --- the int16 layout: one FULLY_CONNECTED per input side ------------------------------------

def q15_state(layer: ir.Recurrent) -> bool:
    """The int16 layout keeps the layer's h on the Q15 grid (|h| < 1: not a relu SimpleRNN)."""
    return layer.cell in ("gru", "lstm") or layer.activation == "tanh"


def shares_row_scales(layer: ir.Recurrent, below: ir.Layer | None) -> bool:
    """SHARED_SCALES: in the int16 layout, a GRU or LSTM ``layer`` reads the Q15 h of the
    recurrent layer ``below`` it in a stack (no int8 between them). Not a SimpleRNN: its stacks
    are small anyway (4 x SimpleRNN(32): 7 KB over the weights), and on the bench's 2-layer one
    a shared scale moved one short-sequence outlier (p99 at T=25 0.127 -> 0.231, p95 equal)."""
    return (isinstance(below, ir.Recurrent) and isinstance(layer, ir.Recurrent)
            and q15_state(below) and layer.cell in ("gru", "lstm"))


def _lstm_rows(a: np.ndarray) -> np.ndarray:
    """Keras' LSTM gate blocks i f c o (last axis) reordered to i f o c."""
    u = a.shape[-1] // 4
    i, f, c, o = (a[..., j * u:(j + 1) * u] for j in range(4))
    return np.concatenate([i, f, o, c], axis=-1)


def step_int16(prog: Program, g: Graph, layer: ir.Recurrent, p: str, x: str, h: str, c: str | None,
               h_out: str, c_out: str | None, info: dict) -> None:
    """Append one int16-state time step of ``layer`` to ``g`` (layout in the module docstring).

    ``x`` is int8 ``(1, 1, F)`` (or the int16 h of the layer below in a stack); ``h`` / ``c``
    and ``h_out`` / ``c_out`` are int16 ``(1, 1, U)``
    (``h_out`` may be ``h``: the streaming form writes the state variable in place, last).
    """
    u, a16 = layer.units, "int16"
    s = (1, 1, u)
    k, r, b = layer.kernel, layer.recurrent_kernel, layer.bias
    t = info.setdefault("tensors", {})
    # an int8 x_t is CAST; the int16 h of the layer below in the same loop is read as it is
    x16 = x if g.tensors[x].dtype == "int16" else cast16(prog, g, x, f"{p}x16")
    # both sides read Q15 states: the recurrent rows take the input rows' scales (SHARED_SCALES)
    shared = prog.fixed.get(x16) == Q15 and layer.cell in ("gru", "lstm")

    def rec_fc(name, h_in, w_in_out, bias, shape, x_weight):
        return fc(g, name, h_in, w_in_out, bias, shape, dtype=a16, scale_with=x_weight if shared else None)
    if layer.cell == "gru":
        ra = layer.reset_after
        # reset_after: the recurrent bias of z and r moves to the input side (the same sum);
        # only h's stays inside r * (U_h h + b_rh), so H is two FCs, zr without a bias
        bx = b[0] + np.concatenate([b[1][:2 * u], np.zeros(u, np.float32)]) if ra else b
        # the input side as two FCs (z r, then h) with one output scale, as one FC + SPLIT_V
        # would compute them bit for bit: their row counts are the recurrent side's, so the
        # per-channel zero-point vectors (8 B a row, written once per length) are shared
        x_zr, xw, _ = fc(g, f"{p}X_zr", x16, k[:, :2 * u], bx[:2 * u], (1, 1, 2 * u), dtype=a16)
        x_h, xw2, _ = fc(g, f"{p}X_h", x16, k[:, 2 * u:], bx[2 * u:], s, dtype=a16)
        prog.tie(x_zr, x_h)
        kern = [xw, xw2]
        h_zr, hw, _ = rec_fc(f"{p}H_zr", h, r[:, :2 * u], None, (1, 1, 2 * u), xw)
        rec = [hw]
        if ra:
            h_h, hw2, _ = rec_fc(f"{p}H_h", h, r[:, 2 * u:], b[1][2 * u:], s, xw2)
            rec.append(hw2)
        zr_pre = binary(g, "ADD", x_zr, h_zr, f"{p}zr_pre", (1, 1, 2 * u), dtype=a16)
        zr = unary(prog, g, "LOGISTIC", zr_pre, f"{p}zr", (1, 1, 2 * u), x_only_here=True, dtype=a16)
        z, rg = split(prog, g, zr, [u, u], [f"{p}z", f"{p}r"], a16)
        if ra:  # hh = tanh(W_h x + b_h + r * (U_h h + b_rh))
            rhh = binary(g, "MUL", rg, h_h, f"{p}r_hh", s, dtype=a16)
        else:  # hh = tanh(W_h x + b_h + U_h (r * h))
            rh = binary(g, "MUL", rg, h, f"{p}rh", s, dtype=a16)
            rhh, hw2, _ = rec_fc(f"{p}hh", rh, r[:, 2 * u:], None, s, xw2)
            rec.append(hw2)
        hc_pre = binary(g, "ADD", x_h, rhh, f"{p}hc_pre", s, dtype=a16)
        # every pre-activation term on one scale, the sums on it over 2^j (SUM_SCALE)
        prog.tie(x_zr, h_zr, x_h, rhh, *([h_h] if ra else []))
        prog.sums.update({zr_pre: x_zr, hc_pre: x_zr})
        hc = unary(prog, g, "TANH", hc_pre, f"{p}hc", s, x_only_here=True, dtype=a16)
        d = binary(g, "SUB", h, hc, f"{p}h_minus_hc", s, dtype=a16)
        prog.fixed[d] = SUB_OUT16  # see SUB_OUT
        zd = binary(g, "MUL", z, d, f"{p}z_d", s, dtype=a16)
        # |z (h - hc)| < 2: d's grid, so h' = hc + 2 zd exactly (Q15 = 2^-15, SUB_OUT16 = 2^-14)
        prog.fixed[zd] = SUB_OUT16
        binary(g, "ADD", hc, zd, h_out, s, dtype=a16)  # h' = z*h + (1-z)*hh = hh + z*(h - hh)
    elif layer.cell == "rnn":
        X, xw, _ = fc(g, f"{p}X", x16, k, b, s, dtype=a16)
        H, hw, _ = rec_fc(f"{p}H", h, r, None, s, xw)
        rec = [hw]
        if layer.activation == "relu":
            binary(g, "ADD", X, H, h_out, s, fused="RELU", dtype=a16)
        else:
            pre = binary(g, "ADD", X, H, f"{p}h_pre", s, dtype=a16)
            prog.tie(X, H)  # SUM_SCALE
            prog.sums[pre] = X
            unary(prog, g, "TANH", pre, h_out, s, x_only_here=True, dtype=a16)
    elif layer.cell == "lstm":
        X, xw, _ = fc(g, f"{p}X", x16, _lstm_rows(k), _lstm_rows(b), (1, 1, 4 * u), dtype=a16)
        H, hw, _ = rec_fc(f"{p}H", h, _lstm_rows(r), None, (1, 1, 4 * u), xw)
        rec = [hw]
        pre = binary(g, "ADD", X, H, f"{p}pre", (1, 1, 4 * u), dtype=a16)
        prog.tie(X, H)  # SUM_SCALE
        prog.sums[pre] = X
        ifo_pre, c_pre = split(prog, g, pre, [3 * u, u], [f"{p}ifo_pre", f"{p}c_pre"], a16)
        # pre is read by LOGISTIC (through ifo_pre) and TANH (c_pre): clip to the wider range
        for n, code in ((pre, "LOGISTIC"), (ifo_pre, "LOGISTIC"), (c_pre, "TANH")):
            prog.clip[n] = SATURATING_RANGE_INT16[code]
        ifo = unary(prog, g, "LOGISTIC", ifo_pre, f"{p}ifo", (1, 1, 3 * u), dtype=a16)
        cg = unary(prog, g, "TANH", c_pre, f"{p}c_gate", s, dtype=a16)
        i_, f_, o_ = split(prog, g, ifo, [u, u, u], [f"{p}i_gate", f"{p}f_gate", f"{p}o_gate"], a16)
        fcs = binary(g, "MUL", f_, c, f"{p}f_c", s, dtype=a16)
        ig = binary(g, "MUL", i_, cg, f"{p}i_g", s, dtype=a16)
        binary(g, "ADD", fcs, ig, c_out, s, dtype=a16)  # c' = f*c + i*g
        # |f*c| <= |c|: on c's own grid (calibrated alone, its range could end inside c's and
        # clip f*c while c still fits); |i*g| < 1: Q15. c itself gets CELL_HEADROOM
        prog.tie(fcs, c_out)
        prog.fixed[ig] = Q15
        prog.headroom[c_out] = CELL_HEADROOM
        tc = unary(prog, g, "TANH", c_out, f"{p}tanh_c", s, dtype=a16)
        binary(g, "MUL", o_, tc, h_out, s, dtype=a16)  # h' = o * tanh(c')
    else:  # pragma: no cover - the IR checks cells
        raise AssertionError(layer.cell)
    if q15_state(layer):
        prog.fixed[h_out] = Q15  # |h| < 1
    if layer.cell != "gru":
        kern = [xw]
    t.update(kernel=kern, recurrent_kernel=rec, state=h, state_out=h_out, cell_state=c, cell_state_out=c_out)


def step(prog: Program, g: Graph, layer: ir.Recurrent, p: str, x: str, h: str, c: str | None,
         h_out: str, c_out: str | None, info: dict, state: str) -> None:
    """One time step in the ``state`` layout ("int16" or "int8")."""
    (step_int16 if state == "int16" else step_int8)(prog, g, layer, p, x, h, c, h_out, c_out, info)
