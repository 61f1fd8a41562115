"""Read an int8 ``.tflite`` flatbuffer into a small, typed description.

Uses TensorFlow's own flatbuffer object API (``schema_py_generated``) so the reader never
drifts from the schema. ``inspect``, the simulator and the native backend all start here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import EdgeRNNError

_NP_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
             7: np.int16, 9: np.int8}
_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16",
               9: "int8"}


#: metadata entry holding the sha256 (hex, ASCII) of the float weights the model was converted
#: from (:func:`edgernn.backends.tflm.convert.weights_fingerprint`); written by ``edgernn convert``
SOURCE_FINGERPRINT = "edgernn_source_sha256"


@lru_cache(maxsize=1)
def _schema():
    from tensorflow.lite.python import schema_py_generated as schema
    return schema


@lru_cache(maxsize=1)
def _op_names() -> dict[int, str]:
    s = _schema()
    return {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: np.ndarray | None  # per-tensor: 1 value; per-channel: one per channel
    zero_point: np.ndarray | None
    quantized_dimension: int
    data: np.ndarray | None  # constant data (weights, biases), None for activations
    is_variable: bool

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(_np_dtype(self.dtype)).itemsize if self.shape else 0


@dataclass
class Operator:
    opcode: str
    inputs: list[int]  # -1: optional input absent
    outputs: list[int]
    options: object  # the schema's *OptionsT object (or None)
    intermediates: list[int] = field(default_factory=list)


@dataclass
class Subgraph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    name: str = ""


@dataclass
class TFLiteModel:
    path: str
    raw: bytes
    subgraphs: list[Subgraph]
    metadata: dict[str, bytes] = field(default_factory=dict)  # the flatbuffer's metadata entries

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    @property
    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sg in self.subgraphs:
            for op in sg.operators:
                counts[op.opcode] = counts.get(op.opcode, 0) + 1
        return counts

    def input(self, i: int = 0) -> Tensor:
        return self.main.tensors[self.main.inputs[i]]

    def output(self, i: int = 0) -> Tensor:
        return self.main.tensors[self.main.outputs[i]]

    @property
    def source_fingerprint(self) -> str | None:
        """The fingerprint of the float weights ``edgernn convert`` stored, or None."""
        v = self.metadata.get(SOURCE_FINGERPRINT)
        return v.decode("ascii", "replace") if v else None

    @property
    def weight_bytes(self) -> int:
        return sum(t.data.nbytes for sg in self.subgraphs for t in sg.tensors if t.data is not None)


def strided_slice_index(shape, begin, end, strides, options) -> tuple:
    """STRIDED_SLICE with constant begin/end/strides as a numpy index (``reference_ops::StridedSlice``
    semantics: begin/end/shrink masks, negative indices, clamping, the ``offset`` flag).

    Ellipsis and new-axis masks are refused by the callers."""
    o = options
    offset = bool(getattr(o, "offset", False))
    idx: list = []
    for ax, dim in enumerate(shape):
        if ax >= len(begin):
            idx.append(slice(None))
            continue
        st = int(strides[ax])
        b = int(begin[ax])
        if (int(o.shrinkAxisMask) >> ax) & 1:
            idx.append(b + dim if b < 0 else b)
            continue
        if (int(o.beginMask) >> ax) & 1:
            b = 0 if st > 0 else dim - 1
        else:
            b = b + dim if b < 0 else b
            b = min(max(b, 0), dim) if st > 0 else min(max(b, -1), dim - 1)
        e = int(end[ax])
        if offset:
            e = b + e
        if (int(o.endMask) >> ax) & 1:
            e = dim if st > 0 else -1
        else:
            e = e + dim if e < 0 else e
            e = min(max(e, 0), dim) if st > 0 else min(max(e, -1), dim - 1)
        idx.append(slice(b, e if e >= 0 else None, st))
    return tuple(idx)


def _np_dtype(name: str):
    return {v: _NP_TYPES[k] for k, v in _TYPE_NAMES.items()}[name]


def parse(raw: bytes, path: str = "<bytes>") -> TFLiteModel:
    s = _schema()
    try:
        m = s.ModelT.InitFromPackedBuf(bytearray(raw), 0)
    except Exception as exc:
        raise EdgeRNNError(f"{path}: not a TFLite flatbuffer ({type(exc).__name__})") from None
    if not m.subgraphs:
        raise EdgeRNNError(f"{path}: the flatbuffer has no subgraphs")
    names = _op_names()
    subgraphs = []
    for sg in m.subgraphs:
        tensors = []
        for i, t in enumerate(sg.tensors):
            q = t.quantization
            scale = zp = None
            qdim = 0
            if q is not None and q.scale is not None and len(q.scale):
                scale = np.asarray(q.scale, np.float32)
                zp = np.asarray(q.zeroPoint, np.int64)
                qdim = int(q.quantizedDimension)
            buf = m.buffers[t.buffer]
            data = None
            if buf.data is not None and len(buf.data) and t.type in _NP_TYPES:
                data = np.frombuffer(bytes(bytearray(buf.data)), dtype=_NP_TYPES[t.type]).reshape(
                    tuple(int(d) for d in t.shape) if t.shape is not None else ())
            name = (t.name or b"").decode() if isinstance(t.name, bytes) else str(t.name or "")
            tensors.append(Tensor(
                index=i, name=name or f"t{i}",  # edgernn's own graphs store no names
                shape=tuple(int(d) for d in t.shape) if t.shape is not None else (),
                dtype=_TYPE_NAMES.get(t.type, f"type{t.type}"), scale=scale, zero_point=zp,
                quantized_dimension=qdim, data=data, is_variable=bool(t.isVariable)))
        ops = []
        for op in sg.operators or []:
            code = m.operatorCodes[op.opcodeIndex]
            opcode = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"OP{code.builtinCode}")
            if opcode == "CUSTOM":
                opcode = f"CUSTOM:{code.customCode.decode() if code.customCode else '?'}"
            ops.append(Operator(opcode=opcode, inputs=[int(i) for i in (op.inputs if op.inputs is not None else [])],
                                outputs=[int(i) for i in (op.outputs if op.outputs is not None else [])],
                                options=op.builtinOptions,
                                intermediates=[int(i) for i in (op.intermediates if op.intermediates is not None else [])]))
        subgraphs.append(Subgraph(tensors=tensors, operators=ops,
                                  inputs=[int(i) for i in sg.inputs], outputs=[int(i) for i in sg.outputs],
                                  name=(sg.name or b"").decode() if isinstance(sg.name, bytes) else str(sg.name or "")))
    metadata = {}
    for md in m.metadata or []:
        name = md.name.decode("utf-8", "replace") if isinstance(md.name, bytes) else str(md.name)
        buf = m.buffers[md.buffer].data if 0 <= md.buffer < len(m.buffers) else None
        metadata[name] = bytes(bytearray(buf)) if buf is not None else b""
    return TFLiteModel(path=path, raw=bytes(raw), subgraphs=subgraphs, metadata=metadata)


def read(path) -> TFLiteModel:
    p = Path(path)
    if not p.exists():
        raise EdgeRNNError(f"{p}: no such .tflite file")
    if p.is_dir() or p.suffix != ".tflite":
        raise EdgeRNNError(f"{p}: expected a .tflite flatbuffer (run `edgernn convert` on a Keras model first)")
    return parse(p.read_bytes(), str(p))
