"""``edgernn.convert``: a Keras model + calibration data -> an int8 TFLM flatbuffer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import ir
from .backends.tflm.cells import STATES
from .backends.tflm.convert import ConvertResult, check_rebuild_matches, conversion_strategy, convert_ir, write_atomic
from .backends.tflm.streaming import check_streamable
from .data import Dataset, check_x, load_dataset
from .errors import EdgeRNNError
from .frontend import from_keras, load_keras_object


def _calibration(calib, model: ir.Model) -> np.ndarray:
    """Calibration inputs from a path, a :class:`Dataset` or an array, checked against the model."""
    spec = dict(features=model.input.features, timesteps=model.input.timesteps)
    if isinstance(calib, (str, os.PathLike)):
        return load_dataset(calib, **spec).x
    if isinstance(calib, Dataset):
        return check_x(calib.x, calib.path, **spec)
    return check_x(calib, "calibration array", **spec)


def convert(model, calib, output=None, *, streaming: bool = False, state: str = "int16") -> ConvertResult:
    """Quantize ``model`` (path, Keras object or IR) to int8 and write ``output`` (.tflite).

    ``calib``: an .npz/.npy path, a :class:`Dataset` or an array (N, T, F) of representative
    inputs. Nothing is written unless conversion succeeds.

    ``streaming=True`` writes the one-step model: input ``(1, 1, F)``, one output per call; the
    recurrent state lives in TFLM variable tensors kept between ``invoke()`` calls until
    ``reset()``. Fed a sequence one sample at a time it gives the same int8 outputs as the
    whole-sequence model (calibrated on the same data). Bidirectional models are refused.

    ``state``: for the WHILE-graph cells (GRU, SimpleRNN, Bidirectional and mixed stacks),
    "int16" (default) keeps the recurrent state and the step arithmetic in int16, with one
    FULLY_CONNECTED per input side; "int8" keeps everything int8, one FULLY_CONNECTED per gate
    (less precise over long sequences; for kernels without int16 support). Inputs, outputs and
    weights are int8 either way. The fused LSTM keeps its own (int16 cell, int8 hidden state).
    """
    if output is not None and Path(output).suffix != ".tflite":
        raise EdgeRNNError(f"{output}: the output file must end in .tflite")
    if state not in STATES:
        raise EdgeRNNError(f"--state {state!r}: use one of {', '.join(STATES)}")
    keras_obj = None
    if isinstance(model, ir.Model):
        m = model
    else:
        keras_obj = load_keras_object(model) if isinstance(model, (str, os.PathLike)) else model
        m = from_keras(keras_obj, source=str(model) if isinstance(model, (str, os.PathLike)) else "")
    x = _calibration(calib, m)
    if streaming:
        check_streamable(m, int(x.shape[1]))
    diff = None
    if keras_obj is not None:
        diff = check_rebuild_matches(keras_obj, m, x[:8])
    data = convert_ir(m, x, streaming=streaming, state=state)
    path = None
    if output is not None:
        path = Path(output)
        write_atomic(path, data)
    notes = ["fused int8 LSTM (TFLite converter)" if conversion_strategy(m) == "fused-lstm" else
             f"WHILE loop of builtin ops per stack of recurrent layers (written by edgernn), {state} state"]
    if streaming:
        notes.append("streaming: one time step per invoke(), state kept in TFLM variable tensors "
                     "until reset()")
    return ConvertResult(path=path, tflite=data, model=m, timesteps=1 if streaming else int(x.shape[1]),
                         streaming=streaming, float_check_max_diff=diff, notes=notes)
