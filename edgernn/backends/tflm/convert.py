"""IR -> int8 TFLite Micro flatbuffer.

Two routes, chosen by :func:`conversion_strategy`:

* ``fused-lstm``: unidirectional LSTM models (stacked allowed) take the TFLite converter's own
  route: the model is rebuilt as tf_keras with batch 1 and ``unroll=False`` so each LSTM fuses
  into one ``UNIDIRECTIONAL_SEQUENCE_LSTM``, then full-int8 post-training quantization with
  the calibration data. The converter runs in a child process (see :mod:`.subprocess_util`).
  Streaming: the same flatbuffer with T rewritten to 1 (:mod:`.streaming`).
* ``while-graph``: GRU, SimpleRNN, Bidirectional layers and mixed stacks, whose int8
  conversion crashes the TFLite converter, are written by edgernn itself as WHILE loops of
  builtin int8 ops, calibrated on a float run of the same graph (:mod:`.recurrent`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import ir
from ...errors import ConversionError
from ...quantize.calibrate import MAX_CALIB_SAMPLES
from ...tflite_model import SOURCE_FINGERPRINT
from .subprocess_util import describe_returncode, run_child

log = logging.getLogger(__name__)

FLOAT_CHECK_ATOL = 1e-5  # rebuilt tf_keras model vs the user's model, on calibration samples
FLOAT_CHECK_RTOL = 1e-4  # ... plus this much of |output|: folded BatchNorms round a little differently


@dataclass
class ConvertResult:
    path: Path | None
    tflite: bytes
    model: ir.Model
    timesteps: int
    streaming: bool = False
    float_check_max_diff: float | None = None
    notes: list[str] = field(default_factory=list)


def check_rebuild_matches(keras_obj, model: ir.Model, x: np.ndarray, atol: float = FLOAT_CHECK_ATOL,
                          rtol: float = FLOAT_CHECK_RTOL) -> float:
    """Run the user's model and the rebuilt tf_keras model on ``x``; raise if any output differs
    by more than ``atol + rtol * |output|``. Returns the max abs difference."""
    from .keras_build import build_tf_keras

    rebuilt = build_tf_keras(model, timesteps=x.shape[1], batch_size=None)
    want = np.asarray(keras_obj(keras_input(keras_obj, x), training=False), np.float32)
    got = np.asarray(rebuilt(x, training=False), np.float32)
    same_shape = want.shape == got.shape
    err = np.abs(want - got) if same_shape else np.full(1, np.inf)
    diff = float(np.max(err)) if err.size else 0.0
    if not same_shape or np.any(err > atol + rtol * np.abs(want)):
        raise ConversionError(
            f"model '{model.name}': the rebuilt tf_keras model differs from the original "
            f"(max |diff| {diff:.3g} > {atol} + {rtol} x |output|, shapes {want.shape} vs {got.shape}); "
            "please report this model")
    return diff


def keras_input(keras_obj, x: np.ndarray) -> np.ndarray:
    """``x`` (N, T, F) shaped as the Keras model's own input: an image model's (N, T, F', C)."""
    shape = tuple(keras_obj.inputs[0].shape)[2:] if getattr(keras_obj, "inputs", None) else ()
    if len(shape) > 1 and None not in shape and int(np.prod(shape)) == x.shape[2]:
        return x.reshape(x.shape[:2] + tuple(int(d) for d in shape))
    return x


def conversion_strategy(model: ir.Model) -> str:
    """How ``model`` becomes int8 TFLM: "fused-lstm" (the TFLite converter's
    UNIDIRECTIONAL_SEQUENCE_LSTM, per-tensor weights per gate matrix, int16 cell state) or
    "while-graph" (edgernn's WHILE loops of builtin int8 ops, :mod:`.recurrent`). QAT
    (:mod:`edgernn.qat`) fake-quantizes each the way its kernels quantize."""
    rec = model.recurrent_layers
    if set(model.cells) == {"lstm"} and not model.is_bidirectional and not any(l.go_backwards for l in rec):
        return "fused-lstm"
    return "while-graph"


def weights_fingerprint(model: ir.Model) -> str:
    """sha256 (hex) of the float weights, layer by layer: each layer's kind, then every array
    field (name, shape, float32 bytes), nested layers (a Bidirectional's two directions)
    included. Names and file paths are left out: the same weights saved as .keras or .h5,
    or with renamed layers, give the same fingerprint. ``edgernn convert`` stores it in the
    flatbuffer's metadata; ``edgernn validate`` compares it with the Keras model it is given."""
    h = hashlib.sha256()

    def walk(obj) -> None:
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            for i, item in enumerate(v if isinstance(v, (list, tuple)) else [v]):
                if isinstance(item, np.ndarray):
                    a = np.ascontiguousarray(item, np.float32)
                    h.update(f"{f.name}[{i}]{a.shape}".encode())
                    h.update(a.tobytes())
                elif dataclasses.is_dataclass(item) and not isinstance(item, type):
                    h.update(f"{f.name}[{i}]:{getattr(item, 'kind', '')}".encode())
                    walk(item)

    for layer in model.layers:
        h.update(f"|{layer.kind}".encode())
        walk(layer)
    return h.hexdigest()


def convert_ir(model: ir.Model, calib: np.ndarray, *, streaming: bool = False, state: str = "int16") -> bytes:
    """Int8 flatbuffer bytes for ``model`` calibrated on ``calib`` (N, T, F).

    Unidirectional LSTM models go through the TFLite converter (fused LSTM op); everything
    else (GRU, SimpleRNN, Bidirectional, mixed stacks) is written by :mod:`.recurrent` as
    WHILE loops of builtin ops. ``streaming`` gives the one-step form. ``state``: the WHILE
    graphs' recurrent state and step arithmetic, "int16" (one FULLY_CONNECTED per input side)
    or "int8" (one per gate); the fused LSTM keeps its own (int16 cell, int8 hidden state). Either way the
    flatbuffer's metadata ``edgernn_source_sha256`` holds the fingerprint of the float weights
    (:func:`weights_fingerprint`), which ``validate`` checks.
    """
    calib = np.ascontiguousarray(calib[:MAX_CALIB_SAMPLES], np.float32)
    source = {SOURCE_FINGERPRINT: weights_fingerprint(model).encode("ascii")}
    if conversion_strategy(model) == "while-graph":
        from .recurrent import convert_recurrent

        return convert_recurrent(model, calib, streaming=streaming, state=state, extra_metadata=source)
    payload = {"model": model, "calib": calib}
    rc, result, tail = run_child("edgernn.backends.tflm._convert_child", payload)
    if rc != 0 or not result:
        last = next((l for l in reversed(tail.splitlines()) if l.strip()), "no message")
        raise ConversionError(f"model '{model.name}' ({', '.join(model.cells)}): the TFLite converter "
                              f"{describe_returncode(rc)}: {last.strip()[:300]}")
    data = result["tflite"]
    if streaming:
        from .streaming import lstm_one_step

        data = lstm_one_step(data, model)
    return add_metadata(data, source)


def add_metadata(data: bytes, entries: dict[str, bytes]) -> bytes:
    """``data`` (a .tflite) with metadata entries added or replaced (name -> bytes), repacked
    with TensorFlow's flatbuffer object API."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as s

    m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    m.metadata = [md for md in (m.metadata or []) if md.name.decode() not in entries]
    for name, value in entries.items():
        buf = s.BufferT()
        buf.data = np.frombuffer(value, np.uint8)
        m.buffers.append(buf)
        md = s.MetadataT()
        md.name = name.encode()
        md.buffer = len(m.buffers) - 1
        m.metadata.append(md)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
