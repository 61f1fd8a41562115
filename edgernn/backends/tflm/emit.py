"""Firmware sources for the TFLM backend: the flatbuffer as C arrays plus a self-test harness.

Writes, from the Jinja2 templates in ``firmware_templates/tflm/``:

* ``model_data.h`` / ``model_data.cc``: ``g_<name>_model_data`` (``alignas(16) const unsigned
  char``, bytes equal to the .tflite file), its length, the arena size, the input/output
  quantization constants;
* ``main.cc``: a ``MicroInterpreter`` with a ``MicroMutableOpResolver`` registering exactly the
  model's ops, a float->int8 quantizer, and a check of the embedded self-test vectors;
* ``selftest_data.h``: K input vectors and the int8 outputs the TFLM runtime gave for them;
* ``Makefile`` (takes ``TFLM_DIR``) and ``README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..._version import __version__
from ...errors import EdgeRNNError
from ...tflite_model import TFLiteModel
from ..codegen import c_array, c_identifier, render
from .arena import size_arena

# TFLite builtin op -> the MicroMutableOpResolver method that registers it.
RESOLVER_METHODS = {
    "ADD": "AddAdd", "CONCATENATION": "AddConcatenation", "DEQUANTIZE": "AddDequantize",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "LESS": "AddLess",
    "LOGISTIC": "AddLogistic", "MUL": "AddMul", "PACK": "AddPack", "QUANTIZE": "AddQuantize",
    "RELU": "AddRelu", "RESHAPE": "AddReshape", "REVERSE_V2": "AddReverseV2", "SHAPE": "AddShape",
    "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax", "SPLIT": "AddSplit", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "WHILE": "AddWhile", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "ZEROS_LIKE": "AddZerosLike",
    "MAXIMUM": "AddMaximum", "MINIMUM": "AddMinimum", "GREATER": "AddGreater", "EQUAL": "AddEqual",
    "LOGICAL_AND": "AddLogicalAnd", "SPLIT_V": "AddSplitV", "SELECT_V2": "AddSelectV2",
    "MEAN": "AddMean", "CAST": "AddCast", "REDUCE_MAX": "AddReduceMax",
    # convolutional front-ends and pooling heads (issue 14)
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "MAX_POOL_2D": "AddMaxPool2D",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "PAD": "AddPad", "PADV2": "AddPadV2", "SUM": "AddSum",
    "REDUCE_MIN": "AddReduceMin", "RELU6": "AddRelu6", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "LESS_EQUAL": "AddLessEqual", "GREATER_EQUAL": "AddGreaterEqual",
    "NOT_EQUAL": "AddNotEqual",
}


@dataclass
class SelfTest:
    """Embedded test vectors: int8 inputs and the int8 outputs expected from them."""

    x: np.ndarray  # (K, *input_shape[1:]) int8
    y: np.ndarray  # (K, *output_shape[1:]) int8
    labels: np.ndarray | None = None


def resolver_calls(m: TFLiteModel) -> list[str]:
    """The resolver ``Add*`` calls for exactly the ops the model uses, sorted by op name."""
    calls = []
    for op in sorted(m.op_counts):
        if op not in RESOLVER_METHODS:
            raise EdgeRNNError(f"{m.path}: operator {op} has no known TFLM resolver method; "
                               f"supported: {', '.join(sorted(RESOLVER_METHODS))}")
        calls.append(RESOLVER_METHODS[op])
    return calls


def write_tflm_sources(m: TFLiteModel, out: Path, *, name: str, selftest: SelfTest | None,
                       source: str = "", kernels: str = "reference") -> list[Path]:
    """Write model_data.{h,cc}, selftest_data.h, main.cc, Makefile, README.md into ``out``.

    ``kernels``: the TFLM kernel set the firmware links ("reference" or "cmsis-nn"); the arena
    is sized for it (:func:`.arena.size_arena`)."""
    name = c_identifier(name)
    tin, tout = m.input(), m.output()
    if tin.dtype != "int8" or tout.dtype != "int8":
        raise EdgeRNNError(f"{m.path}: input/output tensors are {tin.dtype}/{tout.dtype}; the harness needs an "
                           "int8 model (run `edgernn convert`)")
    arena = size_arena(m, kernels)
    ctx = dict(
        name=name, version=__version__, source=source or m.path,
        model_len=len(m.raw), model_bytes=c_array(np.frombuffer(m.raw, np.uint8), per_line=16, fmt="0x{:02x}"),
        arena=arena, kernels=kernels,
        input_scale=float(tin.scale[0]), input_zero_point=int(tin.zero_point[0]),
        output_scale=float(tout.scale[0]), output_zero_point=int(tout.zero_point[0]),
        input_shape=list(tin.shape), output_shape=list(tout.shape),
        input_elems=int(np.prod(tin.shape)), output_elems=int(np.prod(tout.shape)),
        ops=sorted(m.op_counts), resolver_calls=resolver_calls(m),
        n_vectors=0 if selftest is None else len(selftest.x),
    )
    # A streaming model takes one time step per Invoke(); the harness feeds each vector's steps.
    step_elems = int(np.prod(tin.shape))
    ctx["steps"] = 1 if selftest is None else int(np.prod(selftest.x.shape[1:])) // step_elems
    ctx["step_elems"] = step_elems
    ctx["vector_elems"] = step_elems * ctx["steps"]
    if selftest is not None:
        ctx["vec_x"] = c_array(selftest.x.reshape(len(selftest.x), -1), per_line=min(ctx["vector_elems"], 24))
        ctx["vec_y"] = c_array(selftest.y.reshape(len(selftest.y), -1), per_line=max(ctx["output_elems"], 1))
    files = {
        "model_data.h": "tflm/model_data.h.j2", "model_data.cc": "tflm/model_data.cc.j2",
        "selftest_data.h": "tflm/selftest_data.h.j2", "main.cc": "tflm/main.cc.j2",
        "Makefile": "tflm/Makefile.j2", "README.md": "tflm/README.md.j2",
    }
    written = []
    for fname, template in files.items():
        path = out / fname
        path.write_text(render(template, **ctx))
        written.append(path)
    return written
