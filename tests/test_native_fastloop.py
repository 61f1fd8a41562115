"""The fast WHILE-loop step (GRU, SimpleRNN): edgernn/backends/native/fastloop.py.

* every fitted / pre-scaled elementwise form, compiled from edgernn_fast.h, equals TFLM's int8
  ADD / SUB / MUL on all 65,536 input pairs (the generator checked its Python twin; this checks
  the C);
* whole models (Bidirectional GRU, GRU with reset_after=False, SimpleRNN with ReLU and an odd
  unit count that keeps the reference FC, a per-step SimpleRNN), converted with ``--state int8``,
  equal the TFLM runtime bit for bit on the host with both layouts and in QEMU with the
  Cortex-M4 assembly;
* the ``--state int16`` layout (int16 ops, SPLIT parts) keeps the reference step, still exact.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from edgernn.backends.native import fastloop
from edgernn.backends.native.emit import TEMPLATE_DIR, emit_native, load_plan
from edgernn.backends.native.host import C_FLAGS, NativeBuild, compile_c
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
    else:  # "sequence": every step's hidden state is the output
        h = L.SimpleRNN(10, return_sequences=True)(inp)
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
    out["stack16"] = tmp / "stack16.tflite"  # the int16 state: the reference step
    edgernn.convert(_keras_model("stack"), calib=calib, output=out["stack16"], state="int16")
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
    assert all(len(layer.fast.fcs) == 6 for layer in layers[:2])  # GRU: 3 gates x (x, h)
    assert len(layers[2].fast.fcs) == 6  # the GRU(8)'s; the odd SimpleRNN(5) keeps reference FCs
    fc_ops = [s.op_index for s in layers[2].ops if s.kind == "fc"]
    assert len(fc_ops) == 8 and set(fc_ops[6:]) <= layers[2].fast.reference_ops
    assert {"fit", "table"} <= set(layers[0].fast.forms) and "fit" in layers[2].fast.forms
    assert plan.fast_kernels == ["pairs"]
    assert all(layer.fast is None for layer in load_plan(models["stack"], "reference").recurrent)
    rows = load_plan(models["stack"], "rows")  # the M55 / M3 / host choice: the same loop steps
    assert [len(layer.fast.fcs) for layer in rows.recurrent] == [6, 6, 6]


def test_the_int16_state_keeps_the_reference_step(models):
    plan = load_plan(models["stack16"], "pairs")
    assert plan.recurrent and all(layer.fast is None for layer in plan.recurrent)
    assert all("--state int8" in layer.fast_reason for layer in plan.recurrent)
    assert plan.fast_kernels == [] and plan.fast_loops == []


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["pairs", "reference"])
@pytest.mark.parametrize("case", ["stack", "sequence", "stack16"])
def test_fast_loops_equal_tflm_on_the_host(models, tmp_path, case, kernel):
    path = models[case]
    build = NativeBuild.create(path, tmp_path, kernel=kernel, flags=(*C_FLAGS, "-Wshadow", "-Wundef"))
    x = _inputs(path)
    assert np.array_equal(build.run(x).reshape(len(x), -1), _tflm(path, x))


@pytest.mark.slow
def test_fast_loops_equal_tflm_in_qemu_on_the_cortex_m4(models, tmp_path):
    from edgernn.firmware import run_project, write_project

    path = models["stack"]
    x = _inputs(path, 4)
    sources = emit_native(path, tmp_path / "src", "motion", target="cortex-m4")
    assert "EDGERNN_FC8_KERNEL(motion_l0_fc8_" in (tmp_path / "src" / "motion.c").read_text()
    project = write_project(tmp_path / "fw", target="cortex-m4", name="motion", vectors_x_int8=x,
                            vectors_y_int8=_tflm(path, x), model_sources=sources)
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    code = subprocess.run(["arm-none-eabi-objdump", "-d", str(r.sizes.elf)], capture_output=True, text=True,
                          check=True).stdout
    assert "smmlar" in code and "smlad" in code  # the assembly ran, not the C twin
