"""The int16 loop steps' 16x8 FULLY_CONNECTED on weight rows (``edgernn_mve_fc.h``,
``edgernn/backends/native/fcrows.py``): the ``rows`` kernel choice's layout, Helium on the
Cortex-M55 and its C twin elsewhere.

* the stream's numpy twin (``fc16r_emulate``) and the C twin equal TFLM's reference 16x8
  arithmetic (int64 sums, one rounding) on random and extreme int16 inputs: int8 and int16
  weights, bias or none, inputs of 1 to 40 columns (held in vectors or read per pass, short
  last chunks), outputs not a multiple of four; Helium's forms of the stream (split: int8 x int8
  over the input's high and low bytes; the bias as two constant columns) emulated too, their
  plain twins (what the C twin reads) through the C twin; shapes past the 32-bit bound raise
  NotFast;
* the Helium form, in QEMU on the Cortex-M55 (mps3-an547), gives the same bits on the same cases;
* whole int16 GRU and SimpleRNN models on the M55 equal TFLM bit for bit, their FCs on the rows
  kernel, and the M4's emission keeps the int16 weight pairs.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from edgernn.backends.native.emit import TEMPLATE_DIR, emit_native, load_plan
from edgernn.backends.native.fastlstm import NotFast
from edgernn.backends.native.fasttensor import fc16_reference
from edgernn.backends.native.fcrows import BIASCOLS, PLAIN, SPLIT, fc16r_emulate, fc16r_stream
from edgernn.backends.native.host import C_FLAGS, compile_c

# (n_out, n_in, right shifts lo..hi, |w| max, input bound, bias): s >= 16 gives int8 weights,
# s < 16 int16 weights x 2^(16 - s); 40 columns = five chunks (read per pass, not held)
SHAPES = [(96, 32, 16, 33, 127, 32768, False), (7, 5, 9, 33, 127, 32768, True), (6, 6, 8, 14, 127, 128, True),
          (3, 1, 10, 20, 127, 32768, True), (10, 3, 12, 14, 20, 32768, False), (5, 4, 8, 9, 128, 64, True),
          (9, 40, 16, 30, 127, 16384, True), (4, 17, 20, 25, 127, 32768, False), (13, 8, 16, 17, 127, 32768, True),
          (8, 33, 14, 15, 100, 8192, False), (6, 32, 16, 20, 127, 32768, True), (13, 6, 11, 14, 127, 32768, True),
          (12, 32, 16, 24, 127, 32768, False)]


def _cases():
    """(stream, inputs, TFLM's outputs) per shape; checks the numpy twin on the way."""
    rng = np.random.default_rng(16)
    cases = []
    for n_out, n_in, s_lo, s_hi, w_max, bound, bias in SHAPES:
        w = rng.integers(-w_max, min(w_max, 127) + 1, (n_out, n_in))
        w[0] = np.where(w[0] < 0, -w_max, min(w_max, 127))  # a row at the bound
        b = rng.integers(-2 ** 12, 2 ** 12, n_out) if bias else None
        m = rng.integers(1, 1 << 15, n_out)
        m[0] = 0x7FFF
        s = rng.integers(s_lo, s_hi, n_out)
        st = fc16r_stream(w, b, m, s, "test", bound)
        assert st.bias == bias and st.wbytes == (1 if s.min() >= 16 else 2)
        x = rng.integers(-bound, bound, (200, n_in))
        x[:4] = [np.full(n_in, bound - 1), np.full(n_in, -bound), np.where(w[0] > 0, bound - 1, -bound),
                 np.where(w[0] > 0, -bound, bound - 1)]
        want = fc16_reference(w, b, m, s, x)
        assert np.array_equal(fc16r_emulate(st, x), want)
        assert st.plain is None or np.array_equal(fc16r_emulate(st.plain, x), want)
        cases.append((st, x, want))
    # saturation: some outputs clamp at both ends of int16
    assert any((want == 32767).any() and (want == -32768).any() for _, _, want in cases)
    # every form: plain, split (32 columns, int8 weights, bias or none), bias columns; the forms'
    # rows in eights (Helium's VQMOVNB / VQMOVNT pairs) and in fours and fewer after them
    assert {(st.form, st.bias) for st, _, _ in cases} >= {(PLAIN, True), (PLAIN, False), (SPLIT, False),
                                                            (SPLIT, True), (BIASCOLS, True)}
    assert {(st.form, st.n_output % 8 >= 4, st.n_output % 4 > 0) for st, _, _ in cases if st.n_output > 8} >= {
        (SPLIT, True, False), (BIASCOLS, True, True)}
    return cases


def _program(cases, print_fn: str) -> str:
    """C declaring each case's kernel over its stream and inputs, printing every output row."""
    out = ['#include "edgernn_mve_fc.h"\n']
    for k, (st, x, _) in enumerate(cases):
        out.append(f"static const uint32_t s{k}[] = {{{', '.join(f'{int(v)}u' for v in st.words)}}};\n"
                   f"static const int16_t x{k}[] = {{{', '.join(str(int(v)) for v in x.ravel())}}};\n"
                   f"EDGERNN_FC16R_KERNEL(fc{k}, {st.n_input}, {st.n_output}, {int(st.bias)}, {st.wbytes}, {st.form})\n")
    out.append("static void run_all(void)\n{\n    static int16_t y[100];\n    int r, c;\n")
    for k, (st, x, _) in enumerate(cases):
        out.append(f"    for (r = 0; r < {len(x)}; ++r) {{ const edgernn_fc16w f = {{ s{k}, x{k} + r * {st.n_input}, y }};"
                   f" for (c = 0; c < 100; ++c) y[c] = 12345; fc{k}(&f);"
                   f" for (c = 0; c < {st.n_output + 4}; ++c) {print_fn}(y[c]); }} {print_fn}(99999);\n")
    out.append("}\n")
    return "".join(out)


def check_printed_rows(lines, cases, fill: int = 12345) -> None:
    """A kernel test program's output (per case: each input row's outputs and four values past
    them, then 99999) against the cases' wanted outputs; the values past them must still be
    ``fill``, the program's initial value (nothing written past the outputs)."""
    values = np.array(" ".join(lines).split(), np.int64)
    rows = np.split(values, np.flatnonzero(values == 99999) + 1)[:len(cases)]
    assert len(rows) == len(cases)
    for (_, _, want), got in zip(cases, rows):
        got = got[:-1].reshape(len(want), -1)
        assert np.array_equal(got[:, :want.shape[1]], want)
        assert (got[:, want.shape[1]:] == fill).all()


def test_fc16r_stream_and_c_twin_equal_tflm_16x8(tmp_path):
    cases = _cases()
    src = tmp_path / "fc16r.c"
    cases = [(st.plain or st, x, want) for st, x, want in cases]  # the C twin reads the plain streams
    src.write_text("#include <stdio.h>\n#define PRINT(v) printf(\"%d \", (int)(v))\n" + _program(cases, "PRINT")
                   + "int main(void)\n{\n    run_all();\n    return 0;\n}\n")
    for opt in ("-O0", "-O2"):
        exe = tmp_path / f"fc16r{opt}"
        compile_c("gcc", [src], exe, (*C_FLAGS, opt, f"-I{TEMPLATE_DIR}"))
        check_printed_rows(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines(), cases)


def test_fc16r_refuses_what_32_bits_cannot_hold():
    w = np.full((4, 520), 127)
    with pytest.raises(NotFast):  # 520 x 127 x 2^15 >= 2^31: the sums need 64 bits
        fc16r_stream(w, None, np.full(4, 1000), np.full(4, 20), "test")
    with pytest.raises(NotFast):  # s = 4: a left shift of 12 would pass 16 bits
        fc16r_stream(w[:, :2], None, np.full(4, 1000), np.full(4, 4), "test")
    with pytest.raises(NotFast):  # s = 14 (ls 2) on a wide row: (sum |w| 2^15) 2^2 >= 2^31
        fc16r_stream(w[:, :130], None, np.full(4, 1000), np.full(4, 14), "test")


needs_arm = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                               reason="needs arm-none-eabi-gcc and qemu-system-arm")


def _run_on_the_m55(tmp_path, program: str, run: str, marks) -> list[str]:
    """Build ``program`` (its ``run`` function printing through PRINT) bare metal for QEMU's
    mps3-an547 with the firmware projects' start-up code and linker script, check that the
    Helium instructions ``marks`` are in it (not the C twin), run it; the printed lines."""
    from edgernn import __version__
    from edgernn.backends.codegen import render
    from edgernn.firmware.boards import BOARDS

    board = BOARDS["cortex-m55"]
    ctx = dict(version=__version__, target="cortex-m55", board=board, stack_bytes=board.stack_bytes,
               heap_bytes=board.heap_bytes)
    startup, ld = tmp_path / "startup.c", tmp_path / "board.ld"
    startup.write_text(render("cortex-m/startup.c.j2", **ctx))
    ld.write_text(render("cortex-m/board.ld.j2", **ctx))
    src = tmp_path / "main.c"
    src.write_text("#include <stdio.h>\n#define PRINT(v) printf(\"%d \", (int)(v))\n" + program
                   + f"int main(void);\nint main(void)\n{{\n    {run}();\n    printf(\"\\n\");\n    return 0;\n}}\n")
    elf = tmp_path / "kernels.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard", "-std=c99", "-O2",
                    "-Wall", "-Wextra", "-Werror", f"-I{TEMPLATE_DIR}", "--specs=rdimon.specs", "-nostartfiles",
                    "-T", str(ld), str(src), str(startup), "-o", str(elf), "-lm"], check=True, capture_output=True,
                   text=True)
    code = subprocess.run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", str(elf)], capture_output=True,
                          text=True, check=True).stdout
    assert all(m in code for m in marks), [m for m in marks if m not in code]
    return subprocess.run(["qemu-system-arm", "-M", board.machine, "-nographic", "-monitor", "none", "-serial", "none",
                           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                          capture_output=True, text=True, timeout=300, check=True).stdout.splitlines()


@pytest.mark.slow
@needs_arm
def test_fc16r_helium_equals_tflm_16x8_in_qemu_on_the_cortex_m55(tmp_path):
    """The same cases through the Helium kernels, bare metal on QEMU's mps3-an547."""
    cases = _cases()
    check_printed_rows(_run_on_the_m55(tmp_path, _program(cases, "PRINT"), "run_all",
                           ["vmlava.s16", "vrmulh.s32", "vldrb.s16", "vld21.8", "vmlava.s8", "vldrht.u16", "vqmovnt.s32"]), cases)


@pytest.fixture(scope="module")
def models16(tmp_path_factory):
    """test_native_fastloop's two models (a Bidirectional GRU, a GRU with reset_after=False and a
    5-unit ReLU SimpleRNN; a sequence-to-sequence GRU(10) + SimpleRNN(10)), int16 state."""
    import edgernn
    from test_native_fastloop import F, T, _keras_model

    tmp = tmp_path_factory.mktemp("mve_fc")
    calib = (np.random.default_rng(5).standard_normal((64, T, F)) * 1.5).astype(np.float32)
    out = {}
    for name in ("stack", "sequence"):
        out[name] = tmp / f"{name}16.tflite"
        edgernn.convert(_keras_model(name), calib=calib, output=out[name], state="int16")
    return out


def test_the_rows_kernel_puts_the_16x8_fcs_on_weight_rows(models16):
    for case in ("stack", "sequence"):
        rows, pairs = load_plan(models16[case], "rows"), load_plan(models16[case], "pairs")
        fcs = [f.kernel for layer in rows.recurrent for f in layer.fast.fcs]
        assert fcs and all(k.startswith("fc16r_") for k in fcs), fcs
        assert all(f.kernel.startswith("fc16w_") for layer in pairs.recurrent for f in layer.fast.fcs)
        if case == "stack":  # the Dense head's 16x8 FC too; the 5-unit SimpleRNN: a partial pass
            assert [h.fast.kernel.startswith("fc16r_") for h in rows.head if h.kind == "fc16"] == [True]
            assert any(f.n_output % 4 for layer in rows.recurrent for f in layer.fast.fcs)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["stack", "sequence"])
def test_rows_fc16_models_equal_tflm_on_the_host(models16, tmp_path, case):
    from edgernn.backends.native.host import NativeBuild
    from test_native_fastloop import _inputs, _tflm

    path = models16[case]
    build = NativeBuild.create(path, tmp_path, kernel="rows", flags=(*C_FLAGS, "-Wshadow", "-Wundef"))
    x = _inputs(path)
    assert np.array_equal(build.run(x).reshape(len(x), -1), _tflm(path, x))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["stack", "sequence"])
def test_int16_gru_and_simplernn_equal_tflm_in_qemu_on_the_cortex_m55(models16, tmp_path, case):
    """Whole int16 GRU / SimpleRNN models on the M55 (Helium FCs), self-test bit-exact with TFLM."""
    from edgernn.firmware import run_project, write_project
    from test_native_fastloop import _inputs, _tflm

    path = models16[case]
    x = _inputs(path, 4)
    sources = emit_native(path, tmp_path / "src", "motion", target="cortex-m55")
    assert "EDGERNN_FC16R_KERNEL(motion_l0_fc16r_" in (tmp_path / "src" / "motion.c").read_text()
    project = write_project(tmp_path / "fw", target="cortex-m55", name="motion", vectors_x_int8=x,
                            vectors_y_int8=_tflm(path, x), model_sources=sources)
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    code = subprocess.run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", str(r.sizes.elf)],
                          capture_output=True, text=True, check=True).stdout
    assert "vmlava.s16" in code and "vrmulh.s32" in code  # the Helium FCs ran, not the C twin


# --------------------------------------------------------------------------- int8 gates on rows
def _gate_cases():
    """Random int8 gates (FC x, FC h, ADD, table; the GRU candidate's MUL of the h row by g first),
    as (stream, x8, h8, g, fit, table, mul tuple, TFLM's outputs); checks the numpy twin. The
    kernel reads the int8 inputs in place: inputs at both ends of int8, output zero points at
    both ends, a left shift (pre-scale 4, right shift 0)."""
    from edgernn import fixedpoint as fp
    from edgernn.backends.native.fastloop import add_exact, fit_add, mul_exact, mul_prescaled
    from edgernn.backends.native.fcrows import gate_rows_emulate, gate_rows_stream
    from edgernn.backends.native.loop import AddPlan, MulPlan

    rng = np.random.default_rng(8)
    adds = [AddPlan("add", False, 3, -7, (1 << 30, 0), (1 << 30, 0), (1 << 30, -19), -5, -128, 127),
            AddPlan("add", False, -12, 4, (1363851798, -2), (1 << 30, 0), (2133380019, -19), -6, -128, 127)]
    muls = {1: MulPlan("mul", 128, 5, (1160325558, -7), 3, -128, 127),  # pre-scale 2^1, right shift 7
            2: MulPlan("mul", 128, -3, (1560325558, 2), -7, -128, 127)}  # pre-scale 2^3, no right shift
    cases = []
    # (units, n_x, n_h, per-row shifts (x, h), MUL, output zero points or None): odd chunks, a partial
    # pass (10 units), uniform shifts, h of one, two (held on Helium) and three chunks (read per pass)
    for n, n_x, n_h, shifts, with_mul, zps in [
            (32, 6, 32, ((-8, -6), (-8, -7)), False, (-128, 127)), (10, 5, 10, ((-9, -9), (-8, -6)), True, None),
            (6, 17, 6, ((-7, -7), (-7, -7)), False, None), (8, 3, 40, ((-10, -8), (-9, -7)), True, (127, -128)),
            (40, 33, 40, ((1, 1), (0, 0)), False, None), (12, 16, 17, ((-12, -9), (-11, -10)), 2, None)]:
        sides, want_rows = [], []
        count = 300
        x8 = rng.integers(-128, 128, (count, n_x))
        h8 = rng.integers(-128, 128, (count, n_h))
        x8[:2], h8[:2] = 127, -128
        for side, (k_in, v8, (lo, hi)) in enumerate(((n_x, x8, shifts[0]), (n_h, h8, shifts[1]))):
            w = rng.integers(-127, 128, (n, k_in)) // (64 if lo >= 0 else 1)  # (a left shift: small weights)
            w[0] = 127
            bias = rng.integers(-3000, 3000, n)
            m = rng.integers(1 << 30, (1 << 31) - 1, n)
            s = rng.integers(lo, hi + 1, n)
            zp = int(rng.integers(-20, 20)) if zps is None else zps[side]
            acc = v8 @ w.T + bias
            want_rows.append(np.clip(fp.multiply_by_quantized_multiplier(acc, m, s) + zp, -128, 127))
            sides.append((w, bias, m, s, zp))
        st = gate_rows_stream(*sides, "test")
        p = adds[len(cases) % 2]
        p1, p2, kk, sh = fit_add(p)
        a, b = want_rows
        g = rng.integers(-128, 128, (count, n))
        mt = None
        if with_mul:
            mul = muls[int(with_mul)]
            mm, mk, mrs, rounding = mul_prescaled(mul)
            mt = (mul.input1_offset, mul.input2_offset * (1 << mk), rounding, mm, mk, mrs)
            b = mul_exact(mul, g, b)
        table = rng.integers(-128, 128, 256)
        want = table[add_exact(p, a, b) + 128]
        assert np.array_equal(gate_rows_emulate(st, x8, h8, (p1, p2, kk, sh), table, mt, g), want)
        cases.append((st, x8, h8, g, (p1, p2, kk, sh), table, mt, want))
    return cases


def _gate_program(cases, print_fn: str) -> str:
    """Each case's kernel over its stream and int8 inputs read in place, printing every output row;
    a case with as many outputs as h values once more with alias 1, its output written over a
    copy of h (a state written in place: h held in registers, or copied, before the first store)."""
    out = ['#include "edgernn_mve_fc.h"\n']
    for k, (st, x8, h8, g, fit, table, mt, _) in enumerate(cases):
        arr = lambda t, name, v: f"static const {t} {name}{k}[] = {{{', '.join(str(int(e)) for e in np.ravel(v))}}};\n"  # noqa: E731
        out.append(f"static const uint32_t s{k}[] = {{{', '.join(f'{int(v)}u' for v in st.words)}}};\n"
                   + arr("int8_t", "x", x8) + arr("int8_t", "h", h8) + (arr("int8_t", "g", g) if mt else "")
                   + arr("int8_t", "t", table)
                   + f"EDGERNN_GATE_ROWS_KERNEL(gate{k}, {st.n_output}, {st.n_x}, {st.n_h}, {st.rs_x}, {st.rs_h}, "
                   f"{st.ls_x}, {st.ls_h}, {fit[3]}, {mt[4] if mt else 0}, {mt[5] if mt else 0}, 0)\n")
        if st.n_output == st.n_h:
            out.append(f"EDGERNN_GATE_ROWS_KERNEL(alias{k}, {st.n_output}, {st.n_x}, {st.n_h}, {st.rs_x}, {st.rs_h}, "
                       f"{st.ls_x}, {st.ls_h}, {fit[3]}, {mt[4] if mt else 0}, {mt[5] if mt else 0}, 1)\n")
    out.append("static void run_gates(void)\n{\n    static int8_t y[100];\n    int r, c;\n")
    for k, (st, x8, h8, g, fit, table, mt, want) in enumerate(cases):
        mul = f"g{k} + r * {st.n_output}, {mt[0]}, {mt[1]}, {mt[2]}, {mt[3]}" if mt else "NULL, 0, 0, 0, 0"
        params = f"const edgernn_gate_rows_params f = {{ s{k}, y, {fit[0]}, {fit[1]}, {fit[2]}, t{k} + 128, {mul} }};"
        out.append(f"    for (r = 0; r < {len(want)}; ++r) {{ {params}"
                   f" for (c = 0; c < 100; ++c) y[c] = 99; gate{k}(&f, x{k} + r * {st.n_x}, h{k} + r * {st.n_h});"
                   f" for (c = 0; c < {st.n_output + 4}; ++c) {print_fn}(y[c]); }} {print_fn}(99999);\n")
        if st.n_output == st.n_h:  # in place: y holds h, the kernel overwrites it
            out.append(f"    for (r = 0; r < {len(want)}; ++r) {{ {params}"
                       f" for (c = 0; c < 100; ++c) y[c] = c < {st.n_h} ? h{k}[r * {st.n_h} + c] : 99;"
                       f" alias{k}(&f, x{k} + r * {st.n_x}, y);"
                       f" for (c = 0; c < {st.n_output + 4}; ++c) {print_fn}(y[c]); }} {print_fn}(99999);\n")
    out.append("}\n")
    return "".join(out)


def _check_gates(lines, cases) -> None:
    values = np.array(" ".join(lines).split(), np.int64)
    expected = [c for case in cases for c in [case] * (2 if case[0].n_output == case[0].n_h else 1)]
    rows = np.split(values, np.flatnonzero(values == 99999) + 1)[:len(expected)]
    assert len(rows) == len(expected)
    for case, got in zip(expected, rows):
        want = case[-1]
        got = got[:-1].reshape(len(want), -1)
        assert np.array_equal(got[:, :want.shape[1]], want)
        assert (got[:, want.shape[1]:] == 99).all()  # nothing written past the outputs


def test_gate_rows_stream_and_c_twin_equal_tflm(tmp_path):
    cases = _gate_cases()
    assert [(st.rs_x, st.rs_h) for st, *_ in cases][2] == (7, 7)  # uniform shifts: literals
    assert [(st.ls_x, st.rs_x, st.ls_h, st.rs_h) for st, *_ in cases][4] == (1, 0, 0, 0)  # a pre-scale of 4
    assert [(c[6][4], c[6][5]) for c in cases if c[6]] == [(1, 7), (1, 7), (3, 0)]  # the MUL's 2^mk, rs
    src = tmp_path / "gates.c"
    src.write_text("#include <stdio.h>\n#define PRINT(v) printf(\"%d \", (int)(v))\n" + _gate_program(cases, "PRINT")
                   + "int main(void)\n{\n    run_gates();\n    return 0;\n}\n")
    for opt in ("-O0", "-O2"):
        exe = tmp_path / f"gates{opt}"
        compile_c("gcc", [src], exe, (*C_FLAGS, opt, f"-I{TEMPLATE_DIR}"))
        _check_gates(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines(), cases)


@pytest.mark.slow
@needs_arm
def test_gate_rows_helium_equals_tflm_in_qemu_on_the_cortex_m55(tmp_path):
    cases = _gate_cases()
    lines = _run_on_the_m55(tmp_path, _gate_program(cases, "PRINT"), "run_gates",
                            ["vmlava.s8", "vqrdmulh.s32", "vldrb.s32", "vqshl.s32"])
    _check_gates(lines, cases)


@pytest.fixture(scope="module")
def models8(tmp_path_factory):
    """The same two models, --state int8 (gate kernels: GRU z / r / candidate with its MUL, SimpleRNN)."""
    import edgernn
    from test_native_fastloop import F, T, _keras_model

    tmp = tmp_path_factory.mktemp("mve_gate")
    calib = (np.random.default_rng(5).standard_normal((64, T, F)) * 1.5).astype(np.float32)
    out = {}
    for name in ("stack", "sequence"):
        out[name] = tmp / f"{name}8.tflite"
        edgernn.convert(_keras_model(name), calib=calib, output=out[name], state="int8")
    return out


def test_the_rows_kernel_puts_int8_gates_on_weight_rows(models8):
    seq = load_plan(models8["sequence"], "rows").recurrent[0].fast
    assert [f.kernel.split("_")[0] for f in seq.fcs] == ["gater"] * 4 and [f.mul is not None for f in seq.fcs] == \
        [False, False, True, False]
    assert all(f.kernel.split("_")[0] == "gate" for f in load_plan(models8["sequence"], "pairs").recurrent[0].fast.fcs)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["stack", "sequence"])
def test_rows_gate_models_equal_tflm_on_the_host(models8, tmp_path, case):
    from edgernn.backends.native.host import NativeBuild
    from test_native_fastloop import _inputs, _tflm

    path = models8[case]
    build = NativeBuild.create(path, tmp_path, kernel="rows", flags=(*C_FLAGS, "-Wshadow", "-Wundef"))
    x = _inputs(path)
    assert np.array_equal(build.run(x).reshape(len(x), -1), _tflm(path, x))


@pytest.mark.slow
@needs_arm
@pytest.mark.parametrize("case", ["stack", "sequence"])
def test_int8_gru_and_simplernn_equal_tflm_in_qemu_on_the_cortex_m55(models8, tmp_path, case):
    from edgernn.firmware import run_project, write_project
    from test_native_fastloop import _inputs, _tflm

    path = models8[case]
    x = _inputs(path, 4)
    sources = emit_native(path, tmp_path / "src", "motion", target="cortex-m55")
    assert "EDGERNN_GATE_ROWS_KERNEL(motion_l0_gater_" in (tmp_path / "src" / "motion.c").read_text()
    project = write_project(tmp_path / "fw", target="cortex-m55", name="motion", vectors_x_int8=x,
                            vectors_y_int8=_tflm(path, x), model_sources=sources)
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    code = subprocess.run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", str(r.sizes.elf)],
                          capture_output=True, text=True, check=True).stdout
    assert ("vmlav.s8" in code or "vmlava.s8" in code) and "vldrb.s32" in code  # the Helium gates ran
