"""Read an int8 ``.tflite`` flatbuffer into a small, typed description.

Uses TensorFlow's own flatbuffer object API (``schema_py_generated``) so the reader never
drifts from the schema. ``inspect``, the simulator and the native backend all start here.
"""

from __future__ import annotations

import json
import zlib
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
#: metadata entry mapping edgernn's own WHILE graphs back to cells: a JSON object (format in
#: :func:`edgernn.backends.tflm.recurrent.metadata_doc`), zlib-compressed since format version 3
#: (``python3 -c "import sys, zlib; print(zlib.decompress(sys.stdin.buffer.read()).decode())"``)
EDGERNN_METADATA = "edgernn"


def encode_edgernn_metadata(meta: dict) -> bytes:
    """The bytes of the ``"edgernn"`` entry: compact JSON, zlib level 9 (a third of the size)."""
    return zlib.compress(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode(), 9)


def decode_edgernn_metadata(raw: bytes | None) -> dict | None:
    """The ``"edgernn"`` entry as a dict (zlib-compressed JSON, or plain JSON as before format
    version 3), or None when absent or unreadable."""
    if not raw:
        return None
    try:
        text = raw if raw.lstrip()[:1] == b"{" else zlib.decompress(raw)
        meta = json.loads(text.decode())
    except (ValueError, TypeError, zlib.error):
        return None
    return meta if isinstance(meta, dict) else None


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

    def check_int8(self, what: str = "edgernn") -> None:
        """Refuse a model whose input or output is not quantized int8 (a float .tflite, say)."""
        for kind, t in (("input", self.input()), ("output", self.output())):
            if t.dtype != "int8" or t.scale is None or len(t.scale) != 1:
                q = "no quantization" if t.scale is None else f"{len(t.scale)} scales"
                raise EdgeRNNError(f"{self.path}: {what} runs int8 models; {kind} '{t.name}' is {t.dtype} with "
                                   f"{q}. Make the int8 model with `edgernn convert MODEL.keras --calib DATA.npz`")

    def output(self, i: int = 0) -> Tensor:
        return self.main.tensors[self.main.outputs[i]]

    @property
    def edgernn_metadata(self) -> dict | None:
        """edgernn's own metadata entry (:data:`EDGERNN_METADATA`), or None."""
        return decode_edgernn_metadata(self.metadata.get(EDGERNN_METADATA))

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


_MAX_ELEMENTS = 1 << 31  # no tensor of an MCU model comes near 2^31 values


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v or "")


def _indices(v) -> list[int]:
    return [int(i) for i in (v if v is not None else [])]


def parse(raw: bytes, path: str = "<bytes>") -> TFLiteModel:
    """Read and check a .tflite flatbuffer: the ``TFL3`` file identifier, then every index
    (buffers, tensors, operator codes, subgraphs) and every constant's size against its shape.
    A damaged or foreign file gives one :class:`EdgeRNNError` line, never another exception:
    the file is untrusted input."""
    raw = bytes(raw)
    if len(raw) < 8:
        raise EdgeRNNError(f"{path}: not a TFLite flatbuffer ({len(raw)} bytes; run `edgernn convert` "
                           "on a Keras model to make one)")
    if raw[4:8] != b"TFL3":
        raise EdgeRNNError(f"{path}: not a TFLite flatbuffer (file identifier {raw[4:8]!r}, expected b'TFL3'); "
                           "the file is damaged or of another format")
    s = _schema()
    try:
        m = s.ModelT.InitFromPackedBuf(bytearray(raw), 0)
    except Exception as exc:  # the generated reader raises whatever a bad offset leads to
        raise EdgeRNNError(f"{path}: damaged TFLite flatbuffer ({type(exc).__name__} while reading it)") from None
    try:
        return _build(m, raw, path, s)
    except EdgeRNNError:
        raise
    except Exception as exc:  # a field of an unexpected type in a damaged file
        raise EdgeRNNError(f"{path}: damaged TFLite flatbuffer ({type(exc).__name__}: {exc})") from None


def _build(m, raw: bytes, path: str, s) -> TFLiteModel:
    def bad(what: str) -> EdgeRNNError:
        return EdgeRNNError(f"{path}: damaged TFLite flatbuffer ({what})")

    if not m.subgraphs:
        raise EdgeRNNError(f"{path}: the flatbuffer has no subgraphs")
    buffers = m.buffers or []
    codes = m.operatorCodes or []
    n_sub = len(m.subgraphs)
    names = _op_names()
    subgraphs = []
    for si, sg in enumerate(m.subgraphs):
        raw_tensors = sg.tensors or []
        n_t = len(raw_tensors)
        tensors = []
        for i, t in enumerate(raw_tensors):
            where = f"subgraph {si} tensor {i}"
            shape = tuple(_indices(t.shape))
            if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.float64)) >= _MAX_ELEMENTS:
                raise bad(f"{where} has shape {list(shape)}")
            q = t.quantization
            scale = zp = None
            qdim = 0
            if q is not None and q.scale is not None and len(q.scale):
                scale = np.asarray(q.scale, np.float32)
                zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [], np.int64)
                qdim = int(q.quantizedDimension)
                if len(zp) not in (1, len(scale)) or not np.all(np.isfinite(scale)):
                    raise bad(f"{where}: {len(scale)} scales and {len(zp)} zero points")
                if len(scale) > 1 and not (0 <= qdim < len(shape) and shape[qdim] == len(scale)):
                    raise bad(f"{where}: {len(scale)} per-channel scales on dimension {qdim} of {list(shape)}")
            if not 0 <= t.buffer < max(len(buffers), 1):
                raise bad(f"{where} names buffer {t.buffer}; the file has {len(buffers)}")
            buf = buffers[t.buffer] if buffers else None
            data = None
            if buf is not None and buf.data is not None and len(buf.data) and t.type in _NP_TYPES:
                blob = bytes(bytearray(buf.data))
                want = int(np.prod(shape, dtype=np.int64)) * np.dtype(_NP_TYPES[t.type]).itemsize
                if len(blob) != want:
                    raise bad(f"{where}: {len(blob)} bytes of data for shape {list(shape)} "
                              f"{_TYPE_NAMES[t.type]}")
                data = np.frombuffer(blob, dtype=_NP_TYPES[t.type]).reshape(shape)
            tensors.append(Tensor(
                index=i, name=_text(t.name) or f"t{i}", shape=shape, dtype=_TYPE_NAMES.get(t.type, f"type{t.type}"),
                scale=scale, zero_point=zp, quantized_dimension=qdim, data=data, is_variable=bool(t.isVariable)))
        ops = []
        for oi, op in enumerate(sg.operators or []):
            where = f"subgraph {si} operator {oi}"
            if not 0 <= op.opcodeIndex < len(codes):
                raise bad(f"{where} has opcode index {op.opcodeIndex}; the file has {len(codes)}")
            code = codes[op.opcodeIndex]
            opcode = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"OP{code.builtinCode}")
            if opcode == "CUSTOM":
                opcode = f"CUSTOM:{_text(code.customCode) or '?'}"
            inputs, outputs, inter = _indices(op.inputs), _indices(op.outputs), _indices(op.intermediates)
            if any(not -1 <= k < n_t for k in inputs) or any(not 0 <= k < n_t for k in outputs + inter):
                raise bad(f"{where} ({opcode}) names a tensor outside 0..{n_t - 1}")
            for attr in ("condSubgraphIndex", "bodySubgraphIndex", "thenSubgraphIndex", "elseSubgraphIndex",
                         "initSubgraphIndex"):
                k = getattr(op.builtinOptions, attr, None)
                if isinstance(k, int) and not 0 <= k < n_sub:
                    raise bad(f"{where} ({opcode}) names subgraph {k}; the file has {n_sub}")
            ops.append(Operator(opcode=opcode, inputs=inputs, outputs=outputs, options=op.builtinOptions,
                                intermediates=inter))
        ins, outs = _indices(sg.inputs), _indices(sg.outputs)
        if any(not 0 <= k < n_t for k in ins + outs):
            raise bad(f"subgraph {si}'s inputs/outputs name a tensor outside 0..{n_t - 1}")
        subgraphs.append(Subgraph(tensors=tensors, operators=ops, inputs=ins, outputs=outs, name=_text(sg.name)))
    if not subgraphs[0].inputs or not subgraphs[0].outputs:
        raise EdgeRNNError(f"{path}: the main subgraph has no inputs or no outputs")
    metadata = {}
    for md in m.metadata or []:
        if not 0 <= md.buffer < len(buffers):
            raise bad(f"metadata '{_text(md.name)}' names buffer {md.buffer}; the file has {len(buffers)}")
        data = buffers[md.buffer].data
        metadata[_text(md.name)] = bytes(bytearray(data)) if data is not None else b""
    return TFLiteModel(path=path, raw=raw, subgraphs=subgraphs, metadata=metadata)


def read(path) -> TFLiteModel:
    p = Path(path)
    if not p.exists():
        raise EdgeRNNError(f"{p}: no such .tflite file")
    if p.is_dir() or p.suffix != ".tflite":
        raise EdgeRNNError(f"{p}: expected a .tflite flatbuffer (run `edgernn convert` on a Keras model first)")
    return parse(p.read_bytes(), str(p))
