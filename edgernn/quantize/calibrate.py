"""Run a float :class:`~edgernn.backends.tflm.graph.Program` on calibration data, record ranges.

The program is the exact op graph the TFLM backend writes; running it in float (numpy, the
whole calibration batch at once, the ``1`` batch dimension of every activation replaced by N)
gives the min/max of every tensor, including those inside WHILE bodies at every time step.

Activations are float32, but every op that sums or calls exp/tanh computes in float64 and rounds
once: numpy's float32 matmul (OpenBLAS kernels per CPU) and its float32 exp/tanh (SIMD code per
CPU) differ in the last bit between machines, and one bit of a range changes a scale, so the
same model would convert to different bytes on an AVX-512 and an AVX2 machine.
"""

from __future__ import annotations

import numpy as np

from ..errors import EdgeRNNError

#: Calibration inputs used (the first N): by ``edgernn convert`` and by QAT's calibration pass.
MAX_CALIB_SAMPLES = 500


def _f64(x) -> np.ndarray:
    return np.asarray(x, np.float64)


def _sigmoid(x):
    with np.errstate(over="ignore"):  # exp(-x) = inf for very negative x gives the exact limit 0
        return 1.0 / (1.0 + np.exp(-_f64(x)))


class Ranges(dict):
    """name -> (min, max) over everything seen."""

    def see(self, name: str, value: np.ndarray) -> None:
        if value.dtype.kind != "f" or value.size == 0:
            return
        lo, hi = float(value.min()), float(value.max())
        if name in self:
            a, b = self[name]
            self[name] = (min(a, lo), max(b, hi))
        else:
            self[name] = (lo, hi)


def run_float(program, feeds: dict[str, np.ndarray], ranges: Ranges | None = None) -> dict[str, np.ndarray]:
    """Evaluate the main graph of ``program`` on ``feeds`` (name -> float batch)."""
    ranges = Ranges() if ranges is None else ranges
    env = {}
    for name, v in feeds.items():
        env[name] = np.asarray(v, np.float32)
        ranges.see(name, env[name])
    _run_graph(program, program.graphs[0], env, ranges)
    return env


def _value(g, env, name, batch):
    if name in env:
        return env[name]
    t = g.tensors[name]
    if t.data is None:
        raise EdgeRNNError(f"internal: tensor '{name}' has no value")
    if t.dtype in ("int8", "int16"):
        v = np.asarray(t.data, np.float32)
        if t.role in ("state", "fill"):
            v = np.broadcast_to(v, (batch,) + tuple(t.shape[1:])).copy()
        return v
    return np.asarray(t.data)


def _run_graph(program, g, env, ranges):
    batch = next((v.shape[0] for v in env.values() if v.dtype.kind == "f" and v.ndim), 1)
    for name, t in g.tensors.items():  # int8 constants (a BatchNorm's scale and offset) get their own range
        if t.role == "const" and t.dtype == "int8" and t.data is not None:
            ranges.see(name, np.asarray(t.data, np.float32))
    for op in g.ops:
        ins = [None if n is None else _value(g, env, n, batch) for n in op.inputs]
        outs = _eval(program, op, ins, ranges, batch)
        for name, v in zip(op.outputs, outs):
            env[name] = v
            ranges.see(name, v)


def _act(x, fused):
    return np.maximum(x, 0) if fused == "RELU" else x


def _eval(program, op, ins, ranges, batch):
    c = op.code
    if c == "FULLY_CONNECTED":
        x, w, b = ins
        y = _f64(x).reshape(x.shape[0], -1, w.shape[1]) @ _f64(w).T
        if b is not None:
            y = y + b
        y = _act(y, op.opts.get("fused")).astype(np.float32)
        out_shape = op.opts["out_shape"]
        return [y.reshape((x.shape[0],) + tuple(out_shape[1:]))]
    if c in ("ADD", "SUB", "MUL"):
        a, b = ins
        if a.dtype.kind == "i":
            return [(a + b if c == "ADD" else a - b if c == "SUB" else a * b).astype(np.int32)]
        y = a + b if c == "ADD" else a - b if c == "SUB" else a * b
        return [_act(y, op.opts.get("fused")).astype(np.float32)]
    if c == "LOGISTIC":
        return [_sigmoid(ins[0]).astype(np.float32)]
    if c == "TANH":
        return [np.tanh(_f64(ins[0])).astype(np.float32)]
    if c == "RELU":
        return [np.maximum(ins[0], 0).astype(np.float32)]
    if c == "SOFTMAX":
        e = np.exp(_f64(ins[0]) - ins[0].max(axis=-1, keepdims=True))
        return [(e / e.sum(axis=-1, keepdims=True)).astype(np.float32)]
    if c == "CONCATENATION":
        return [np.concatenate(ins, axis=op.opts["axis"])]
    if c == "SLICE":
        x, begin, size = ins
        sl = (slice(None),) + tuple(slice(int(b), int(b) + int(s)) for b, s in zip(begin[1:], size[1:]))
        return [x[sl]]
    if c == "DYNAMIC_UPDATE_SLICE":
        x, upd, start = ins
        y = x.copy()
        sl = (slice(None),) + tuple(slice(int(b), int(b) + n) for b, n in zip(start[1:], upd.shape[1:]))
        y[sl] = upd
        return [y]
    if c == "FILL":
        dims, value = ins
        return [np.full((batch,) + tuple(int(d) for d in dims[1:]), float(value), np.float32)]
    if c == "LESS":
        return [np.asarray(ins[0] < ins[1])]
    if c in _LAYER_OPS:
        return [_LAYER_OPS[c](op.opts, *ins).astype(np.float32)]
    if c in ("CAST", "QUANTIZE"):  # int8 -> int16 / int16 -> int8: the same real value
        return [ins[0]]
    if c == "SPLIT":
        axis, x = ins
        return np.split(x, len(op.outputs), axis=int(np.asarray(axis).reshape(-1)[0]))
    if c == "SPLIT_V":
        x, sizes, axis = ins
        return np.split(x, np.cumsum(np.asarray(sizes).reshape(-1))[:-1], axis=int(np.asarray(axis).reshape(-1)[0]))
    if c == "WHILE":
        cond, body = program.graphs[op.opts["cond"]], program.graphs[op.opts["body"]]
        state = list(ins)
        while True:
            env = dict(zip(cond.inputs, state))
            _run_graph(program, cond, env, ranges)
            if not bool(np.all(env[cond.outputs[0]])):
                return state
            env = dict(zip(body.inputs, state))
            for n, v in env.items():
                ranges.see(n, v)
            _run_graph(program, body, env, ranges)
            state = [env[n] if n in env else _value(body, env, n, batch) for n in body.outputs]
    raise EdgeRNNError(f"internal: no float evaluation for op {c}")


# --- the conv / pooling / shape ops of edgernn.backends.tflm.layers (NHWC, float) --------------

def _windows(x, kh, kw, opts, fill):
    """x (N, H, W, C) padded as TFLite pads (SAME: the odd extra after) -> (padded x, out H, out W)."""
    sh, sw = opts.get("stride", (1, 1))
    dh, dw = opts.get("dilation", (1, 1))
    n, h, w, _ = x.shape
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if opts.get("padding", "VALID") == "SAME":
        oh, ow = -(-h // sh), -(-w // sw)
        ph, pw = max((oh - 1) * sh + eh - h, 0), max((ow - 1) * sw + ew - w, 0)
        x = np.pad(x, [(0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)], constant_values=fill)
    else:
        oh, ow = (h - eh) // sh + 1, (w - ew) // sw + 1
    return x, oh, ow


def _tap(x, i, j, oh, ow, opts):
    sh, sw = opts.get("stride", (1, 1))
    dh, dw = opts.get("dilation", (1, 1))
    return x[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, :]


def _conv2d(opts, x, w, b):
    """CONV_2D: w (O, kh, kw, C); DEPTHWISE_CONV_2D: w (1, kh, kw, C * m)."""
    depthwise = "depth_multiplier" in opts
    kh, kw = w.shape[1], w.shape[2]
    xp, oh, ow = _windows(x.astype(np.float64), kh, kw, opts, 0.0)
    y = 0.0
    for i in range(kh):
        for j in range(kw):
            tap = _tap(xp, i, j, oh, ow, opts)
            if depthwise:
                y = y + np.repeat(tap, opts["depth_multiplier"], axis=-1) * w[0, i, j]
            else:
                y = y + tap @ w[:, i, j, :].T.astype(np.float64)
    if b is not None:
        y = y + b
    return _act(y, opts.get("fused"))


def _pool(opts, x, reduce):
    fh, fw = opts["filter"]
    fill = -np.inf if reduce == "max" else 0.0
    xp, oh, ow = _windows(x.astype(np.float64), fh, fw, opts, fill)
    taps = [_tap(xp, i, j, oh, ow, opts) for i in range(fh) for j in range(fw)]
    if reduce == "max":
        y = np.max(taps, axis=0)
    else:  # SAME borders average the in-image taps only, as TFLite does
        ones, _, _ = _windows(np.ones(x.shape[:3] + (1,)), fh, fw, opts, 0.0)
        count = sum(_tap(ones, i, j, oh, ow, opts) for i in range(fh) for j in range(fw))
        y = np.sum(taps, axis=0) / count
    return _act(y, opts.get("fused"))


_LAYER_OPS = {
    "CONV_2D": _conv2d,
    "DEPTHWISE_CONV_2D": _conv2d,
    "MAX_POOL_2D": lambda opts, x: _pool(opts, x, "max"),
    "AVERAGE_POOL_2D": lambda opts, x: _pool(opts, x, "avg"),
    "MEAN": lambda opts, x, axes: np.mean(_f64(x), axis=tuple(int(a) for a in np.atleast_1d(axes))),
    "REDUCE_MAX": lambda opts, x, axes: np.max(x, axis=tuple(int(a) for a in np.atleast_1d(axes))),
    "PAD": lambda opts, x, pads: np.pad(x, [(0, 0)] + [tuple(int(v) for v in r) for r in np.asarray(pads)[1:]]),
    "RESHAPE": lambda opts, x, shape=None: x.reshape((x.shape[0],) + tuple(opts["shape"][1:])),
    "TRANSPOSE": lambda opts, x, perm: np.transpose(x, tuple(int(p) for p in perm)),
}
