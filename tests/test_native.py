"""Native C99 backend: the generated C equals the TFLM runtime bit for bit on real models.

LSTM models (fused UNIDIRECTIONAL_SEQUENCE_LSTM) and GRU / SimpleRNN models (WHILE loops),
single and stacked, on BasicMotions and digits.

Every test compiles the C that ``emit_native`` writes (gcc -Werror, and arm-none-eabi-gcc for
the Cortex-M4) and runs it through the host harness, against
``tflite_micro.runtime`` on the same int8 inputs (reset between samples).
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from conftest import Spec, load_npz
from edgernn.backends.native import emit_native
from edgernn.backends.native.host import (C_FLAGS, CORTEX_M4_FLAGS, NativeBuild, compile_c, run_native,
                                          tflite_with_timesteps, undefined_symbols)
from edgernn.errors import EdgeRNNError
from edgernn.tflite_model import read

MODELS = {
    "lstm32-basic_motions": (Spec(), "basic_motions"),
    "lstm16x2-basic_motions": (Spec(layers=2, units=16), "basic_motions"),
    "lstm16-digits": (Spec(dataset="digits", units=16, epochs=20), "digits"),
    # WHILE-loop graphs (zoo models the simulator and cell tests train too)
    "gru16-digits": (Spec(cell="gru", dataset="digits", units=16, epochs=20), "digits"),
    "rnn16-digits": (Spec(cell="rnn", dataset="digits", units=16, epochs=20), "digits"),
    "gru32x2-basic_motions": (Spec(cell="gru", layers=2), "basic_motions"),
}
IDS = list(MODELS)


def quantize(x: np.ndarray, model) -> np.ndarray:
    inp = model.input()
    q = np.round(x / inp.scale[0]) + inp.zero_point[0]
    return np.clip(q, -128, 127).astype(np.int8)


def tflm_outputs(raw: bytes, xq: np.ndarray) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(raw, arena_size=4 << 20)
    out = []
    for sample in xq:
        it.reset()
        it.set_input(sample[None], 0)
        it.invoke()
        out.append(np.array(it.get_output(0)).reshape(-1))
    return np.stack(out)


@pytest.fixture(scope="module")
def native(zoo, tmp_path_factory):
    """key -> (tflite path, int8 test inputs, labels, NativeBuild)."""
    cache = {}

    def get(key):
        if key not in cache:
            spec, dataset = MODELS[key]
            path = zoo.tflite(spec)
            x, y = load_npz(zoo.data(dataset)[1])
            xq = quantize(x, read(path))
            build = NativeBuild.create(path, tmp_path_factory.mktemp(f"native-{key}"), name="model")
            cache[key] = (path, xq, y, build)
        return cache[key]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("key", IDS)
def test_native_equals_tflm_runtime_on_every_test_sample(native, key):
    path, xq, labels, build = native(key)
    want = tflm_outputs(read(path).raw, xq)
    got = build.run(xq)
    assert got.shape == want.shape
    mismatching = np.flatnonzero((got != want).any(axis=1))
    assert mismatching.size == 0, f"{mismatching.size}/{len(xq)} samples differ, first {mismatching[:5]}"
    # and the model is not trivially constant: it classifies the real test set
    assert np.mean(got.argmax(1) == labels) > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("key", IDS)
def test_step_by_step_equals_run(native, key):
    _, xq, _, build = native(key)
    xq = xq[:12]
    steps = build.steps(xq)  # NAME_reset, then NAME_step over every time step
    run = build.run(xq)
    assert np.array_equal(steps[:, -1], run)
    # a shorter sequence through NAME_run equals the step output at that time step
    t = xq.shape[1] // 2
    assert np.array_equal(build.run(xq[:, :t]), steps[:, t - 1])


@pytest.mark.slow
def test_any_sequence_length_matches_tflm_with_the_same_weights(native):
    path, xq, _, build = native("lstm32-basic_motions")
    raw = read(path).raw
    for t in (1, 37, 250):
        x = np.resize(xq[:4], (4, t, xq.shape[2])) if t > xq.shape[1] else xq[:4, :t]
        x = np.ascontiguousarray(x.astype(np.int8))
        assert np.array_equal(build.run(x), tflm_outputs(tflite_with_timesteps(raw, t), x)), f"T={t}"


@pytest.mark.slow
def test_run_native_one_call_and_float_wrappers(native):
    path, xq, _, build = native("lstm16-digits")
    y = run_native(path, xq[:20])
    assert np.array_equal(y, build.run(xq[:20]))
    # NAME_run_f32: quantizes (round half away from zero), runs, dequantizes
    m = read(path)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, size=(6, xq.shape[1], xq.shape[2])).astype(np.float32)
    s, zp = float(m.input().scale[0]), int(m.input().zero_point[0])
    v = (x / np.float32(s)).astype(np.float32)
    q = np.clip(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + zp, -128, 127).astype(np.int8)
    out = m.output()
    want = (build.run(q).astype(np.float32) - out.zero_point[0]) * out.scale[0]
    assert np.allclose(build.run_f32(x), want, rtol=0, atol=1e-7)


def _sources(tmp_path, path, name="kws"):
    files = emit_native(path, tmp_path, name)
    return files, [f for f in files if f.suffix == ".c"]


@pytest.mark.slow
@pytest.mark.parametrize("key", IDS)
def test_werror_clean_with_gcc_and_arm_none_eabi_gcc(zoo, tmp_path, key):
    path = zoo.tflite(MODELS[key][0])
    _, sources = _sources(tmp_path, path)
    for src in sources:
        compile_c("gcc", [src], src.with_suffix(".host.o"), (*C_FLAGS, "-Wshadow", "-Wundef"),
                  compile_only=True)
        compile_c("arm-none-eabi-gcc", [src], src.with_suffix(".arm.o"), (*C_FLAGS, *CORTEX_M4_FLAGS),
                  compile_only=True)


@pytest.mark.slow
def test_no_malloc_and_no_floating_point_in_the_int8_path(zoo, tmp_path):
    path = zoo.tflite(MODELS["lstm16x2-basic_motions"][0])
    _, sources = _sources(tmp_path, path)
    heap = {"malloc", "calloc", "realloc", "free", "aligned_alloc"}
    for src in sources:
        obj = src.with_suffix(".o")
        compile_c("arm-none-eabi-gcc", [src], obj, (*C_FLAGS, *CORTEX_M4_FLAGS), compile_only=True)
        assert not heap & undefined_symbols(obj), src.name
    # the kernels compiled for a soft-float ABI call no float helper: no float in the int8 path
    kernels = tmp_path / "edgernn_kernels.c"
    soft = tmp_path / "kernels_soft.o"
    compile_c("arm-none-eabi-gcc", [kernels], soft, (*C_FLAGS, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft"),
              compile_only=True)
    helpers = {s for s in undefined_symbols(soft) if re.match(r"__aeabi_[fd]|__(add|sub|mul|div)[sd]f3", s)}
    assert not helpers and undefined_symbols(soft) <= {"memcpy", "memset"}


@pytest.mark.slow
def test_header_contract_and_the_documented_usage_compiles(zoo, tmp_path):
    path = zoo.tflite(MODELS["lstm32-basic_motions"][0])
    m = read(path)
    files, sources = _sources(tmp_path, path, "kws")
    header = (tmp_path / "kws.h").read_text()
    source = (tmp_path / "kws.c").read_text()
    assert {f.name for f in files} == {"kws.h", "kws.c", "edgernn_kernels.h", "edgernn_kernels.c", "edgernn_fast.h",
                                       "edgernn_pairs.h", "edgernn_rows.h", "edgernn_fc16w.h", "edgernn_mve_fc.h",
                                       "edgernn_tables.c"}
    assert "generated by edgernn" in header and "do not edit" in header and path.name in header
    for proto in ("void kws_reset(void);", "int kws_step(const int8_t *x_t, int8_t *y);",
                  "int kws_run(const int8_t *x, int T, int8_t *y);", "int kws_step_f32(const float *x_t, float *y);",
                  "int kws_run_f32(const float *x, int T, float *y);"):
        assert proto in header
    macros = dict(re.findall(r"#define (KWS_\w+) (\S+)", header))
    assert macros["KWS_TIMESTEPS"] == str(m.input().shape[1]) and macros["KWS_FEATURES"] == str(m.input().shape[2])
    assert macros["KWS_OUTPUTS"] == str(m.output().shape[-1])
    assert macros["KWS_INPUT_ZERO_POINT"] == f"({int(m.input().zero_point[0])})"
    assert np.float32(macros["KWS_OUTPUT_SCALE"].rstrip("f")) == m.output().scale[0]
    assert int(macros["KWS_STATE_BYTES"]) == 32 * 3  # int8 hidden + int16 cell of 32 units
    assert 0 < int(macros["KWS_SCRATCH_BYTES"]) < 1024
    assert "malloc" not in source
    assert not re.search(r"\b(float|double)\b", (tmp_path / "edgernn_kernels.c").read_text())
    # the usage from the header comment, as a user would write it
    main = tmp_path / "main.c"
    main.write_text("""#include <stdio.h>
#include "kws.h"
int main(void) {
    static int8_t x[KWS_TIMESTEPS * KWS_FEATURES];
    int8_t y[KWS_OUTPUTS];
    int8_t y_t[KWS_STEP_OUTPUTS];
    float xf[KWS_FEATURES] = {0};
    float yf[KWS_STEP_OUTPUTS];
    int t;
    if (kws_run(x, KWS_TIMESTEPS, y) != 0) return 1;
    kws_reset();
    for (t = 0; t < KWS_TIMESTEPS; ++t) kws_step(x + t * KWS_FEATURES, y_t);
    if (kws_run(NULL, 3, y) == 0 || kws_run(x, 0, y) == 0) return 2;
    if (kws_step_f32(xf, yf) != 0) return 3;
    printf("%d %d\\n", y[0], y_t[0]);
    return y[0] == y_t[0] ? 0 : 4;
}
""")
    exe = tmp_path / "usage"
    compile_c("gcc", [main, *sources], exe)
    proc = subprocess.run([str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_bidirectional_run_equals_tflm_and_step_is_refused(zoo):
    """Bidirectional(GRU) then Dense: NAME_run bit-exact; NAME_step returns EDGERNN_ERR_UNSUPPORTED."""
    import tempfile

    path = zoo.tflite(Spec(cell="gru", units=12, bidirectional=True, epochs=40))
    x, _ = load_npz(zoo.data("basic_motions")[1])
    xq = quantize(x, read(path))
    with tempfile.TemporaryDirectory() as tmp:
        build = NativeBuild.create(path, tmp)
        assert build.plan.bidirectional
        assert np.array_equal(build.run(xq), tflm_outputs(read(path).raw, xq))
        with pytest.raises(EdgeRNNError, match="status 4"):
            build.steps(xq[:1])
        header = (build.directory / "model.h").read_text()
        assert "#define MODEL_BIDIRECTIONAL 1" in header and "EDGERNN_ERR_UNSUPPORTED" in header


def test_refusals_name_the_problem(tmp_path, zoo):
    with pytest.raises(EdgeRNNError, match="--name"):
        emit_native(zoo.tflite(Spec()), tmp_path, name="my model")
    with pytest.raises(EdgeRNNError, match="no such .tflite"):
        emit_native(tmp_path / "missing.tflite", tmp_path)


def test_compiler_errors_surface_as_one_line(tmp_path):
    bad = tmp_path / "bad.c"
    bad.write_text("int f(void) { return undefined_name; }\n")
    with pytest.raises(EdgeRNNError, match="gcc failed to compile.*undefined_name"):
        compile_c("gcc", [bad], tmp_path / "bad.o", C_FLAGS, compile_only=True)


PRIMITIVES_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "edgernn_kernels.h"
/* stdin: n, then n lines "x multiplier shift"; stdout: sigmoid/tanh of every int16, then MBQM */
int main(void) {
    long v, n, i;
    for (v = -32768; v < 32768; ++v) {
        printf("%d %d %d %d\n", edgernn_activation_sigmoid_one_s16((int16_t)v),
               edgernn_activation_tanh_one_s16((int16_t)v, 3, 0), edgernn_activation_tanh_one_s16((int16_t)v, 6, 0),
               edgernn_activation_tanh_one_s16((int16_t)v, 3, 2));
    }
    if (scanf("%ld", &n) != 1) return 1;
    for (i = 0; i < n; ++i) {
        long x, m, s;
        if (scanf("%ld %ld %ld", &x, &m, &s) != 3) return 1;
        printf("%ld\n", (long)edgernn_fixed_mul_by_quantized_multiplier((int32_t)x, (int32_t)m, (int)s));
    }
    return 0;
}
"""


def test_kernel_primitives_equal_the_fixed_point_reference(tmp_path):
    """int16 sigmoid/tanh on every input and MultiplyByQuantizedMultiplier on 20k values equal
    the numpy twins of TFLM's routines (edgernn.fixedpoint)."""
    from edgernn.backends.native.emit import TEMPLATE_DIR
    from edgernn import fixedpoint as fp

    src = tmp_path / "primitives.c"
    src.write_text(PRIMITIVES_C)
    exe = tmp_path / "primitives"
    compile_c("gcc", [src, TEMPLATE_DIR / "edgernn_kernels.c"], exe, (*C_FLAGS, f"-I{TEMPLATE_DIR}"))
    rng = np.random.default_rng(1)
    n = 20000
    x = np.concatenate([rng.integers(-(1 << 31), 1 << 31, n // 2), rng.integers(-70000, 70000, n // 2)])
    m = rng.integers(1 << 30, (1 << 31) - 1, n)
    s = rng.integers(-31, 3, n)
    x[:200], m[:200] = rng.integers(-40000, 40000, 200), 1 << 30  # exact ties
    stdin = f"{n}\n" + "\n".join(f"{a} {b} {c}" for a, b, c in zip(x, m, s)) + "\n"
    out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True).stdout.split("\n")
    acts = np.array([list(map(int, line.split())) for line in out[:65536]])
    v = np.arange(-32768, 32768)
    assert np.array_equal(acts[:, 0], fp.logistic_int16(v))
    assert np.array_equal(acts[:, 1], fp.tanh_int16(v, 3, 0))
    assert np.array_equal(acts[:, 2], fp.tanh_int16(v, 6, 0))
    assert np.array_equal(acts[:, 3], fp.tanh_int16(v, 3, 2))
    mbqm = np.array(list(map(int, out[65536:65536 + n])))
    want = np.array([int(fp.multiply_by_quantized_multiplier(int(a), int(b), int(c)))
                     for a, b, c in zip(fp.wrap_int32(x), m, s)])
    assert np.array_equal(mbqm, want)


def _single_op_model(opcode: str, in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> bytes:
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    code = getattr(schema.BuiltinOperator, opcode)
    m = schema.ModelT()
    m.version = 3
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = code
    oc.version = 1
    m.operatorCodes = [oc]
    m.buffers = [schema.BufferT() for _ in range(3)]
    tensors = []
    for i, (name, scale, zp) in enumerate((("x", in_scale, in_zp), ("y", out_scale, out_zp))):
        t = schema.TensorT()
        t.shape, t.type, t.name, t.buffer = [1, 256], schema.TensorType.INT8, name, i + 1
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [zp]
        t.quantization = q
        tensors.append(t)
    sg = schema.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs = tensors, [0], [1]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    sg.operators = [op]
    m.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize("opcode,out_scale,out_zp", [("LOGISTIC", 1 / 256, -128), ("TANH", 1 / 128, 0)])
@pytest.mark.parametrize("in_scale,in_zp", [(0.0465, 7), (0.21, -100), (0.0031, 0)])
def test_int8_activation_tables_equal_tflm_on_all_256_inputs(opcode, out_scale, out_zp, in_scale, in_zp):
    from tflite_micro.python.tflite_micro import runtime

    from edgernn.backends.native.loop import int8_activation_table
    from edgernn.tflite_model import parse

    raw = _single_op_model(opcode, in_scale, in_zp, out_scale, out_zp)
    m = parse(raw)
    table = int8_activation_table(opcode, m.main.tensors[0], m.main.tensors[1])
    it = runtime.Interpreter.from_bytes(raw, arena_size=1 << 16)
    it.set_input(np.arange(-128, 128, dtype=np.int8)[None], 0)
    it.invoke()
    assert np.array_equal(table, np.array(it.get_output(0)).reshape(-1))


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_per_step_outputs_return_sequences(tmp_path, cell):
    """LSTM/GRU(return_sequences=True) -> Dense(softmax) on every step: NAME_run writes T outputs."""
    import keras

    import edgernn

    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 20, 5)).astype(np.float32)
    inp = keras.Input((20, 5))
    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    y = keras.layers.Dense(3, activation="softmax")(layer(8, return_sequences=True, seed=1)(inp))
    keras.Model(inp, y).save(tmp_path / "m.keras")
    path = tmp_path / "m.tflite"
    edgernn.convert(tmp_path / "m.keras", calib=x, output=path)
    xq = quantize(x[:8], read(path))
    build = NativeBuild.create(path, tmp_path / "native")
    assert not build.plan.last_step_only and build.plan.outputs == 20 * 3
    got = build.run(xq)
    assert got.shape == (8, 20, 3)
    assert np.array_equal(got.reshape(8, -1), tflm_outputs(read(path).raw, xq))
    assert np.array_equal(build.steps(xq), got)
