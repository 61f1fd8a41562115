"""IR -> int8 TFLite Micro flatbuffer.

LSTM layers take the TFLite converter's own route: the model is rebuilt as tf_keras with
batch 1 and ``unroll=False`` so each LSTM fuses into one ``UNIDIRECTIONAL_SEQUENCE_LSTM``,
then full-int8 post-training quantization with the calibration data. The converter runs in a
child process (see :mod:`.subprocess_util`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import ir
from ...errors import ConversionError, EdgeRNNError
from .subprocess_util import describe_returncode, run_child

log = logging.getLogger(__name__)

FLOAT_CHECK_ATOL = 1e-5  # rebuilt tf_keras model vs the user's model, on calibration samples
MAX_CALIB_SAMPLES = 500


@dataclass
class ConvertResult:
    path: Path | None
    tflite: bytes
    model: ir.Model
    timesteps: int
    streaming: bool = False
    float_check_max_diff: float | None = None
    notes: list[str] = field(default_factory=list)


def check_rebuild_matches(keras_obj, model: ir.Model, x: np.ndarray, atol: float = FLOAT_CHECK_ATOL) -> float:
    """Run the user's model and the rebuilt tf_keras model on ``x``; raise if they differ."""
    from .keras_build import build_tf_keras

    rebuilt = build_tf_keras(model, timesteps=x.shape[1], batch_size=None)
    want = np.asarray(keras_obj(x, training=False), np.float32)
    got = np.asarray(rebuilt(x, training=False), np.float32)
    diff = float(np.max(np.abs(want - got))) if want.size else 0.0
    if want.shape != got.shape or diff > atol:
        raise ConversionError(
            f"model '{model.name}': the rebuilt tf_keras model differs from the original "
            f"(max |diff| {diff:.3g} > {atol}, shapes {want.shape} vs {got.shape}); please report this model")
    return diff


def _strategy(model: ir.Model) -> str:
    cells = set(model.cells)
    if cells == {"lstm"} and not model.is_bidirectional:
        return "fused-lstm"
    raise ConversionError(
        f"model '{model.name}': int8 conversion of {sorted(cells)} layers"
        f"{' in Bidirectional' if model.is_bidirectional else ''} is not available yet; "
        "this version converts unidirectional LSTM models (stacked allowed)")


def convert_ir(model: ir.Model, calib: np.ndarray) -> bytes:
    """Int8 flatbuffer bytes for ``model`` calibrated on ``calib`` (N, T, F)."""
    _strategy(model)
    payload = {"model": model, "calib": np.ascontiguousarray(calib[:MAX_CALIB_SAMPLES], np.float32)}
    rc, result, tail = run_child("edgernn.backends.tflm._convert_child", payload)
    if rc != 0 or not result:
        last = next((l for l in reversed(tail.splitlines()) if l.strip()), "no message")
        raise ConversionError(f"model '{model.name}' ({', '.join(model.cells)}): the TFLite converter "
                              f"{describe_returncode(rc)}: {last.strip()[:300]}")
    return result["tflite"]


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
