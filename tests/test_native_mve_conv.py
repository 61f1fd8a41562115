"""Convolutions and FULLY_CONNECTEDs of tensor graphs on int8 weight rows (``edgernn_mve_conv.h``,
``edgernn/backends/native/convrows.py``): the ``rows`` kernel choice's layout, Helium on the
Cortex-M55 and its C twin elsewhere.

* the stream's numpy twin (``conv_rows_emulate``) and the C twin (-O0, -O2) equal TFLM's int8
  arithmetic (MultiplyByQuantizedMultiplier per channel, output zero point, activation range) on
  random and extreme int8 windows: 1 to 90 columns (held chunks, chunks read per pass, short last
  chunks), outputs not a multiple of four, one right shift for every row or each row's own, a
  left shift, narrowed activation ranges; nothing is written past the outputs; shapes the
  requantization cannot take raise NotFast;
* the Helium form, in QEMU on the Cortex-M55 (mps3-an547), gives the same bits on the same cases;
* whole convolution graphs (padding, strides, dilations, 2-D filters, an odd channel count) on
  the rows kernel equal TFLM on the host, windows read in place where they lie in the input.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from edgernn.backends.native.convrows import conv_rows_emulate, conv_rows_reference, conv_rows_stream
from edgernn.backends.native.emit import TEMPLATE_DIR
from edgernn.backends.native.fastlstm import NotFast
from edgernn.backends.native.host import C_FLAGS, compile_c
from test_native_fasttensor import CASES, _native_equals_tflm, _shape
from test_native_mve_fc import _run_on_the_m55, check_printed_rows, needs_arm

# (n_out, n_in, shifts lo..hi (TFLM's signed exponent), output zero point, activation range, (tap, stride)
# of a dilated window read in place, or None: contiguous)
SHAPES = [(16, 80, -9, -6, -128, (-128, 127), None), (16, 30, -8, -8, -128, (-128, 127), None),
          (7, 5, -12, -3, 5, (5, 127), None), (3, 1, -2, -2, 0, (-128, 127), None),
          (9, 90, -10, -7, -20, (-128, 100), None), (4, 17, 1, 1, 7, (-128, 127), None),
          (13, 64, -5, -5, 127, (-100, 127), None), (5, 33, -20, -9, -3, (-50, 60), None),
          (8, 70, 0, 0, -1, (-128, 127), None), (16, 80, -9, -6, -128, (-128, 127), (16, 32)),
          (6, 96, -7, -7, 3, (-128, 127), (32, 96))]


def _cases():
    """(stream, windows, TFLM's outputs) per shape; checks the numpy twin on the way."""
    rng = np.random.default_rng(43)
    cases = []
    for n_out, n_in, s_lo, s_hi, zp, (lo, hi), taps in SHAPES:
        w = rng.integers(-127, 128, (n_out, n_in))
        w[0] = np.where(w[0] < 0, -128, 127)  # a row at the bound
        b = rng.integers(-2 ** 16, 2 ** 16, n_out)
        m = rng.integers(1 << 30, (1 << 31) - 1, n_out)
        s = rng.integers(s_lo, s_hi + 1, n_out)
        st = conv_rows_stream(w, b, m, s, zp, lo, hi, "test")
        if taps:
            st.tap, st.stride = taps
        assert st.rs == (-1 if len(set(s.tolist())) > 1 else max(-int(s[0]), 0)), (st.rs, s)
        x = rng.integers(-128, 128, (120, n_in))
        x[:4] = [np.full(n_in, 127), np.full(n_in, -128), np.where(w[0] > 0, 127, -128), np.where(w[0] > 0, -128, 127)]
        want = conv_rows_reference(w, b, m, s, zp, lo, hi, x)
        assert np.array_equal(conv_rows_emulate(st, x), want)
        cases.append((st, x, want))
    # the activation range binds at both ends somewhere
    assert any((want == lo).any() and (want == hi).any() for (st, _, want), (*_, (lo, hi), _) in zip(cases, SHAPES))
    return cases


def _spread(st, x, rng) -> np.ndarray:
    """The windows x [k][n_in] laid out as the kernel reads them: taps of st.tap bytes st.stride
    apart, random bytes between them (one window per row of the result)."""
    tap, stride = st.taps
    n = st.n_input // tap
    out = rng.integers(-128, 128, (len(x), (n - 1) * stride + tap))
    for k in range(n):
        out[:, k * stride:k * stride + tap] = x[:, k * tap:(k + 1) * tap]
    return out


def _program(cases, print_fn: str) -> str:
    """C declaring each case's kernel over its arrays and windows, printing every output row."""
    out = ['#include "edgernn_mve_conv.h"\n']
    rng = np.random.default_rng(5)
    for k, (st, x, _) in enumerate(cases):
        xs = _spread(st, x, rng)
        out.append(f"static const int8_t w{k}[] = {{{', '.join(str(int(v)) for v in st.weights)}}};\n"
                   f"static const int32_t q{k}[] = {{{', '.join(f'(int32_t){int(v)}' for v in st.words)}}};\n"
                   f"static const int8_t x{k}[] = {{{', '.join(str(int(v)) for v in xs.ravel())}}};\n"
                   f"#define X{k} {xs.shape[1]}\n"
                   f"EDGERNN_CONV_ROWS_KERNEL(conv{k}, w{k}, q{k}, {st.n_out}, {st.n_input}, {st.taps[0]}, "
                   f"{st.taps[1]}, {st.ls}, {st.rs}, {st.zero_point}, {st.lo}, {st.hi})\n")
    out.append("static void run_all(void)\n{\n    static int8_t y[40];\n    int r, c;\n")
    for k, (st, x, _) in enumerate(cases):
        out.append(f"    for (r = 0; r < {len(x)}; ++r) {{ for (c = 0; c < 40; ++c) y[c] = 99;"
                   f" conv{k}(x{k} + r * X{k}, y);"
                   f" for (c = 0; c < {st.n_out + 4}; ++c) {print_fn}(y[c]); }} {print_fn}(99999);\n")
    out.append("}\n")
    return "".join(out)


def test_conv_rows_stream_and_c_twin_equal_tflm(tmp_path):
    cases = _cases()
    src = tmp_path / "convrows.c"
    src.write_text("#include <stdio.h>\n#define PRINT(v) printf(\"%d \", (int)(v))\n" + _program(cases, "PRINT")
                   + "int main(void)\n{\n    run_all();\n    return 0;\n}\n")
    for opt in ("-O0", "-O2"):
        exe = tmp_path / f"convrows{opt}"
        compile_c("gcc", [src], exe, (*C_FLAGS, opt, f"-I{TEMPLATE_DIR}"))
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
        check_printed_rows(out.splitlines(), cases, fill=99)


@needs_arm
def test_conv_rows_helium_equals_tflm_on_the_cortex_m55(tmp_path):
    cases = _cases()
    lines = _run_on_the_m55(tmp_path, _program(cases, "PRINT"), "run_all", ("vmlava.s8", "vqrdmulh.s32", "vrshl.s32"))
    check_printed_rows(lines, cases, fill=99)
    # edgernn_tensor.h (which includes edgernn_mve_conv.h) also compiles as C++ for the M55
    cxx = tmp_path / "kernels.cpp"
    cxx.write_text('#include "edgernn_tensor.h"\n' + _program(cases[:2], "(void)").split("\n", 1)[1])
    subprocess.run(["arm-none-eabi-g++", "-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard", "-std=c++17", "-O2", "-c",
                    "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", f"-I{TEMPLATE_DIR}", str(cxx), "-o",
                    str(tmp_path / "kernels.o")], check=True, capture_output=True, text=True)


def test_conv_rows_refuses_what_the_requantization_cannot_take():
    w = np.ones((4, 6), np.int64)
    m = np.full(4, 1 << 30)
    for shifts, why in [([1, 2, 1, 1], "left shifts differ"), ([0, -3, -3, -3], "right shifts"),
                        ([-32] * 4, "right shifts")]:
        with pytest.raises(NotFast, match=why):
            conv_rows_stream(w, np.zeros(4), m, shifts, 0, -128, 127, "x")
    with pytest.raises(NotFast, match="may reach"):  # 2^16 x 127 x 128 x 2^8 >= 2^31
        conv_rows_stream(np.full((4, 1 << 16), 127), np.zeros(4), m, [8] * 4, 0, -128, 127, "x")


ROWS_CASES = {
    **CASES,
    "odd_channel_count": dict(cout=3, seed=4),  # the row pairs cannot take it
    # 'valid', dilated along the row, 16 channels: the taps read in place, 32 bytes apart
    "dilated_row_16_channels": dict(w=20, c=16, kw=3, dilation=(1, 2), cout=8, per_channel=True, act=1, zy=-30,
                                    seed=11),
    # the same with 24 channels: chunks would straddle taps, so the window is copied
    "dilated_row_24_channels": dict(w=12, c=24, kw=2, dilation=(1, 3), cout=5, seed=12),
}


@pytest.mark.parametrize("name", list(ROWS_CASES))
def test_conv_on_int8_rows_equals_tflm(name, tmp_path):
    """The graphs of test_native_fasttensor.py (and more) on the host's default kernel, the rows:
    bit-exact with TFLM, no reference convolution, no int16 window; 'valid' one-row convolutions
    read their windows in place (dilated ones when their channels are a multiple of 16)."""
    case = _shape(ROWS_CASES[name])
    code = _native_equals_tflm(case, tmp_path, kernel="rows")
    assert "edgernn_conv_rows_s8(" in code and "EDGERNN_CONV_ROWS_KERNEL(m_op" in code
    assert "edgernn_conv_s8(" not in code and "edgernn_conv_pairs_s8(" not in code
    inplace = case["padding"] == 1 and case["kh"] == 1 and (case["dilation"][1] == 1 or case["c"] % 16 == 0)
    assert (", NULL);" in code) == inplace, name
    if name == "dilated_row_16_channels":
        assert ", 48, 16, 32, " in code  # n_input, tap, stride
