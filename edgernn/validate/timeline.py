"""Error along the sequence: how the int8 model drifts from the float one, step by step.

Recurrent models carry their error forward in the state, so the error at step 90 can be far
larger than at step 1. Two views:

- :func:`output_error_by_step`: models with an output per step (``return_sequences`` heads):
  |float - int8| of the outputs at each step, mean and 95th percentile over samples and
  channels. :func:`streaming_error_by_step`: the streaming (one-step) form of a sequence
  classifier answers after every step; its answers against the float model's at each step
  (the last recurrent layer with ``return_sequences``, the head applied per step).
- :func:`hidden_error_by_step`: sequence classifiers (one output per sequence): the last
  recurrent layer's hidden state at each step. The int8 side is the simulator's intermediate
  tensor holding that layer's hidden sequence (the fused LSTM's output, the WHILE loop's
  sequence buffer, or its hidden state after each iteration); the float side is the model cut after that layer, rebuilt with
  ``return_sequences=True``. The tensor is picked by size (T x units values per sample) and
  the highest cosine similarity with the float sequence.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from .. import ir

# below this cosine the captured tensor is not the layer's hidden sequence (or int8 lost it all)
_MIN_COSINE = 0.5


def _stats(err: np.ndarray) -> dict:
    """``err``: (N, T, ...) absolute errors -> per-step mean and p95 over everything but T."""
    e = np.abs(np.asarray(err, np.float64))
    e = np.moveaxis(e, 1, 0).reshape(e.shape[1], -1)
    return {"steps": int(e.shape[0]), "mean": [float(v) for v in e.mean(axis=1)],
            "p95": [float(v) for v in np.percentile(e, 95, axis=1)]}


def output_error_by_step(y_float: np.ndarray, y_int8: np.ndarray) -> dict | None:
    """Per-step output error of a per-step model ((N, T, C) outputs); None for (N, C) outputs."""
    if np.ndim(y_float) != 3:
        return None
    out = _stats(np.asarray(y_int8, np.float64) - np.asarray(y_float, np.float64))
    out.update(kind="output", what="model outputs")
    return out


def _float_hidden_sequence(model: ir.Model, x: np.ndarray, head: bool = False) -> tuple[str, np.ndarray] | None:
    """(layer name, (N, T', units) float hidden states) of the last recurrent layer; with
    ``head`` the layers after it applied at every step (None unless they are all per-step:
    Dense / Activation)."""
    idx = [i for i, l in enumerate(model.layers) if l.kind in ir.RECURRENT_KINDS]
    if not idx:
        return None
    last = model.layers[idx[-1]]
    if last.kind == "bidirectional":
        seq = dataclasses.replace(last, forward=dataclasses.replace(last.forward, return_sequences=True),
                                  backward=dataclasses.replace(last.backward, return_sequences=True))
    else:
        seq = dataclasses.replace(last, return_sequences=True)
    after = model.layers[idx[-1] + 1:] if head else []
    if any(l.kind not in ("dense", "activation") for l in after):
        return None
    cut = dataclasses.replace(model, layers=[*model.layers[:idx[-1]], seq, *after])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ..backends.tflm.keras_build import build_tf_keras

    net = build_tf_keras(cut, timesteps=x.shape[1], batch_size=None)
    return last.name, np.asarray(net.predict(x, verbose=0, batch_size=256), np.float32)


def streaming_error_by_step(model, x_float: np.ndarray, y_int8_steps: np.ndarray) -> dict | None:
    """Per-step |float - int8| of a streaming sequence classifier's answers.

    ``y_int8_steps``: (N, T, C) dequantized outputs of the one-step model after each step;
    the float answer at step t is the float model's on the first t steps (the recurrent
    layer's state after t steps through the head). None when the head is not per-step."""
    from .diagnostics import _load_ir

    got = _float_hidden_sequence(_load_ir(model), np.asarray(x_float, np.float32), head=True)
    if got is None or got[1].shape != np.shape(y_int8_steps):
        return None
    out = _stats(np.asarray(y_int8_steps, np.float64) - got[1])
    out.update(kind="output", what="streaming outputs (the answer after each step)")
    return out


def hidden_error_by_step(model, tflite_path, x_float: np.ndarray) -> dict | None:
    """Per-step |float - int8| of the last recurrent layer's hidden state, or None when the
    int8 graph keeps no tensor with that layer's hidden sequence.

    ``model``: the float model (IR, Keras object or path); ``tflite_path``: its int8
    flatbuffer (whole-sequence form); ``x_float``: (N, T, F) inputs."""
    from ..simulate import Simulator
    from .diagnostics import _load_ir

    m = _load_ir(model)
    x = np.asarray(x_float, np.float32)
    got = _float_hidden_sequence(m, x)
    if got is None:
        return None
    layer, f = got
    what = f"hidden state of layer '{layer}'"
    last = next(l for l in m.layers if l.name == layer)
    if last.kind == "bidirectional" and last.merge_mode == "concat":
        # each direction is its own loop in the int8 graph: compare the forward one
        f = f[..., :last.forward.units]
        what = f"hidden state of layer '{layer}' (forward direction)"
    n, steps = f.shape[0], f.shape[1]
    per_sample = int(np.prod(f.shape[1:]))
    sim = Simulator.from_file(tflite_path)
    _, captured = sim.run(sim.quantize_input(x), capture=True, capture_steps=True)
    tensors = {t.name: t for t in sim.model.main.tensors}
    in_name = sim.model.input(0).name
    best = None
    for name, raw in captured.items():
        t = tensors.get(name[:-len(":steps")] if name.endswith(":steps") else name)
        if t is None or name == in_name or t.dtype not in ("int8", "int16") or t.scale is None or len(t.scale) != 1:
            continue
        if raw.size != n * per_sample:
            continue
        q = (raw.reshape(f.shape).astype(np.float64) - int(t.zero_point[0])) * float(t.scale[0])
        a, b = f.ravel().astype(np.float64), q.ravel()
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        cos = float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0
        if best is None or cos > best[0]:
            best = (cos, name, q)
    if best is None or best[0] < _MIN_COSINE:
        return None
    cos, name, q = best
    out = _stats(q - f)
    out.update(kind="hidden", what=what, layer=layer, tensor=name,
               cosine=cos, steps=steps)
    return out
