"""Small int8 flatbuffers written op by op with TensorFlow's schema object API (tests only).

``Graph`` collects tensors and operators and ``finish()`` packs a ``.tflite``; the per-op
tests build one graph per hypothesis example (microseconds, no converter), run it in
``tflite_micro.runtime`` and compare edgernn's simulator and native C with it.
"""

from __future__ import annotations

import numpy as np

TYPES = {"int8": 9, "int32": 2, "float32": 0, "int64": 4, "int16": 7}


def schema():
    from tensorflow.lite.python import schema_py_generated as s
    return s


class Graph:
    def __init__(self):
        s = schema()
        self.s = s
        self.model = s.ModelT()
        self.model.version = 3
        self.model.description = b"edgernn test graph"
        self.model.buffers = [s.BufferT()]
        self.model.operatorCodes = []
        self.sg = s.SubGraphT()
        self.sg.tensors, self.sg.operators = [], []
        self.inputs, self.outputs = [], []
        self._codes: dict[str, int] = {}

    def tensor(self, shape, dtype="int8", scale=None, zp=0, data=None, axis=0, name=None, variable=False) -> int:
        s = self.s
        t = s.TensorT()
        t.name = (name or f"t{len(self.sg.tensors)}").encode()
        t.shape = np.asarray(shape, np.int32)
        t.type = TYPES[dtype]
        t.buffer = 0
        t.isVariable = variable
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(scale)]
            q.zeroPoint = [int(v) for v in np.broadcast_to(np.atleast_1d(zp), (len(q.scale),))] \
                if np.size(zp) <= 1 else [int(v) for v in np.atleast_1d(zp)]
            q.quantizedDimension = int(axis)
            t.quantization = q
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(np.asarray(data)).tobytes(), np.uint8)
            self.model.buffers.append(b)
            t.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def const(self, values, dtype="int32", **quant) -> int:
        values = np.asarray(values)
        np_type = {"int32": np.int32, "int8": np.int8, "int64": np.int64, "int16": np.int16,
                   "float32": np.float32}[dtype]
        return self.tensor(values.shape, dtype, data=values.astype(np_type), **quant)

    def input(self, shape, dtype="int8", scale=None, zp=0, name=None) -> int:
        i = self.tensor(shape, dtype, scale, zp, name=name)
        self.inputs.append(i)
        return i

    def op(self, opcode: str, inputs, outputs, options=None, options_type: str | None = None) -> None:
        s = self.s
        if opcode not in self._codes:
            oc = s.OperatorCodeT()
            code = getattr(s.BuiltinOperator, opcode)
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = 1
            self.model.operatorCodes.append(oc)
            self._codes[opcode] = len(self.model.operatorCodes) - 1
        o = s.OperatorT()
        o.opcodeIndex = self._codes[opcode]
        o.inputs = np.asarray(inputs, np.int32)
        o.outputs = np.asarray(outputs, np.int32)
        if options is not None:
            o.builtinOptionsType = getattr(s.BuiltinOptions, options_type or type(options).__name__[:-1])
            o.builtinOptions = options
        self.sg.operators.append(o)

    def options(self, kind: str, **fields):
        o = getattr(self.s, f"{kind}T")()
        for k, v in fields.items():
            setattr(o, k, v)
        return o

    def finish(self, outputs) -> bytes:
        import flatbuffers

        self.sg.inputs = np.asarray(self.inputs, np.int32)
        self.sg.outputs = np.asarray(list(outputs), np.int32)
        self.model.subgraphs = [self.sg]
        b = flatbuffers.Builder(1024)
        b.Finish(self.model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def tflm_run(raw: bytes, xs, outputs: int = 1) -> list[np.ndarray]:
    """TFLM outputs for each sample of each input (inputs: list of (N, *shape[1:]) arrays)."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(raw, arena_size=1 << 22)
    n = len(xs[0])
    out = [[] for _ in range(outputs)]
    for i in range(n):
        it.reset()
        for j, x in enumerate(xs):
            it.set_input(x[i:i + 1], j)
        it.invoke()
        for k in range(outputs):
            out[k].append(np.array(it.get_output(k)))
    return [np.concatenate(o) for o in out]




_KERNEL_OBJECTS: dict[str, list] = {}


def native_build(raw: bytes, directory, name: str = "m", kernel: str | None = None):
    """``emit_native`` of ``raw`` into ``directory`` (``kernel``: the host's default, or the given
    kernel choice), compiled with the host harness. The kernel sources are compiled once per test
    session (keyed by their contents) and linked in."""
    import hashlib
    import tempfile
    from pathlib import Path

    from edgernn.backends.native import emit_native
    from edgernn.backends.native.emit import load_plan
    from edgernn.backends.native.host import C_FLAGS, NativeBuild, compile_c

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.tflite"
    path.write_bytes(raw)
    files = emit_native(path, d, name, harness=True, kernel=kernel)
    kernels = sorted(f for f in files if f.name.startswith("edgernn_"))
    key = hashlib.sha256(b"".join(f.read_bytes() for f in kernels)).hexdigest()
    if key not in _KERNEL_OBJECTS:
        cache = Path(tempfile.mkdtemp(prefix="edgernn-kernels-"))
        for f in kernels:
            (cache / f.name).write_bytes(f.read_bytes())
        objs = []
        for f in kernels:
            if f.suffix == ".c":
                obj = cache / (f.stem + ".o")
                compile_c("gcc", [cache / f.name], obj, C_FLAGS, compile_only=True)
                objs.append(obj)
        _KERNEL_OBJECTS[key] = objs
    exe = d / "harness"
    compile_c("gcc", [d / f"{name}.c", d / "host_harness.c", *_KERNEL_OBJECTS[key]], exe)
    return NativeBuild(directory=d, name=name, plan=load_plan(path), executable=exe)


def m4_instructions_within_5_percent(path, x, y, directory, name: str, section: str, row: str, script: str,
                                     target: str = "cortex-m4"):
    """``emit --target cortex-m4`` (or ``target``) of the .tflite ``path``, its self-test (inputs
    ``x``, TFLM's outputs ``y``) in QEMU: every vector must pass, and the instructions per
    inference must be within 5 % of bench/expected.json's ``[section][row]`` (``script --record``
    updates it). Returns the run result."""
    import json
    from pathlib import Path

    from edgernn.backends.native import emit_native
    from edgernn.firmware import run_project, write_project

    want = json.loads((Path(__file__).parents[1] / "bench" / "expected.json").read_text())[section][row]["instructions"]
    d = Path(directory)
    sources = emit_native(path, d / "src", name, target=target)
    project = write_project(d / "fw", target=target, name=name, vectors_x_int8=x, vectors_y_int8=y,
                            model_sources=sources)
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    assert r.perf.unit == "instructions"
    assert abs(r.perf.per_inference - want) <= 0.05 * want, (
        f"{row}: {r.perf.per_inference:,.0f} instructions per inference, bench/expected.json says {want:,}: "
        f"rerun {script} --record if this is intended")
    return r
