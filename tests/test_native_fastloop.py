"""The fast WHILE-loop step (GRU, SimpleRNN): edgernn/backends/native/fastloop.py.

* every fitted / pre-scaled elementwise form, compiled from edgernn_fast.h, equals TFLM's int8
  ADD / SUB / MUL on all 65,536 input pairs (the generator checked its Python twin; this checks
  the C);
* whole models (Bidirectional GRU, GRU with reset_after=False, SimpleRNN with ReLU and an odd
  unit count that keeps the reference FC, a per-step SimpleRNN), converted with ``--state int8``,
  equal the TFLM runtime bit for bit on the host with both layouts and in QEMU with the
  Cortex-M4 assembly (GRU z / r and SimpleRNN on the gate kernel: FC x, FC h, ADD and the
  table in one pass, full and remainder passes);
* the ``--state int16`` layout (16x8 FCs on the row pairs, int16 ops fused, SPLIT parts read in
  place, h written in place) equals TFLM on the host and in QEMU on the Cortex-M4; the 16x8 FC
  kernel equals TFLM's reference 16x8 arithmetic on extreme int16 inputs.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from edgernn.backends.native import fastloop, fastloop16, tables
from edgernn.backends.native.emit import TEMPLATE_DIR, emit_native, load_plan
from edgernn.backends.native.host import C_FLAGS, NativeBuild, compile_c
from edgernn.backends.codegen import render
from edgernn.backends.native.loop import AddPlan, MulPlan
from edgernn.tflite_model import read

T, F = 12, 5


def _keras_model(name: str):
    import keras

    L = keras.layers
    rng = np.random.default_rng(sum(map(ord, name)))
    inp = keras.Input((T, F))
    if name == "stack":
        h = L.Bidirectional(L.GRU(6, return_sequences=True))(inp)
        h = L.GRU(8, reset_after=False, return_sequences=True)(h)
        h = L.SimpleRNN(5, activation="relu")(h)  # odd: its FCs keep the reference kernel
        h = L.Dense(4, activation="softmax")(h)
    else:  # "sequence": every step's hidden state is the output (five row pairs: 3 + 2 per pass)
        h = L.GRU(10, return_sequences=True)(inp)
        h = L.SimpleRNN(10, return_sequences=True)(h)
    model = keras.Model(inp, h, name=name)
    model.set_weights([(rng.standard_normal(w.shape) * 0.6).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import edgernn

    tmp = tmp_path_factory.mktemp("fastloop")
    calib = (np.random.default_rng(5).standard_normal((64, T, F)) * 1.5).astype(np.float32)
    out = {}
    for name in ("stack", "sequence"):
        out[name] = tmp / f"{name}.tflite"
        edgernn.convert(_keras_model(name), calib=calib, output=out[name], state="int8")
    for name in ("stack", "sequence"):  # the int16 state (convert's default): 16x8 FCs, int16 ops
        out[name + "16"] = tmp / f"{name}16.tflite"
        edgernn.convert(_keras_model(name), calib=calib, output=out[name + "16"], state="int16")
    return out


def _inputs(path, n: int = 10) -> np.ndarray:
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, size=(n,) + tuple(read(path).input().shape[1:])).astype(np.int8)
    x[:2] = np.where(x[:2] >= 0, 127, -128)
    return x


def _tflm(path, x) -> np.ndarray:
    from test_native import tflm_outputs

    return tflm_outputs(read(path).raw, x)


# --------------------------------------------------------------------------- the forms, in C
def _ops():
    """Elementwise ops: synthetic ones (power-of-two scales, whose exact ties the fits must get
    right, a ReLU range, a subtraction, a MUL the linear fit cannot hold) and the test models'."""
    half = (1 << 30, 0)
    ops = [AddPlan("add", False, 3, -7, half, half, (1 << 30, -19), -5, -128, 127),
           AddPlan("add", True, 0, 0, half, half, (1099223806, -19), 0, -128, 127),
           AddPlan("add", False, -12, 4, (1363851798, -2), half, (2133380019, -19), -6, -6, 127),
           MulPlan("mul", 128, 5, (1160325558, -7), 3, -128, 127),
           MulPlan("mul", 128, 0, (1 << 30, -7), 0, -128, 127),
           MulPlan("mul", 3, -20, (1500000000, -9), -4, -4, 127)]
    return ops


def test_elementwise_forms_equal_tflm_on_every_input_pair(models, tmp_path):
    ops = _ops()
    for path in models.values():
        for layer in load_plan(path, "pairs").recurrent:
            ops += [s.params for s in layer.ops if s.kind in ("add", "mul")]
    exprs, forms = [], []
    for k, p in enumerate(ops):
        step = type("S", (), dict(kind=p.kind, params=p))
        expr, form = fastloop._elementwise(step, ["a", "b"])
        forms.append(form)
        if form == "reference":  # the inlined reference formula needs its parameter struct
            exprs.append(None)
            continue
        exprs.append(expr)
    assert "fit" in forms and "prescaled" in forms
    body = "\n".join(f"    for (a = -128; a < 128; ++a) for (b = -128; b < 128; ++b) printf(\"%d \", (int)({e}));\n"
                     f"    printf(\"\\n\");" for e in exprs if e is not None)
    src = tmp_path / "forms.c"
    src.write_text(f'#include <stdio.h>\n#include "edgernn_fast.h"\nint main(void)\n{{\n    int a, b;\n{body}\n'
                   "    return 0;\n}\n")
    exe = tmp_path / "forms"
    compile_c("gcc", [src], exe, (*C_FLAGS, f"-I{TEMPLATE_DIR}"))
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    a, b = (g.ravel() for g in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij"))
    checked = [p for p, e in zip(ops, exprs) if e is not None]
    assert len(lines) == len(checked)
    for p, line in zip(checked, lines):
        want = fastloop.add_exact(p, a, b) if p.kind == "add" else fastloop.mul_exact(p, a, b)
        assert np.array_equal(np.array(line.split(), np.int64), want), p


def test_int16_forms_equal_tflm(models, tmp_path):
    """The int16 ADD / SUB (decomposed exactly) and MUL forms, compiled, equal TFLM's int16
    arithmetic on random and extreme input pairs: the test models' ops and synthetic ones (a
    subtraction, a ReLU range, multipliers that are not 1/2)."""
    ops = [AddPlan("add", True, 0, 0, (1073741824, 0), (1185389968, -2), (1076136899, -13), 0, -32768, 32767),
           AddPlan("add", False, 0, 0, (1725273130, -9), (1073741824, 0), (2146541532, -14), 0, 0, 32767),
           AddPlan("add", False, 0, 0, (1073741824, 0), (1073741824, 0), (1073741824, 0), 0, -32768, 32767),
           MulPlan("mul", 0, 0, (1129970314, -14), 0, -32768, 32767),
           MulPlan("mul", 0, 0, (1073741824, -15), 0, -1000, 32767),
           MulPlan("mul", 0, 0, (2147483647, -3), 0, -32768, 32767), MulPlan("mul", 0, 0, (1610612737, 0), 5, -32768, 32767)]
    for name in ("stack16", "sequence16"):
        for layer in load_plan(models[name], "pairs").recurrent:
            ops += [s.params for s in layer.ops if s.kind in ("add16", "mul16")]
    rng = np.random.default_rng(9)
    edge = np.array([-32768, -32767, -16385, -16384, -1, 0, 1, 16383, 16384, 32766, 32767])
    a = np.concatenate([np.repeat(edge, len(edge)), rng.integers(-32768, 32768, 20000)])
    b = np.concatenate([np.tile(edge, len(edge)), rng.integers(-32768, 32768, 20000)])
    exprs = []
    for p in ops:
        step = type("S", (), dict(kind=p.kind + "16", params=p))
        expr, form = fastloop._elementwise(step, ["a[i]", "b[i]"])
        assert form == "exact", p
        exprs.append(expr)
    vals = lambda v: ", ".join(str(int(x)) for x in v)  # noqa: E731
    body = "\n".join(f"    for (i = 0; i < {len(a)}; ++i) printf(\"%d \", (int)({e}));\n    printf(\"\\n\");"
                     for e in exprs)
    src = tmp_path / "forms16.c"
    src.write_text(f'#include <stdio.h>\n#include "edgernn_fast.h"\nstatic const int16_t a[] = {{{vals(a)}}};\n'
                   f"static const int16_t b[] = {{{vals(b)}}};\nint main(void)\n{{\n    int i;\n{body}\n"
                   "    return 0;\n}\n")
    exe = tmp_path / "forms16"
    compile_c("gcc", [src], exe, (*C_FLAGS, f"-I{TEMPLATE_DIR}"))
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(lines) == len(ops)
    for p, line in zip(ops, lines):
        want = fastloop16.add16_exact(p, a, b) if p.kind == "add" else fastloop16.mul16_exact(p, a, b)
        assert np.array_equal(np.array(line.split(), np.int64), want), p


def test_int16_activations_are_tables_equal_to_tflm(models, tmp_path):
    """The int16 LOGISTIC / TANH of the test models (their input scales are no power of two) and
    synthetic scales take the signed-segment tables; compiled, they equal TFLM's formulas on all
    65,536 int16 inputs."""
    from edgernn import fixedpoint as fp

    ops = []
    for name in ("stack16", "sequence16"):
        for layer in load_plan(models[name], "pairs").recurrent:
            ops += [s.params for s in layer.ops if s.kind == "act16"]
    assert {p.function for p in ops} == {"logistic", "tanh"} and all(p.multiplier for p in ops)
    synthetic = [(f, *fp.int16_activation_params(scale, f == "tanh")) for f in ("logistic", "tanh")
                 for scale in (2.0 ** -12, 2.0 ** -11, 3e-4, 1e-3, 0.05)]
    ops += [type("A", (), dict(function=f, multiplier=m, left_shift=sh)) for f, m, sh in synthetic]
    exprs = []
    for p in ops:
        expr, form = fastloop._elementwise(type("S", (), dict(kind="act16", params=p)), ["x"])
        assert form == "table", (p.function, p.multiplier, p.left_shift)
        exprs.append(expr)
    body = "\n".join(f"    for (x = -32768; x < 32768; ++x) printf(\"%d \", (int)({e}));\n    printf(\"\\n\");"
                     for e in exprs)
    src = tmp_path / "act16.c"
    src.write_text(f'#include <stdio.h>\n#include "edgernn_fast.h"\nint main(void)\n{{\n    int32_t x;\n{body}\n'
                   "    return 0;\n}\n")
    (tmp_path / "edgernn_tables.c").write_text(render("native/edgernn_tables.c.j2", version="test",
                                                      tables=tables.activation_tables()))
    exe = tmp_path / "act16"
    compile_c("gcc", [src, tmp_path / "edgernn_tables.c", TEMPLATE_DIR / "edgernn_kernels.c"], exe,
              (*C_FLAGS, f"-I{TEMPLATE_DIR}"))
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(lines) == len(ops)
    x = np.arange(-32768, 32768)
    for p, line in zip(ops, lines):
        ref = (fp.tanh_int16 if p.function == "tanh" else fp.logistic_int16)(x, p.multiplier, p.left_shift)
        assert np.array_equal(np.array(line.split(), np.int64), ref), (p.function, p.multiplier, p.left_shift)


def test_fits_hold_only_what_is_exact():
    add = _ops()[1]
    p1, p2, k, s = fastloop.fit_add(add)
    a, b = (g.ravel() for g in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij"))
    assert p1 == -p2 and np.array_equal(np.clip((a * p1 + b * p2 + k) >> s, -128, 127), fastloop.add_exact(add, a, b))
    # a MUL whose exact result rounds twice (to 1/128 of a step, then to a step) is no line in q
    assert fastloop.fit_mul(_ops()[3]) is None and fastloop.mul_prescaled(_ops()[3]) is not None


# --------------------------------------------------------------------------- whole models
def test_the_plan_uses_the_fast_forms(models):
    plan = load_plan(models["stack"], "pairs")
    layers = plan.recurrent
    # the Bidirectional GRU's two directions, then GRU(8) + SimpleRNN(5) stacked in one loop
    assert [[c["units"] for c in layer.layers] for layer in layers] == [[6], [6], [8, 5]]
    assert all(layer.fast is not None and not layer.fast_reason for layer in layers)
    # GRU: z and r as gate kernels (FC x, FC h, ADD, LOGISTIC in one pass), the candidate too (its
    # MUL by r inside) but with reset_after=False (r h before the FC: two FCs and a loop)
    kinds = [[f.kernel.split("_")[0] for f in layer.fast.fcs] for layer in layers]
    assert kinds == [["gate"] * 3, ["gate"] * 3, ["gate", "gate", "fc8", "fc8"]]  # SimpleRNN(5): reference FCs
    assert all(s[0] != "fc" or s[2] is not None or s[1].op_index in layers[2].fast.reference_ops
               for s in layers[2].fast.steps)
    fc_ops = [s.op_index for s in layers[2].ops if s.kind == "fc"]
    assert len(fc_ops) == 8 and set(fc_ops[6:]) <= layers[2].fast.reference_ops
    assert set(layers[0].fast.forms) == {"fit", "prescaled"} and {"fit", "table"} <= set(layers[2].fast.forms)
    assert plan.fast_kernels == ["pairs"]
    assert all(layer.fast is None for layer in load_plan(models["stack"], "reference").recurrent)
    rows = load_plan(models["stack"], "rows")  # the M55 / M3 / host choice: the same loop steps
    assert [len(layer.fast.fcs) for layer in rows.recurrent] == [3, 3, 4]
    # GRU(10) z, r and candidate (its MUL by r inside) + SimpleRNN(10) on gate kernels only
    seq = load_plan(models["sequence"], "pairs").recurrent[0].fast
    assert [f.kernel.split("_")[0] for f in seq.fcs] == ["gate"] * 4 and [f.mul is not None for f in seq.fcs] == \
        [False, False, True, False] and seq.forms == {"fit": 2, "prescaled": 1}


def test_the_int16_state_runs_the_fast_step(models):
    plan = load_plan(models["stack16"], "pairs")
    layers = plan.recurrent
    assert [[c["units"] for c in layer.layers] for layer in layers] == [[6], [6], [8, 5]]
    assert all(layer.fast is not None and not layer.fast_reason for layer in layers)
    # two 16x8 FCs per side of a GRU, z r and h (reset_after=False: the second h-side FC reads
    # r * h), one per side otherwise, all on the row pairs
    assert [len(layer.fast.fcs) for layer in layers] == [4, 4, 6]
    # int16 weight pairs with 32-bit sums (edgernn_fc16w.h) wherever the bound proves them exact
    assert all(f.kernel.startswith("fc16w_") for layer in layers for f in layer.fast.fcs)
    assert [h.fast is not None for h in plan.head if h.kind == "fc16"] == [True]  # the Dense head's 16x8 FC
    assert not any(s.kind == "fc16" for layer in layers for s in layer.ops if s.op_index in layer.fast.reference_ops)
    # the new h is written in place, no copy at the end of the step
    assert all(layer.fast.direct_states for layer in layers)
    assert all(layer.fast is None for layer in load_plan(models["stack16"], "reference").recurrent)


def test_fc16_kernel_equals_tflm_16x8_on_extreme_inputs(tmp_path):
    """The 16x8 FC stream (fasttensor.fc16_stream) in the C twin and in numpy equals TFLM's
    reference 16x8 path (int64 sums, 16-bit multiplier, one rounding) on random and extreme
    int16 inputs, for odd and even shapes and every right shift the exact form takes."""
    from edgernn.backends.native.fastlstm import NotFast
    from edgernn.backends.native.fasttensor import fc16_emulate, fc16_reference, fc16_stream

    rng = np.random.default_rng(3)
    cases = []
    for n_out, n_in, lo_s, hi_s in [(96, 32, 16, 33), (7, 5, 1, 33), (6, 38, 12, 20), (3, 1, 8, 30)]:
        w = rng.integers(-127, 128, (n_out, n_in))
        w[0] = np.where(w[0] < 0, -127, 127)  # a row at the bound
        b = rng.integers(-2 ** 20, 2 ** 20, n_out)
        m = rng.integers(1, 1 << 15, n_out)
        m[0] = 0x7FFF
        s = rng.integers(lo_s, hi_s, n_out)
        try:
            st = fc16_stream(w, b, m, s, "test")
        except NotFast:
            s = np.maximum(s, 16)
            st = fc16_stream(w, b, m, s, "test")
        cases.append((w, b, m, s, st))
    # one left shift for all rows (a literal: 0, 1..8 folded into the high row's 64-bit shift,
    # > 8, with odd and even inputs) or none (each row's own in the stream)
    for n_out, n_in, s_lo, s_hi, w_max in [(6, 4, 10, 13, 127), (5, 5, 10, 13, 127), (3, 2, 4, 7, 7)]:
        w = rng.integers(-w_max, w_max + 1, (n_out, n_in))
        b = rng.integers(-64, 64, n_out)
        m, s = rng.integers(1, 1 << 15, n_out), rng.integers(s_lo, s_hi, n_out)
        cases.append((w, b, m, s, fc16_stream(w, b, m, s, "test")))
    w, b, m, s = np.array([[1, -1], [1, 1], [0, 1], [-1, 0]]), np.array([3, -2, 0, 1]), rng.integers(1, 1 << 15, 4), \
        np.array([2, 30, 10, 20])
    cases.append((w, b, m, s, fc16_stream(w, b, m, s, "test")))
    assert [st.ls for *_, st in cases][4:] == [6, 6, 12, -1], [st.ls for *_, st in cases]
    for k, (w, b, m, s, st) in enumerate(cases):
        n_in = w.shape[1]
        x = rng.integers(-32768, 32768, (400, n_in))
        x[:4] = [np.full(n_in, 32767), np.full(n_in, -32768), np.where(w[0] > 0, 32767, -32768),
                 np.where(w[0] > 0, -32768, 32767)]
        want = fc16_reference(w, b, m, s, x)
        assert np.array_equal(fc16_emulate(st, x), want)
        cases[k] = (st, x, want)
    macros = [f"EDGERNN_FC16_KERNEL(fc{k}, {st.pairs}, {st.n_input}, {st.n_output}, {st.ls})"
              for k, (st, *_) in enumerate(cases)]
    # both C twins: the 32-bit one (Armv6-M, hosts) and the 64-bit A - B one (Armv7-M)
    for extra in ((), ("-D__ARM_ARCH_7M__=1",)):
        _run_fc16_kernels(tmp_path, "edgernn_pairs.h", "edgernn_fc16", cases, macros, extra)


def _run_fc16_kernels(tmp_path, header: str, struct: str, cases, macros, extra=()) -> None:
    """Compile one host program declaring each case's kernel (``macros``, named fc<k>) over its
    stream words and int16 inputs, run every input row through it, and compare with ``want``."""
    progs = [f"static const uint32_t s{k}[] = {{{', '.join(f'{int(v)}u' for v in st.words)}}};\n"
             f"static const int16_t x{k}[] = {{{', '.join(str(int(v)) for v in x.ravel())}}};\n{macro}\n"
             for k, ((st, x, _), macro) in enumerate(zip(cases, macros))]
    body = "".join(
        f"    for (r = 0; r < {len(x)}; ++r) {{ const {struct} f = {{ s{k}, x{k} + r * {st.n_input}, y }}; fc{k}(&f);"
        f" for (c = 0; c < {st.n_output}; ++c) printf(\"%d \", y[c]); }} printf(\"\\n\");\n"
        for k, (st, x, _) in enumerate(cases))
    src = tmp_path / f"{struct}.c"
    src.write_text(f'#include <stdio.h>\n#include "{header}"\n' + "".join(progs) +
                   f"int main(void)\n{{\n    int16_t y[96];\n    int r, c;\n{body}    return 0;\n}}\n")
    exe = tmp_path / f"{struct}{len(extra)}"
    compile_c("gcc", [src], exe, (*C_FLAGS, f"-I{TEMPLATE_DIR}", *extra))
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(lines) == len(cases)
    for (st, x, want), line in zip(cases, lines):
        assert np.array_equal(np.array(line.split(), np.int64).reshape(want.shape), want)


def test_fc16w_kernel_equals_tflm_16x8_on_extreme_inputs(tmp_path):
    """The 16x8 FC on int16 weight pairs (fasttensor.fc16w_stream: 32-bit sums, each row's left
    shift folded into its weights) in the C twin and in numpy equals TFLM's reference 16x8 path on
    random and extreme int16 inputs: odd and even shapes, bias or none, left shifts 0..8, inputs
    bounded by 2^15 and by 128 (the int8 input's CAST); shapes past the bounds raise NotFast."""
    from edgernn.backends.native.fastlstm import NotFast
    from edgernn.backends.native.fasttensor import fc16_reference, fc16w_emulate, fc16w_stream

    rng = np.random.default_rng(7)
    cases, macros = [], []
    for n_out, n_in, s_lo, s_hi, w_max, bound, bias in [
            (96, 32, 16, 33, 127, 32768, False), (7, 5, 9, 33, 127, 32768, True), (6, 6, 8, 14, 127, 128, True),
            (3, 1, 10, 20, 127, 32768, True), (10, 3, 12, 14, 20, 32768, False), (5, 4, 8, 9, 128, 64, True)]:
        w = rng.integers(-w_max, min(w_max, 127) + 1, (n_out, n_in))
        w[0] = np.where(w[0] < 0, -w_max, min(w_max, 127))  # a row at the bound (-128: -2^15 after 2^8)
        b = rng.integers(-2 ** 12, 2 ** 12, n_out) if bias else None
        m = rng.integers(1, 1 << 15, n_out)
        m[0] = 0x7FFF
        s = rng.integers(s_lo, s_hi, n_out)
        st = fc16w_stream(w, b, m, s, "test", bound)
        assert st.bias == bias
        x = rng.integers(-bound, bound, (300, n_in))
        x[:4] = [np.full(n_in, bound - 1), np.full(n_in, -bound), np.where(w[0] > 0, bound - 1, -bound),
                 np.where(w[0] > 0, -bound, bound - 1)]
        want = fc16_reference(w, b, m, s, x)
        assert np.array_equal(fc16w_emulate(st, x), want)
        k = len(cases)
        cases.append((st, x, want))
        macros.append(f"EDGERNN_FC16W_KERNEL(fc{k}, {st.n_input}, {st.n_output}, {int(st.bias)})")
    w = np.full((4, 520), 127)
    with pytest.raises(NotFast):  # 520 x 127 x 2^15 >= 2^31: the sums need 64 bits
        fc16w_stream(w, None, np.full(4, 1000), np.full(4, 20), "test")
    with pytest.raises(NotFast):  # s = 4: a left shift of 12 would pass 16 bits
        fc16w_stream(w[:, :2], None, np.full(4, 1000), np.full(4, 4), "test")
    _run_fc16_kernels(tmp_path, "edgernn_fc16w.h", "edgernn_fc16w", cases, macros)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["pairs", "reference"])
@pytest.mark.parametrize("case", ["stack", "sequence", "stack16", "sequence16"])
def test_fast_loops_equal_tflm_on_the_host(models, tmp_path, case, kernel):
    path = models[case]
    build = NativeBuild.create(path, tmp_path, kernel=kernel, flags=(*C_FLAGS, "-Wshadow", "-Wundef"))
    x = _inputs(path)
    assert np.array_equal(build.run(x).reshape(len(x), -1), _tflm(path, x))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["stack", "sequence", "stack16"])
def test_fast_loops_equal_tflm_in_qemu_on_the_cortex_m4(models, tmp_path, case):
    from edgernn.firmware import run_project, write_project

    path = models[case]
    x = _inputs(path, 4)
    sources = emit_native(path, tmp_path / "src", "motion", target="cortex-m4")
    kernels = {"stack16": ["EDGERNN_FC16W_KERNEL(motion_l0_fc16w_", "EDGERNN_FC16W_KERNEL(motion_fc"],
               "stack": ["EDGERNN_FC8_KERNEL(motion_l", "EDGERNN_FC8_GATE_KERNEL(motion_l0_gate_",
                         "EDGERNN_FC8_GATE_MUL_KERNEL(motion_l0_gate_"],
               "sequence": ["EDGERNN_FC8_GATE_KERNEL(motion_l0_gate_", "EDGERNN_FC8_GATE_MUL_KERNEL(motion_l0_gate_"]}[case]
    assert all(k in (tmp_path / "src" / "motion.c").read_text() for k in kernels)
    project = write_project(tmp_path / "fw", target="cortex-m4", name="motion", vectors_x_int8=x,
                            vectors_y_int8=_tflm(path, x), model_sources=sources)
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    code = subprocess.run(["arm-none-eabi-objdump", "-d", str(r.sizes.elf)], capture_output=True, text=True,
                          check=True).stdout
    # the assembly ran, not the C twin
    assert ("smuad" in code and "smmulr" in code) if case == "stack16" else ("smmlar" in code and "smlad" in code)
