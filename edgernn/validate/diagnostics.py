"""Per-layer diagnostics: where does the int8 model lose accuracy?

:func:`per_layer_report` runs the float model (rebuilt as tf_keras from the IR, one output per
layer) and the int8 simulator (capturing every tensor) on the same float inputs, pairs each
Keras layer with the int8 tensor that holds its output, and measures the dequantized int8
values against the float ones: SNR, cosine, max abs error, the share of int8 values pinned at
-128/127 (``saturated_fraction``) and the share of float values outside the tensor's int8
range (``clipped_fraction`` — the calibration range was too narrow for this data). The model
input is the first row: a too-small input scale saturates there first.

Pairing: layers are taken in order; each is matched with the captured int8/int16 tensor, after
the previous layer's tensor in execution order, that has the same number of values per sample
and the highest cosine similarity with the float output (ties: the later tensor). The last
layer always maps to the model output.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .. import ir
from ..errors import EdgeRNNError
from ..simulate import Simulator


def _metrics(f: np.ndarray, q: np.ndarray, raw: np.ndarray, lo: float, hi: float, qmin: int, qmax: int) -> dict:
    f = f.astype(np.float64).ravel()
    q = q.astype(np.float64).ravel()
    err = f - q
    p_sig, p_err = float(np.sum(f * f)), float(np.sum(err * err))
    snr = math.inf if p_err == 0 else (-math.inf if p_sig == 0 else 10 * math.log10(p_sig / p_err))
    nf, nq = float(np.linalg.norm(f)), float(np.linalg.norm(q))
    cos = 1.0 if nf == nq == 0 else (0.0 if nf == 0 or nq == 0 else float(f @ q / (nf * nq)))
    return {
        "snr_db": snr,
        "cosine": cos,
        "max_abs_error": float(np.max(np.abs(err))) if err.size else 0.0,
        "mean_abs_error": float(np.mean(np.abs(err))) if err.size else 0.0,
        "saturated_fraction": float(np.mean((raw == qmin) | (raw == qmax))) if raw.size else 0.0,
        "clipped_fraction": float(np.mean((f < lo) | (f > hi))) if f.size else 0.0,
        "float_min": float(f.min()) if f.size else 0.0,
        "float_max": float(f.max()) if f.size else 0.0,
        "int8_range": [lo, hi],
    }


def _load_ir(model) -> ir.Model:
    if isinstance(model, ir.Model):
        return model
    from ..frontend import load_model

    return load_model(model)


def _float_layer_outputs(model: ir.Model, x: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras as tfk

    from ..backends.tflm.keras_build import build_tf_keras

    net = build_tf_keras(model, timesteps=x.shape[1], batch_size=None)
    layers = [l for l in net.layers if not isinstance(l, tfk.layers.InputLayer)]
    probe = tfk.Model(net.inputs, [l.output for l in layers])
    outs = probe.predict(x, verbose=0, batch_size=256)
    outs = outs if isinstance(outs, list) else [outs]
    kinds = {l.name: l.kind for l in model.layers}
    return [(l.name, kinds.get(l.name, type(l).__name__.lower()), np.asarray(o, np.float32))
            for l, o in zip(layers, outs)]


def per_layer_report(model, tflite_path, x_float, *, sim: Simulator | None = None) -> list[dict]:
    """Float vs int8 activations of each layer, worst layer (lowest SNR) first.

    ``model``: the float model (IR, Keras object or a .keras/.h5 path); ``tflite_path``: its
    int8 flatbuffer; ``x_float``: (N, T, F) inputs. Each row: ``layer``, ``kind``, ``index``
    (0 = the model input, then layer order), ``tensor`` (the int8 tensor compared), ``scale``,
    ``zero_point``, and the metrics ``snr_db``, ``cosine``, ``max_abs_error``,
    ``mean_abs_error``, ``saturated_fraction``, ``clipped_fraction``, ``float_min``,
    ``float_max``, ``int8_range``.
    """
    m = _load_ir(model)
    x = np.asarray(x_float, np.float32)
    if x.ndim != 3:
        raise EdgeRNNError(f"per-layer report: inputs have shape {x.shape}; expected (N, T, F)")
    sim = sim or Simulator.from_file(tflite_path)
    xq = sim.quantize_input(x)
    _, captured = sim.run(xq, capture=True)
    main = sim.model.main
    n = len(x)

    # int8/int16 quantized tensors produced by ops, in execution order
    order: list = []
    seen = set()
    for op in main.operators:
        for ti in op.outputs:
            t = main.tensors[ti]
            if t.name in captured and t.scale is not None and len(t.scale) == 1 and t.dtype in ("int8", "int16") \
                    and t.name not in seen:
                seen.add(t.name)
                order.append(t)

    def row(name, kind, index, t, f):
        raw = np.asarray(captured[t.name]).reshape(n, -1)
        s, zp = float(t.scale[0]), int(t.zero_point[0])
        qmin, qmax = (-128, 127) if t.dtype == "int8" else (-32768, 32767)
        deq = (raw.astype(np.float64) - zp) * s
        r = {"layer": name, "kind": kind, "index": index, "tensor": t.name, "scale": s, "zero_point": zp}
        r.update(_metrics(f.reshape(n, -1), deq, raw, (qmin - zp) * s, (qmax - zp) * s, qmin, qmax))
        return r

    rows = [row("input", "input", 0, sim.model.input(0), x)]
    layers = _float_layer_outputs(m, x)
    out_t = sim.model.output(0)
    pos = -1
    for li, (name, kind, f) in enumerate(layers, start=1):
        per_sample = int(np.prod(f.shape[1:]))
        if li == len(layers) and out_t.dtype in ("int8", "int16"):
            cands = [(i, t) for i, t in enumerate(order) if t.name == out_t.name]
        else:
            # the model's batch dimension is 1, so a tensor's size is its size per sample
            cands = [(i, t) for i, t in enumerate(order) if i > pos and int(np.prod(t.shape)) == per_sample]
        if not cands:
            continue  # no int8 tensor carries this layer's output (e.g. fused away)
        best = max(cands, key=lambda c: (round(row(name, kind, li, c[1], f)["cosine"], 6), c[0]))
        pos = best[0]
        rows.append(row(name, kind, li, best[1], f))
    rows.sort(key=lambda r: (r["snr_db"], r["index"]))
    return rows


def first_saturated_layer(rows: list[dict], threshold: float = 0.01) -> dict | None:
    """The earliest layer (by ``index``) whose float values leave the int8 range more than ``threshold``."""
    hit = [r for r in rows if r["clipped_fraction"] > threshold]
    return min(hit, key=lambda r: r["index"]) if hit else None
