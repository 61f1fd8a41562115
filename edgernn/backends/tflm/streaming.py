"""The streaming (one-step) form of a fused-LSTM flatbuffer.

The TFLite converter's ``UNIDIRECTIONAL_SEQUENCE_LSTM`` keeps its hidden and cell state in
*variable tensors*, which TFLM preserves between ``invoke()`` calls until ``reset()``. So the
whole-sequence int8 model with its time dimension rewritten to 1 (input ``(1, 1, F)``, every
sequence activation ``(1, 1, U)``), same weights and same quantization parameters, is the
streaming model: fed one sample per ``invoke()`` it computes exactly the numbers the
whole-sequence model computes at that step (the final ``STRIDED_SLICE`` takes index -1, which
is the only step). GRU / SimpleRNN streaming models are built directly by :mod:`.recurrent`
with the same variable-tensor mechanism.
"""

from __future__ import annotations

import numpy as np

from ... import ir
from ...errors import ConversionError


def lstm_one_step(data: bytes, model: ir.Model) -> bytes:
    """Rewrite the time dimension of a fused-LSTM whole-sequence flatbuffer to 1."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as s

    m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    main = m.subgraphs[0]
    t_steps = int(main.tensors[main.inputs[0]].shape[1])
    changed = 0
    for sg in m.subgraphs:
        for t in sg.tensors:
            buf = m.buffers[t.buffer]
            is_const = buf.data is not None and len(buf.data) > 0
            if is_const or t.shape is None or len(t.shape) != 3 or int(t.shape[1]) != t_steps:
                continue
            t.shape = np.asarray([t.shape[0], 1, t.shape[2]], np.int32)
            if t.shapeSignature is not None and len(t.shapeSignature) == 3:
                t.shapeSignature = np.asarray([t.shapeSignature[0], 1, t.shapeSignature[2]], np.int32)
            changed += 1
    if not changed:
        raise ConversionError(f"model '{model.name}': found no (1, {t_steps}, F) tensor to make one-step")
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def is_streaming_model(tm) -> bool:
    """True for a one-step model (input ``(1, 1, F)`` and state kept in variable tensors).

    ``tm`` is a :class:`edgernn.tflite_model.TFLiteModel`. Both streaming forms qualify: the
    fused LSTM rewritten to T=1 and the one-step GRU / SimpleRNN / LSTM graphs.
    """
    shape = tm.input().shape
    return len(shape) == 3 and shape[1] == 1 and any(t.is_variable for t in tm.main.tensors)


def run_streaming(interpreter, x_int8: np.ndarray) -> np.ndarray:
    """Feed each int8 sequence of ``x_int8`` (N, T, F) one time step per ``invoke()``.

    ``interpreter``: a ``tflite_micro`` runtime interpreter of a streaming model. The state is
    reset before each sequence, exactly as a device calls ``reset()`` between recordings.
    Returns the int8 output after every step, shape (N, T, *output_shape[1:]); a per-sequence
    classifier's answer is ``[:, -1]``.
    """
    outs = []
    for seq in np.asarray(x_int8, np.int8):
        interpreter.reset()
        steps = []
        for t in range(seq.shape[0]):
            interpreter.set_input(seq[t].reshape(1, 1, -1), 0)
            interpreter.invoke()
            steps.append(np.array(interpreter.get_output(0))[0])
        outs.append(np.stack(steps))
    return np.stack(outs)
