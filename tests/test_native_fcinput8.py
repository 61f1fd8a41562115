"""The int16 loop step's input CAST folded into its 16x8 FC on weight rows
(``edgernn/backends/native/fcinput8.py``, ``EDGERNN_FC16R_KERNEL_X8`` of ``edgernn_mve_fc.h``).

* the kernel on an int8 input, C twin (-O0 / -O2 on the host) and Helium (bare metal in QEMU on
  the Cortex-M55), equals TFLM's 16x8 FC of the input's int16 CAST on random and extreme int8
  inputs (-128 / 127 everywhere and signed against a row at the weight bound): 1 to 32 columns,
  int8 and int16 weights, bias or none, partial passes, Helium's forms of the stream (the split
  form's int8 x int8, the bias as constant columns; the C twin on their plain twins); nothing
  written past the outputs;
* the rows plans of test_native_mve_fc's GRU / SimpleRNN models fold the CAST of ``x_t`` (their
  whole-model tests, host and M55, then run the folded kernel), the pairs plans (M4) do not.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from test_native_mve_fc import _run_on_the_m55, check_printed_rows, models16, needs_arm  # noqa: F401  (models16: a fixture)

from edgernn.backends.native.emit import TEMPLATE_DIR, load_plan
from edgernn.backends.native.fasttensor import fc16_reference
from edgernn.backends.native.fcrows import BIASCOLS, PLAIN, SPLIT, fc16r_emulate, fc16r_stream
from edgernn.backends.native.host import C_FLAGS, compile_c

# (n_out, n_in, right shifts lo..hi, bias): s >= 16 int8 weights, s < 16 int16 x 2^(16 - s)
SHAPES = [(32, 6, 10, 14, True), (7, 1, 16, 20, False), (9, 8, 12, 18, True), (13, 13, 16, 22, True),
          (6, 32, 16, 24, False), (5, 17, 9, 12, False), (7, 32, 16, 20, True), (6, 5, 16, 20, True),
          (13, 32, 16, 20, True)]


def _cases():
    rng = np.random.default_rng(8)
    cases = []
    for n_out, n_in, s_lo, s_hi, bias in SHAPES:
        w = rng.integers(-127, 128, (n_out, n_in))
        w[0] = np.where(w[0] < 0, -127, 127)
        b = rng.integers(-2 ** 14, 2 ** 14, n_out) if bias else None
        m = rng.integers(1, 1 << 15, n_out)
        m[0] = 0x7FFF
        s = rng.integers(s_lo, s_hi, n_out)
        st = fc16r_stream(w, b, m, s, "test", 128)
        x = rng.integers(-128, 128, (64, n_in))
        x[:4] = [np.full(n_in, 127), np.full(n_in, -128), np.where(w[0] > 0, 127, -128), np.where(w[0] > 0, -128, 127)]
        want = fc16_reference(w, b, m, s, x)
        assert np.array_equal(fc16r_emulate(st, x), want)
        assert st.plain is None or np.array_equal(fc16r_emulate(st.plain, x), want)
        cases.append((st, x, want))
    assert {st.wbytes for st, _, _ in cases} == {1, 2} and {st.bias for st, _, _ in cases} == {True, False}
    assert {st.form for st, _, _ in cases} == {PLAIN, SPLIT, BIASCOLS}  # split: int8 x int8 on Helium
    return cases


def _program(cases) -> str:
    out = ['#include "edgernn_mve_fc.h"\n']
    for k, (st, x, _) in enumerate(cases):
        out.append(f"static const uint32_t s{k}[] = {{{', '.join(f'{int(v)}u' for v in st.words)}}};\n"
                   f"static const int8_t x{k}[] = {{{', '.join(str(int(v)) for v in x.ravel())}}};\n"
                   f"EDGERNN_FC16R_KERNEL_X8(fc{k}, {st.n_input}, {st.n_output}, {int(st.bias)}, {st.wbytes}, {st.form})\n")
    out.append("static void run_all(void)\n{\n    static int16_t y[100];\n    int r, c;\n")
    for k, (st, x, _) in enumerate(cases):
        out.append(f"    for (r = 0; r < {len(x)}; ++r) {{ const edgernn_fc16w f = {{ s{k}, 0, y }};"
                   f" for (c = 0; c < 100; ++c) y[c] = 12345; fc{k}(&f, x{k} + r * {st.n_input});"
                   f" for (c = 0; c < {st.n_output + 4}; ++c) PRINT(y[c]); }} PRINT(99999);\n")
    out.append("}\n")
    return "".join(out)


def test_fc16r_x8_c_twin_equals_tflm(tmp_path):
    cases = [(st.plain or st, x, want) for st, x, want in _cases()]  # the C twin reads the plain streams
    src = tmp_path / "x8.c"
    src.write_text("#include <stdio.h>\n#define PRINT(v) printf(\"%d \", (int)(v))\n" + _program(cases)
                   + "int main(void)\n{\n    run_all();\n    return 0;\n}\n")
    for opt in ("-O0", "-O2"):
        exe = tmp_path / f"x8{opt}"
        compile_c("gcc", [src], exe, (*C_FLAGS, opt, f"-I{TEMPLATE_DIR}"))
        check_printed_rows(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines(), cases)


@pytest.mark.slow
@needs_arm
def test_fc16r_x8_helium_equals_tflm_in_qemu_on_the_cortex_m55(tmp_path):
    cases = _cases()
    check_printed_rows(_run_on_the_m55(tmp_path, _program(cases), "run_all",
                           ["vldrbt.s16", "vmlav.s16", "vrmulh.s32", "vmlava.s8"]), cases)


def test_the_rows_plans_fold_the_input_cast(models16):
    for case in ("stack", "sequence"):
        rows, pairs = load_plan(models16[case], "rows"), load_plan(models16[case], "pairs")
        first = rows.recurrent[0].fast
        assert first.steps[0][0] == "fc" and first.steps[0][2].kernel.endswith("_x8"), first.steps[0]
        assert not any(st[0] == "run" and any(e.ins == ["(x_t)[i]"] for e in st[2]) for st in first.steps)
        assert not any(f.kernel.endswith("_x8") for layer in pairs.recurrent for f in layer.fast.fcs)
        assert any(st[0] == "run" and any(e.ins == ["(x_t)[i]"] for e in st[2])
                   for st in pairs.recurrent[0].fast.steps)
