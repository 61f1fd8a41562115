"""The Helium elementwise loops of a WHILE-loop step (edgernn/backends/native/fastloop_mve.py,
firmware_templates/native/edgernn_mve_ew.h) on QEMU's Cortex-M55:

* every Helium form equals its scalar form (which tests/test_native_fastloop.py checks against
  TFLM) lane for lane, as int32, on all 65,536 inputs of each unary op and 65,536 pairs of each
  binary op (every int8 pair; int16: every a against random and extreme b), whole vectors and
  the predicated tail: the test models' int16 and int8 ops and synthetic ones (saturating
  outputs, a ReLU range, multipliers that are not 1/2, a left shift), and each int16 form again
  on bottom-form inputs (random high halves over the int16 values);
* whole models whose unit counts leave tails (1 and 2 units; the forms above: 1 to 3 lanes),
  both state layouts, emitted for the Cortex-M55 equal TFLM bit for bit in QEMU, and the
  Helium loops ran;
* only the rows layout gets them: the Cortex-M4's source has no Helium loop.
"""

from __future__ import annotations

import re
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from edgernn.backends.native import fastloop, fastloop_mve
from edgernn.backends.native.emit import TEMPLATE_DIR, emit_native, load_plan
from edgernn.backends.native.loop import AddPlan, MulPlan

from test_native_fastloop import _inputs, _keras_model, _tflm, _ops

INT16_KINDS = ("add16", "mul16", "act16")
UNARY = ("act16", "lut")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import edgernn

    tmp = tmp_path_factory.mktemp("mve_ew")
    calib = (np.random.default_rng(5).standard_normal((64, 12, 5)) * 1.5).astype(np.float32)
    out = {}
    for name, state in (("stack", "int8"), ("sequence", "int8"), ("stack16", "int16"), ("sequence16", "int16")):
        out[name] = tmp / f"{name}.tflite"
        edgernn.convert(_keras_model(name.replace("16", "")), calib=calib, output=out[name], state=state)
    return out


def _steps(models):
    """(kind, params) of the elementwise ops to check: synthetic ones and the test models'."""
    from edgernn import fixedpoint as fp

    half = (1 << 30, 0)
    int16 = [AddPlan("add", True, 0, 0, half, (1185389968, -2), (1076136899, -13), 0, -32768, 32767),
             AddPlan("add", False, 0, 0, (1725273130, -9), half, (2146541532, -14), 0, 0, 32767),
             AddPlan("add", False, 0, 0, half, half, half, 0, -32768, 32767),  # saturates
             AddPlan("add", True, 0, 0, half, half, (1 << 30, -14), 3, -32768, 32767),  # the SUB as one shift
             AddPlan("add", False, 0, 0, half, half, (1 << 30, -13), 0, -32768, 32767),  # SUM_SCALE: a + b
             AddPlan("add", False, 0, 0, (1 << 30, -1), half, (1 << 30, -12), 0, -32768, 32767),  # hc + 2 zd
             AddPlan("add", True, 0, 0, half, (1 << 30, -2), (1 << 30, -12), 0, -32768, 32767),  # 4 a - b, RDBP 1
             AddPlan("add", True, 0, 0, half, half, (1 << 30, -13), 0, -32768, 32767),  # a - b
             AddPlan("add", True, 0, 0, (1 << 30, -1), half, (1 << 30, -12), 0, -32768, 32767),  # a - 2 b
             AddPlan("add", False, 0, 0, half, (1 << 30, -1), (1 << 30, -12), 0, -32768, 32767),  # 2 a + b
             AddPlan("add", True, 0, 0, half, (1 << 30, -1), (1 << 30, -12), 0, -32768, 32767),  # 2 a - b
             AddPlan("add", False, 0, 0, (1 << 30, -1), half, (1 << 30, -12), 7, -30000, 32767),  # zero point, clamp
             AddPlan("add", False, 0, 0, half, half, (1 << 30, -12), 0, -32768, 32767),  # (a + b) 2: a finer sum
             AddPlan("add", False, 0, 0, (1 << 30, -1), half, (1 << 30, -10), 0, -32768, 32767),  # (a + 2 b) 4
             AddPlan("add", True, 0, 0, half, (1 << 30, -2), (1 << 30, -11), 0, -32768, 32767),  # 4 a - b: VQMOVNB
             MulPlan("mul", 0, 0, (1129970314, -14), 0, -32768, 32767),
             MulPlan("mul", 0, 0, (1073741824, -15), 0, -1000, 32767),
             MulPlan("mul", 0, 0, (2147483647, -3), 0, -32768, 32767),  # saturates
             MulPlan("mul", 0, 0, (1610612737, 0), 5, -32768, 32767),
             MulPlan("mul", 0, 0, (1300000000, 2), 0, -32768, 32767)]  # a left shift: edgernn_mbqm
    steps = [(p.kind + "16", p) for p in int16] + [(p.kind, p) for p in _ops()]
    steps += [("act16", SimpleNamespace(function=f, multiplier=m, left_shift=sh))
              for f in ("logistic", "tanh") for scale in (2.0 ** -12, 3e-4, 3.2462e-4, 0.05)
              for m, sh in [fp.int16_activation_params(scale, f == "tanh")]]
    # a multiplier of 2^15 or more: the scale stays VMUL + VRSHR on int32 lanes (edgernn_mve_act16_scale)
    steps += [("act16", SimpleNamespace(function=f, multiplier=40000, left_shift=14)) for f in ("logistic", "tanh")]
    steps.append(("lut", SimpleNamespace(name="table")))
    for path in models.values():
        for layer in load_plan(path, "rows").recurrent:
            steps += [(s.kind, s.params) for s in layer.ops if s.kind in INT16_KINDS + ("add", "mul", "lut")]
    return steps


def _exprs(kind, params):
    """(scalar, vector, vector tail, vector on junk-topped inputs) C expressions of one op reading
    a[i] (and b[i]); each vector one sign-extended to int32 lanes if it is in bottom form. The
    last reads the locals xa, xb as bottom-form values (random high halves): the generator must
    read them with VSHLLB / VMULLB or widen them first."""
    step = SimpleNamespace(kind=kind, params=params, n=4)
    size = 2 if kind in INT16_KINDS else 1
    n_in = 1 if kind in UNARY else 2
    ins = ["(a)[i]", "(b)[i]"][:n_in]
    expr, form = fastloop._elementwise(step, ins)
    step.regions = [(name, 0, 4 * size) for name in "ab"[:n_in]] + [("y", 0, 4 * size)]
    e = fastloop.Elementwise(op=step, expr=expr, local="v", store=None, form=form, ins=ins)
    out = [expr]
    for tail, bottom in ((False, False), (True, False), (False, True)):
        if bottom:
            if size == 1:
                out.append(out[1])
                continue
            e.ins = ["xa", "xb"][:n_in]
        v = fastloop_mve._vector(e, fastloop._elementwise, tail, {"xa", "xb"} if bottom else set())
        out.append(None if v is None else f"edgernn_mve_widen16({v[0]})" if v[1] else v[0])
    return [x if x is None else re.sub(r"\$\w+", "lut_table", x) for x in out]


def _check_function(k: int, kind: str, scalar: str, vector: str, tail: str, junk: str) -> str:
    """C: the number of lanes where the Helium form differs from the scalar one."""
    t = "int16_t" if kind in INT16_KINDS else "int8_t"
    if kind in UNARY:  # every input
        fill = f"a[i] = ({t})(k + i{' - 32768' if t == 'int16_t' else ''});"
    elif t == "int8_t":  # every pair
        fill = "a[i] = (int8_t)(((k + i) >> 8) - 128); b[i] = (int8_t)(((k + i) & 255) - 128);"
    else:  # every a, against extremes and random b
        fill = "a[i] = (int16_t)(k + i - 32768); b[i] = (int16_t)((k & 64) ? edge[(k + i) & 15] : (int32_t)next());"
    ld = "vldrhq_s32" if t == "int16_t" else "vldrbq_s32"
    return f"""
static int check{k}(void)
{{
    {t} a[4], b[4];
    int32_t ys[4], yv[4];
    int bad = 0, k, i;
    (void)b;
    for (k = 0; k < 65536; k += 4) {{
        for (i = 0; i < 4; ++i) {{ {fill} }}
        for (i = 0; i < 4; ++i) {{ ys[i] = {scalar}; }}
        i = 0;
        vstrwq_s32(yv, {vector});
        for (i = 0; i < 4; ++i) bad += ys[i] != yv[i];
        {{
            /* bottom-form inputs: random high halves over the int16 values */
            const int32x4_t xa = junk({ld}(a));
            const int32x4_t xb = junk({ld}((const {t} *)b));
            (void)xa;
            (void)xb;
            i = 0;
            vstrwq_s32(yv, {junk});
            for (i = 0; i < 4; ++i) bad += ys[i] != yv[i];
        }}
        {{
            const int r = 1 + (k >> 2) % 3; /* the tail: r lanes of four */
            const mve_pred16_t lanes = vctp32q((uint32_t)r);
            i = 0;
            vstrwq_s32(yv, {tail});
            for (i = 0; i < r; ++i) bad += ys[i] != yv[i];
        }}
    }}
    return bad;
}}
"""


def _project(models, tmp_path, case: str, target: str, n: int):
    from edgernn.firmware import write_project

    path = models[case]
    x = _inputs(path, n)
    sources = emit_native(path, tmp_path / "src", "motion", target=target)
    return write_project(tmp_path / "fw", target=target, name="motion", vectors_x_int8=x,
                         vectors_y_int8=_tflm(path, x), model_sources=sources), x


@pytest.mark.slow
def test_helium_forms_equal_the_scalar_forms_on_the_cortex_m55(models, tmp_path):
    from edgernn.firmware.project import Project
    from edgernn.firmware.runner import build_project, run_command

    steps = _steps(models)
    exprs = [_exprs(kind, p) for kind, p in steps]
    kinds = {kind for (kind, _), x in zip(steps, exprs) if x[1] is not None}
    assert kinds == {"add16", "mul16", "act16", "add", "mul", "lut"}, kinds
    checked = [(kind, *x) for (kind, _), x in zip(steps, exprs) if x[1] is not None]
    # an activation whose segment needs no clamp at 255 also with the clamp (always right)
    checked += [(kind, x[0], *[v.replace("_nc(", "(") for v in x[1:]]) for kind, *x in checked if "_nc(" in x[1]]
    assert all(x[-1] is not None for x in checked)
    # every twin the generator can name is exercised
    used = set(re.findall(r"edgernn_mve_(\w+)\(", " ".join(" ".join(x[2:]) for x in checked)))
    twins = set(fastloop_mve.TWINS) | {f"{f}_sat16" for f in ("add16_out", "mul_s16", "rdbp")} | {
        "shl14", "shl16", "sum_sat16", "qadd_sat16", "qsub_sat16", "qdbl_sat16", "widen16", "act16_scale_q"}
    assert twins - used <= {"clamp_range_s8"}, twins - used
    project, _ = _project(models, tmp_path, "sequence16", "cortex-m55", 1)
    table = ", ".join(str(v) for v in np.random.default_rng(1).integers(-128, 128, 256))
    prog = ['#include <stdint.h>\n#include <stdio.h>\n#include "edgernn_mve_ew.h"\n',
            "#if !EDGERNN_USE_MVE\n#error Helium expected\n#endif\n",
            f"static const int8_t lut_table[256] = {{{table}}};\n",
            "static const int16_t edge[16] = {-32768, -32767, -16385, -16384, -1, 0, 1, 16383, 16384, 32766, "
            "32767, 181, -182, 255, -256, 2};\n",
            "static uint32_t state = 2463534242u;\n",
            "static uint32_t next(void) { state ^= state << 13; state ^= state >> 17; state ^= state << 5; "
            "return state; }\n"]
    prog.append("static int32x4_t junk(int32x4_t x)\n{\n    const int32x4_t r = vdupq_n_s32((int32_t)next());\n"
                "    return vorrq_s32(vandq_s32(x, vdupq_n_s32(0xFFFF)), vshlq_n_s32(vaddq_s32(r, x), 16));\n}\n")
    prog += [_check_function(k, *x) for k, x in enumerate(checked)]
    prog.append("int main(void)\n{\n    (void)lut_table;\n" + "".join(
        f'    printf("op {k} %d\\n", check{k}());\n' for k in range(len(checked))) + "    return 0;\n}\n")
    (project.dir / "src" / "main.c").write_text("".join(prog))
    p = Project.load(project.dir)
    binary, _ = build_project(p)
    cmd = [c for c in run_command(p, binary)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=p.dir).stdout
    bad = dict(re.findall(r"^op (\d+) (-?\d+)$", out, re.M))
    assert len(bad) == len(checked), out[-2000:]
    assert all(v == "0" for v in bad.values()), [(checked[int(k)][:2], v) for k, v in bad.items() if v != "0"]


M55_CASES = ["stack16", "sequence16", "stack", "sequence"]


@pytest.mark.slow
@pytest.mark.parametrize("case", M55_CASES)
def test_helium_loops_equal_tflm_in_qemu_on_the_cortex_m55(models, tmp_path, case):
    from edgernn.firmware import run_project

    project, _ = _project(models, tmp_path, case, "cortex-m55", 4)
    text = (tmp_path / "src" / "motion.c").read_text()
    assert "#if EDGERNN_USE_MVE" in text and "vctp32q(" in text  # whole vectors and a tail
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    code = subprocess.run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", str(r.sizes.elf)],
                          capture_output=True, text=True, check=True).stdout
    # the loops' tails (VCTP) and, int16, the activations' table gathers: nothing else here uses them
    assert "vctp.32" in code and ("vldrh.u32" in code) == case.endswith("16"), "no Helium loop"


def test_only_the_rows_layout_gets_helium_loops(models, tmp_path):
    for case in ("stack16", "sequence"):
        plan = load_plan(models[case], "rows")
        assert all(layer.fast.mve for layer in plan.fast_loops)
        runs = [e for layer in plan.fast_loops for st in layer.fast.steps if st[0] == "run" for e in st[2]]
        assert any(e.vector for e in runs)
        assert all(e.vector is None for layer in load_plan(models[case], "pairs").fast_loops
                   for st in layer.fast.steps if st[0] == "run" for e in st[2])
    emit_native(models["stack16"], tmp_path / "m4", "motion", target="cortex-m4")
    text = (tmp_path / "m4" / "motion.c").read_text()
    assert "EDGERNN_USE_MVE" not in text and "edgernn_mve_ew.h" not in text
    emit_native(models["stack16"], tmp_path / "m55", "motion", target="cortex-m55")
    assert '#include "edgernn_mve_ew.h"' in (tmp_path / "m55" / "motion.c").read_text()


def test_signed_tanh_tables_equal_the_scalar_tanh16_on_every_unclamped_input():
    """edgernn_mve_tanh16_nc's tables (tables.tanh16_signed_table: the sign and the XOR folded in,
    indexed by v >> 8) give edgernn_tanh16's bits on every v whose segment needs no clamp."""
    from edgernn.backends.native import tables

    v = np.arange(-(1 << 16), 1 << 16)
    assert np.array_equal(tables.tanh16_signed(v), tables.tanh16(v))
    g, d = tables.tanh16_signed_table()
    assert len(g) == len(d) == 512 and np.abs(g).max() < 1 << 31 and 0 <= d.min() and d.max() < 1 << 16
