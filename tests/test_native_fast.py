"""The fast LSTM kernels: their arithmetic, their weight layouts, and whole models against TFLM.

* the signed-segment sigmoid / tanh tables (``edgernn/backends/native/tables.py``) equal TFLM's
  int16 Logistic / Tanh on every input;
* the C primitives of ``edgernn_fast.h`` equal the reference ones of ``edgernn_kernels.h``
  (exhaustively where the domain allows, on sweeps and ties elsewhere);
* the row-pair words decode to the weights they came from; the emitter refuses what the
  layout cannot hold;
* models compiled with each layout (the C twins on the host, the Cortex-M4/M7/M33 assembly,
  Helium on the M55, C on the M0+/M3, in QEMU) equal the TFLM runtime bit for bit: odd unit
  and input counts, three stacked layers, the whole hidden-state sequence of every step, a cell
  clip, other cell scales, positive shifts (the last three by editing a flatbuffer's
  quantization, which TFLM and edgernn both read). Per-step heads: tests/test_native.py.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from edgernn.backends.native import fastlstm, tables
from edgernn.backends.native.emit import TEMPLATE_DIR, emit_native, load_plan
from edgernn.backends.native.host import C_FLAGS, NativeBuild, compile_c
from edgernn.tflite_model import read

T, F = 12, 5


# --------------------------------------------------------------------------- tables
def test_tables_equal_tflm_logistic_and_tanh_on_every_int16():
    from edgernn import fixedpoint as fp

    x = np.arange(-32768, 32768)
    assert np.array_equal(tables.sigmoid(x), fp.logistic_int16(x))
    for mult, shift in ((3, 0), (6, 0), (12, 0), (48, 0), (3, 1), (3, 2), (3, 5)):
        v = (x * mult + ((1 << (shift - 1)) if shift else 0)) >> shift
        assert np.array_equal(tables.tanh(v), fp.tanh_int16(x, mult, shift)), (mult, shift)
    # the loop steps' shared table (any input scale): every v TFLM's Prepare multipliers reach,
    # the flat ends beyond; the one's-complement segment misses only the sigmoid's v = -255 x 512
    v = np.concatenate([np.arange(-(1 << 19), 1 << 19), np.array([-(1 << 30), -(1 << 25), 1 << 25, (1 << 30) - 1])])
    assert np.array_equal(tables.sigmoid16(v, True), fp.logistic_int16(v, 1, 0))
    assert v[tables.sigmoid16(v) != fp.logistic_int16(v, 1, 0)].tolist() == [-255 * 512]
    assert np.array_equal(tables.tanh16(v), fp.tanh_int16(v, 1, 0))
    for mult, shift in ((28366, 13), (16384, 0), (32767, 1), (20000, 16), (3, 0), (24, 0)):
        v = (x * mult + ((1 << (shift - 1)) if shift else 0)) >> shift
        assert np.array_equal(tables.sigmoid16(v, True), fp.logistic_int16(x, mult, shift)), (mult, shift)
        assert np.array_equal(tables.tanh16(v), fp.tanh_int16(x, mult, shift)), (mult, shift)
    assert len(tables.act16_table()[0]) == 256 and tables.act16_table()[0].max() < 1 << 16
    g, d = tables.act16_table()
    g[100] += 1
    v = np.arange(-(1 << 18), 1 << 18)
    i = np.minimum((v ^ (v >> 31)) >> 8, 255)
    assert not np.array_equal(((v >> 31 ^ (g[i] << 7)) + v * d[i] + 128) >> 8, fp.tanh_int16(v, 1, 0))
    # a wrong table entry is caught (the check above can fail)
    a, d = tables.sigmoid_folded()
    a[200] += 1
    v = 3 * x
    i = (v >> 9) + 192
    assert not np.array_equal(((a[i] + v * d[i]) & 0xFFFFFFFF) >> 10, fp.logistic_int16(x))


PRIMITIVES_C = r"""
#include <stdio.h>
#include "edgernn_fast.h"

static uint32_t lcg = 12345u;
static int32_t rnd(void) { lcg = lcg * 1664525u + 1013904223u; return (int32_t)(lcg >> 1); }

int main(void)
{
    static const int32_t tanh_prescale[7][2] = {{3, 0}, {6, 0}, {12, 0}, {48, 0}, {3, 1}, {3, 2}, {3, 5}};
    static const int32_t logistic_prescale[6][2] = {{28366, 13}, {16384, 0}, {32767, 1}, {20000, 16}, {3, 0}, {24, 0}};
    long bad[6] = {0, 0, 0, 0, 0, 0};
    long checked[6] = {0, 0, 0, 0, 0, 0};
    long v;
    int s;
    int k;
    for (v = -32768; v < 32768; ++v) {
        bad[0] += edgernn_sigmoid_fast(v) != edgernn_sigmoid_s16((int16_t)v);
        checked[0]++;
        for (k = 0; k < 6; ++k) { /* the loop steps' shared table at any input scale */
            const int32_t m = logistic_prescale[k][0], rs = logistic_prescale[k][1];
            const int32_t t = rs ? ((int32_t)v * m + (1 << (rs - 1))) >> rs : (int32_t)v * m;
            bad[0] += edgernn_sigmoid16_abs(t) != edgernn_logistic_one_s16((int32_t)v, m, rs);
            bad[0] += edgernn_sigmoid16(t) != edgernn_logistic_one_s16((int32_t)v, m, rs) && t != -255 * 512;
            bad[1] += edgernn_tanh16(t) != edgernn_tanh_s16((int16_t)v, m, rs);
            checked[0]++;
        }
        for (k = 0; k < 7; ++k) {
            const int32_t m = tanh_prescale[k][0], rs = tanh_prescale[k][1];
            const int32_t t = rs ? ((int32_t)v * m + (1 << (rs - 1))) >> rs : (int32_t)v * m;
            bad[1] += edgernn_tanh_fast(t) != edgernn_tanh_s16((int16_t)v, m, rs);
            checked[1]++;
        }
    }
    /* MBQM(p, 2^30, -s) for |p| < 2^30: a stride over the range, and every tie region */
    for (s = 1; s <= 30; ++s) {
        long p;
        for (p = -(1L << 30) + 1; p < (1L << 30); p += 7919) {
            bad[2] += edgernn_mul_pow2((int32_t)p, s) != edgernn_mbqm((int32_t)p, 1 << 30, -s);
            checked[2]++;
        }
        for (k = -2000; k <= 2000; ++k) {
            long d;
            for (d = -3; d <= 3; ++d) {
                p = (long)k * (1L << (s < 19 ? s + 1 : 19)) + d;
                bad[2] += edgernn_mul_pow2((int32_t)p, s) != edgernn_mbqm((int32_t)p, 1 << 30, -s);
                checked[2]++;
            }
        }
    }
    /* requantization of pre-scaled accumulators, every shift TFLM's gates may have */
    for (s = -24; s <= 7; ++s) {
        const int ls = s > 0 ? s : 0, rs = s > 0 ? 0 : -s;
        const int32_t limit = (int32_t)((1L << 30) >> ls);
        for (k = 0; k < 60000; ++k) {
            const int32_t m = k < 20000 ? (1 << 30) : (1 << 30) + rnd() % (1 << 30);
            const int32_t acc = k % 3 == 0 ? rnd() % limit : (rnd() % 140001) - 70000;
            const int32_t scaled = acc * (1 << (1 + ls));
            bad[3] += edgernn_rq_prescaled(scaled, m, rs) != edgernn_clamp_s16(edgernn_mbqm(acc, m, s));
            checked[3]++;
        }
    }
    /* the hidden requantization: p = o t, o in [0, 32767], t in [-32767, 32767] */
    for (s = -30; s <= -1; ++s) {
        for (k = 0; k < 40000; ++k) {
            const int32_t o = k < 100 ? 32767 - k : rnd() % 32768, t = k < 200 ? (k % 2 ? 32767 : -32767) : rnd() % 65535 - 32767;
            const int32_t m = k % 4 == 0 ? (1 << 30) : (1 << 30) + rnd() % (1 << 30);
            const int32_t zp = rnd() % 256 - 128;
            bad[4] += edgernn_hidden_value(o * t, m, s, zp) != edgernn_clamp_s8(zp + edgernn_mbqm(o * t, m, s));
            checked[4]++;
        }
    }
    /* the fast step's forms with the sign taken from the second factor (the first, a gate
     * activation, is >= 0, and 0 included): the cell products and the hidden value */
    for (k = 0; k < 4000000; ++k) {
        const int32_t a = k < 65536 ? k % 3 * 16383 : rnd() % 32768, b = k < 65536 ? k - 32768 : rnd() % 65536 - 32768;
        const int32_t m = k % 2 ? (1 << 30) : (1 << 30) + rnd() % (1 << 30);
        s = 1 + k % 29;
        bad[5] += edgernn_cell_product_signed(a, b, 1 << 30, -s) != edgernn_clamp_s16(edgernn_mbqm(a * b, 1 << 30, -s));
        bad[5] += edgernn_cell_product_signed(a, b, m, -s) != edgernn_clamp_s16(edgernn_mbqm(a * b, m, -s));
        bad[5] += edgernn_hidden_value_signed(a, b, m, -1 - k % 24, k % 256 - 128) !=
                  edgernn_clamp_s8(k % 256 - 128 + edgernn_mbqm(a * b, m, -1 - k % 24));
        checked[5] += 3;
    }
    printf("%ld %ld %ld %ld %ld %ld\n%ld %ld %ld %ld %ld %ld\n", bad[0], bad[1], bad[2], bad[3], bad[4], bad[5],
           checked[0], checked[1], checked[2], checked[3], checked[4], checked[5]);
    return 0;
}
"""


def test_fast_primitives_equal_the_reference_kernels(tmp_path):
    """edgernn_fast.h's portable forms (what the host runs) against edgernn_kernels.h's TFLM-exact
    ones: sigmoid and tanh on every int16 input, the power-of-two and general requantizations on
    sweeps and around their ties, the step's forms that take a product's sign from one factor."""
    emit_dir = tmp_path / "k"
    emit_dir.mkdir()
    (emit_dir / "edgernn_tables.c").write_text(_tables_c(tmp_path))
    src = tmp_path / "primitives.c"
    src.write_text(PRIMITIVES_C)
    exe = tmp_path / "primitives"
    compile_c("gcc", [src, emit_dir / "edgernn_tables.c", TEMPLATE_DIR / "edgernn_kernels.c"], exe,
              (*C_FLAGS, f"-I{TEMPLATE_DIR}"))
    bad, checked = (list(map(int, line.split())) for line in
                    subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines())
    assert bad == [0] * 6, f"mismatches (sigmoid, tanh, mul_pow2, requantization, hidden, signed forms): {bad}"
    assert checked[0] == 7 * 65536 and checked[1] == 7 * 65536 and min(checked[2:]) > 10**6


def _tables_c(tmp_path) -> str:
    from edgernn.backends.codegen import render

    return render("native/edgernn_tables.c.j2", version="test", tables=tables.activation_tables())


# --------------------------------------------------------------------------- layouts
def test_pair_words_decode_to_both_rows():
    rng = np.random.default_rng(0)
    lo = rng.integers(-127, 128, 64)
    hi = rng.integers(-127, 128, 64)
    lo[:4], hi[:4] = [-127, 127, -1, 0], [-127, 127, 127, -127]
    w = fastlstm.pair_words(lo, hi).astype(np.int64)
    halves = np.stack([w & 0xFFFF, w >> 16], axis=1).reshape(-1)
    halves = np.where(halves >= 32768, halves - 65536, halves)
    assert np.array_equal(halves, 256 * hi + lo)  # what SMLAD multiplies
    low_bytes = np.stack([w & 0xFF, (w >> 16) & 0xFF], axis=1).reshape(-1)
    assert np.array_equal(np.where(low_bytes >= 128, low_bytes - 256, low_bytes), lo)  # SXTB16
    # the kernel's decode: B = lo.x, A = (256 hi + lo).x, high row = (A - B) >> 8
    x = rng.integers(-256, 256, 64)
    a, b = int(np.dot(256 * hi + lo, x)), int(np.dot(lo, x))
    assert b == int(np.dot(lo, x)) and (a - b) >> 8 == int(np.dot(hi, x))
    with pytest.raises(fastlstm.NotFast, match="-128"):
        fastlstm.pair_words(np.array([-3, 1]), np.array([-128, 0]))


def test_pairs_layout_refuses_accumulators_it_cannot_decode():
    w = np.full((2, 300), 127)
    with pytest.raises(fastlstm.NotFast, match="high row"):
        fastlstm._pairs_product(w, np.zeros(2, np.int64), 2, "test product")
    with pytest.raises(fastlstm.NotFast, match="left shift 8"):
        fastlstm.pre_scale(8, "test product")


# --------------------------------------------------------------------------- whole models
def _keras_model(name: str):
    import keras

    L = keras.layers
    rng = np.random.default_rng(sum(map(ord, name)))
    inp = keras.Input((T, F))
    if name == "stacked":  # 5 inputs (a zero column); 10 units (a pass of three pairs, then two),
        # 7 (a zero row, an odd recurrent width), 9, each layer reading the previous one's sequence
        h = L.LSTM(9)(L.LSTM(7, return_sequences=True)(L.LSTM(10, return_sequences=True)(inp)))
        h = L.Dense(4, activation="softmax")(h)
    else:  # "sequence": the LSTM's whole hidden-state sequence is the output, every step checked
        h = L.LSTM(20, return_sequences=True)(inp)
    model = keras.Model(inp, h, name=name)
    model.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> .tflite path: seeded Keras models converted by edgernn, some with edited quantization."""
    import edgernn

    tmp = tmp_path_factory.mktemp("fast")
    rng = np.random.default_rng(3)
    calib = (rng.standard_normal((64, T, F)) * 1.5).astype(np.float32)
    out = {}
    for name in ("stacked", "sequence"):
        out[name] = tmp / f"{name}.tflite"
        edgernn.convert(_keras_model(name), calib=calib, output=out[name])
    base = out["sequence"].read_bytes()
    # edits TFLM reads the same way: cell clip and cell scales exercise the tail's branches, a
    # 64x hidden scale gives the recurrent products a positive (left) shift
    for name, edit in (("clip", dict(cell_clip=1.5)), ("cell2e-11", dict(cell_power=-11, cell_clip=3.0)),
                       ("cell2e-14", dict(cell_power=-14)), ("left_shift", dict(hidden_factor=64.0))):
        out[name] = tmp / f"{name}.tflite"
        out[name].write_bytes(_edit_lstm(base, **edit))
    return out


def _edit_lstm(raw: bytes, *, cell_clip: float | None = None, cell_power: int | None = None,
               hidden_factor: float | None = None) -> bytes:
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(raw), 0)
    sg = model.subgraphs[0]
    for op in sg.operators:
        if model.operatorCodes[op.opcodeIndex].builtinCode != schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM:
            continue
        if cell_clip is not None:
            op.builtinOptions.cellClip = cell_clip
        if cell_power is not None:
            sg.tensors[op.inputs[19]].quantization.scale = [2.0 ** cell_power]
        if hidden_factor is not None:
            for t in (op.inputs[18], op.outputs[0]):
                q = sg.tensors[t].quantization
                q.scale = [float(q.scale[0]) * hidden_factor]
    b = flatbuffers.Builder(len(raw) + 1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _inputs(path, n: int = 12) -> np.ndarray:
    m = read(path)
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, size=(n,) + tuple(m.input().shape[1:])).astype(np.int8)
    x[:3] = np.where(x[:3] >= 0, 127, -128)  # saturated inputs drive the cell state to its limits
    return x


def _tflm(path, x) -> np.ndarray:
    from test_native import tflm_outputs

    return tflm_outputs(read(path).raw, x)


CASES = ["stacked", "sequence", "clip", "cell2e-11", "cell2e-14", "left_shift"]


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["pairs", "rows"])
@pytest.mark.parametrize("case", CASES)
def test_fast_kernels_equal_tflm_on_the_host(models, tmp_path, case, kernel):
    path = models[case]
    build = NativeBuild.create(path, tmp_path, kernel=kernel, flags=(*C_FLAGS, "-Wshadow", "-Wundef"))
    assert all(layer.fast is not None and layer.fast.kernel == kernel for layer in build.plan.recurrent), \
        [layer.fast_reason for layer in build.plan.recurrent]
    x = _inputs(path)
    got = build.run(x).reshape(len(x), -1)
    assert np.array_equal(got, _tflm(path, x))
    steps = build.steps(x[:4])  # NAME_reset, then NAME_step: the same bits
    assert np.array_equal(steps[:, -1] if build.plan.last_step_only else steps.reshape(4, -1), got[:4])


def test_the_edits_reach_the_kernels(models):
    """The edited models have what their names say (else the tests above would prove less)."""
    def lstm(case):
        return load_plan(models[case], "pairs").recurrent[0]

    assert lstm("clip").quantized_cell_clip < 32767
    assert lstm("cell2e-11").cell_tanh == (6, 0) and lstm("cell2e-14").cell_tanh == (3, 2)
    assert any(g.recurrent_shift > 0 for g in lstm("left_shift").gates)
    assert all(g.recurrent_shift <= 0 for g in lstm("sequence").gates)
    plan = load_plan(models["stacked"], "pairs")
    assert [(layer.n_input, layer.n_cell, layer.fast.units) for layer in plan.recurrent] == [(5, 10, 10), (10, 7, 8),
                                                                                          (7, 9, 10)]
    assert not load_plan(models["sequence"]).last_step_only


def test_reference_kernel_and_why_a_layer_keeps_it(models, tmp_path):
    files = emit_native(models["stacked"], tmp_path / "ref", kernel="reference")
    text = next(f for f in files if f.name == "model.c").read_text()
    assert "edgernn_lstm_step(" in text and "EDGERNN_PAIRS_GATE_KERNEL" not in text
    files = emit_native(models["stacked"], tmp_path / "pairs", target="cortex-m4")
    text = next(f for f in files if f.name == "model.c").read_text()
    assert "EDGERNN_PAIRS_GATE_KERNEL(model_lstm0_gate_" in text and "edgernn_lstm_step(" not in text
    with pytest.raises(Exception, match="kernel 'fastest'"):
        emit_native(models["stacked"], tmp_path / "x", kernel="fastest")


QEMU_CASES = [(target, case) for target in ("cortex-m4", "cortex-m55")
              for case in ("stacked", "sequence", "clip", "cell2e-11", "left_shift")]
QEMU_CASES += [("cortex-m7", "stacked"), ("cortex-m33", "sequence"), ("cortex-m3", "stacked"),
               ("cortex-m0plus", "stacked")]


@pytest.mark.slow
@pytest.mark.parametrize("target,case", QEMU_CASES, ids=[f"{t}-{c}" for t, c in QEMU_CASES])
def test_target_kernels_equal_tflm_in_qemu(models, tmp_path, target, case):
    """Each target's kernels (the M4/M7/M33 assembly, Helium on the M55, C on the M0+/M3) in
    QEMU on the target's board, against TFLM's outputs."""
    from edgernn.firmware import run_project, write_project

    path = models[case]
    x = _inputs(path, 6)
    sources = emit_native(path, tmp_path / "src", "motion", target=target)
    project = write_project(tmp_path / "fw", target=target, name="motion", vectors_x_int8=x,
                            vectors_y_int8=_tflm(path, x), model_sources=sources)
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    assert r.perf.unit == "instructions" and r.perf.per_inference > 0
    code = subprocess.run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", str(r.sizes.elf)],
                          capture_output=True, text=True, check=True).stdout
    mark = {"cortex-m55": "vmlav", "cortex-m4": "smlad", "cortex-m7": "smlad", "cortex-m33": "smlad"}.get(target)
    if mark is not None:  # the target's own kernel ran, not the C twin
        assert mark in code
    else:
        assert "smlad" not in code and "vmlava" not in code
    if mark == "smlad":  # the per-unit tail in assembly (edgernn_pairs.h), but for a hidden shift of 28 (C)
        tail = "EDGERNN_PAIRS_TAIL_KERNEL(motion_lstm0_cells" in (tmp_path / "src" / "motion.c").read_text()
        assert tail == (case != "left_shift")


# bench/bench_firmware.py's models (BasicMotions, 100 x 6) as the zoo trains them: the weights
# differ from the benchmark's, the instruction counts hardly do (no data-dependent branches).
BENCH_MODELS = {"lstm32": dict(), "lstm128": dict(units=128, epochs=3), "gru32": dict(cell="gru", epochs=10),
                "rnn32": dict(cell="rnn"), "gru32-int8": dict(cell="gru", epochs=10, state="int8"),
                "rnn32-int8": dict(cell="rnn", state="int8")}


@pytest.mark.slow
@pytest.mark.parametrize("key", list(BENCH_MODELS))
def test_cortex_m4_instructions_stay_within_5_percent_of_the_benchmark(zoo, tmp_path, key):
    """A slowdown of the Cortex-M4 kernels fails CI: each benchmark model in QEMU (one build) costs
    within 5 % of the instructions per inference bench/bench_firmware.py recorded in
    bench/expected.json (--record updates it), every vector bit-exact with TFLM."""
    import edgernn
    from conftest import Spec
    from oneop import m4_instructions_within_5_percent

    spec = dict(BENCH_MODELS[key])
    state = spec.pop("state", None)
    if state is None:
        path = zoo.tflite(Spec(**spec))
    else:  # convert --state int8 (the zoo converts with the default state)
        path = tmp_path / f"{key}.tflite"
        edgernn.convert(zoo.keras(Spec(**spec)), calib=zoo.data("basic_motions")[0], output=path, state=state)
    x = _inputs(path, 2)
    m4_instructions_within_5_percent(path, x, _tflm(path, x), tmp_path, "motion", "bench_firmware",
                                     f"{key}/cortex-m4", "bench/bench_firmware.py")
