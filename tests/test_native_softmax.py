"""The native int8 SOFTMAX on its exp() table (backends/native/softmax.py, edgernn_softmax_run_s8).

* the generation-time table and the kernel's numpy twin equal TFLM's reference int8 softmax
  (the ``tflite_micro`` runtime on one-op graphs, and the simulator's SOFTMAX on many more rows)
  for several (beta, input scale) pairs, the bench models' among them: random rows with ties,
  all classes equal, one hot, saturated rows, differences at the table's end and at diff_min;
* the C kernel (gcc -Wall -Wextra -Werror, -O0 and -O2) prints the same bits on the same rows;
* its reciprocal (Newton-Raphson without the saturation steps gemmlowp needs elsewhere) equals
  :func:`fixedpoint.one_over_one_plus_x_for_x_in_0_1` for every input a row sum below 2^23
  (16 classes at the row's max) gives, and on random ones above;
* a one-op SOFTMAX model emitted by the native backend equals TFLM.
"""

from __future__ import annotations

import subprocess
from types import SimpleNamespace as NS

import numpy as np
import pytest

from edgernn import fixedpoint as fp
from edgernn.backends.native import prepare
from edgernn.backends.native.emit import TEMPLATE_DIR
from edgernn.backends.native.host import C_FLAGS, compile_c
from edgernn.backends.native.softmax import DIFFS, EXP_TABLE_MIN, softmax_exp_table, softmax_s8_twin
from edgernn.simulate.ops import Softmax, Val

# (beta, input scale): the bench models' heads (bench_hybrid.py 'causal', bench_firmware.py's
# hybrid 'valid' and LSTM(32): full 256-entry tables), a scale of 1/16 (222 entries), 1/256 and
# 3/256 (diff_min past -255), a wide scale (diff_min -31: 16 entries), betas other than 1
PAIRS = [(1.0, 0.0408918858), (1.0, 0.0370254293), (1.0, 0.0263006017), (1.0, 0.0625), (1.0, 1 / 256), (1.0, 3 / 256),
         (1.0, 0.9), (0.5, 0.3), (2.0, 0.05), (1.7, 0.021)]
CLASSES = (1, 2, 4, 5, 10, 33)


def _simulator(beta: float, scale: float) -> Softmax:
    """The simulator's SOFTMAX kernel for an int8 input of ``scale`` (TFLM's output quantization)."""
    x = NS(dtype="int8", scale=[scale], zero_point=[0], name="x")
    y = NS(dtype="int8", scale=[1 / 256], zero_point=[-128], name="y")
    op = NS(inputs=[0], outputs=[1], options=NS(beta=beta), opcode="SOFTMAX")
    return Softmax(NS(engine="numpy", path="test"), NS(tensors=[x, y]), op)


def _table(beta: float, scale: float) -> tuple[np.ndarray, int]:
    mult, shift, diff_min = prepare.softmax_params(beta, scale)
    return softmax_exp_table(mult, shift, diff_min), diff_min


def _rows(rng, n: int, table_len: int, diff_min: int, count: int = 3000) -> np.ndarray:
    """Random rows (some drawn from a few values: ties) and the edge cases."""
    x = rng.integers(-128, 128, (count, n))
    x[: count // 4] = rng.choice(rng.integers(-128, 128, 3), (count // 4, n))
    edge = [np.full(n, v) for v in (-128, -1, 0, 127)]  # all classes equal
    edge += [np.where(np.arange(n) == k % n, 127, -128) for k in range(3)]  # one hot: d = 255
    edge += [np.where(np.arange(n) % 2 == 0, 127, -128), np.where(np.arange(n) % 2 == 1, 127, -128)]  # saturated
    for d in {table_len - 2, table_len - 1, table_len, -diff_min - 1, -diff_min, -diff_min + 1, 254, 255}:
        if 0 <= d < DIFFS:  # one class at the max, the others d below it (and one a step above that)
            edge.append(np.where(np.arange(n) == 0, 127, 127 - d))
            edge.append(np.where(np.arange(n) == n - 1, 127, np.where(np.arange(n) % 2 == 0, 127 - d, 128 - d)))
    return np.concatenate([np.array(edge), x]).clip(-128, 127).astype(np.int8)


def _cases():
    rng = np.random.default_rng(45)
    cases = []
    for beta, scale in PAIRS:
        table, diff_min = _table(beta, scale)
        for n in CLASSES:
            x = _rows(rng, n, len(table), diff_min)
            cases.append((beta, scale, table, x, _simulator(beta, scale)([Val(x, True)])[0].a))
    return cases


def test_table_is_tflms_exp_cut_where_it_no_longer_matters():
    for beta, scale in PAIRS:
        table, diff_min = _table(beta, scale)
        assert 1 <= len(table) <= min(DIFFS, 1 - diff_min)
        assert table[0] == 2**31 - 1 and (table >= 0).all() and table[-1] >= EXP_TABLE_MIN
        assert np.array_equal(table, _simulator(beta, scale).exp[:len(table)] * _simulator(beta, scale).ok[:len(table)])
    assert {len(_table(*p)[0]) for p in PAIRS} >= {DIFFS, 16}  # full and short tables both tested


def test_twin_equals_the_simulator_on_random_and_edge_rows():
    for beta, scale, table, x, want in _cases():
        assert np.array_equal(softmax_s8_twin(x, table), want), (beta, scale, x.shape)
    outs = np.concatenate([want.ravel() for *_, want in _cases()])
    assert outs.min() == -128 and outs.max() == 127  # both ends reached


def test_twin_equals_tflm_on_one_op_graphs():
    pytest.importorskip("tflite_micro")
    from oneop import tflm_run

    rng = np.random.default_rng(3)
    for beta, scale in PAIRS:
        table, diff_min = _table(beta, scale)
        for n in (1, 4, 10):
            x = _rows(rng, n, len(table), diff_min, count=200)
            want = tflm_run(_softmax_graph(beta, scale, n), [x])[0].reshape(x.shape)
            assert np.array_equal(softmax_s8_twin(x, table), want), (beta, scale, n)


def _softmax_graph(beta: float, scale: float, n: int) -> bytes:
    from oneop import Graph

    g = Graph()
    x = g.input((1, n), scale=scale, zp=0)
    y = g.tensor((1, n), scale=1 / 256, zp=-128)
    g.op("SOFTMAX", [x], [y], g.options("SoftmaxOptions", beta=beta))
    return g.finish([y])


def test_c_kernel_equals_the_twin(tmp_path):
    cases = _cases()
    src = ['#include <stdio.h>\n#include "edgernn_kernels.h"\n']
    for k, (_, _, table, x, _) in enumerate(cases):
        src.append(f"static const int32_t t{k}[] = {{{', '.join(map(str, table))}}};\n"
                   f"static const int8_t x{k}[] = {{{', '.join(map(str, x.ravel()))}}};\n"
                   f"static const edgernn_softmax_params p{k} = {{ {x.shape[1]}, t{k}, {len(table)} }};\n")
    src.append("int main(void)\n{\n    static int8_t y[64];\n    int r, c;\n")
    for k, (*_, x, _) in enumerate(cases):
        n = x.shape[1]
        src.append(f"    for (r = 0; r < {len(x)}; ++r) {{ for (c = 0; c < 64; ++c) y[c] = 99;"
                   f" edgernn_softmax_run_s8(&p{k}, x{k} + r * {n}, y);"
                   f" for (c = 0; c < {n + 1}; ++c) printf(\"%d \", y[c]); }}\n")
    src.append("    return 0;\n}\n")
    (tmp_path / "softmax.c").write_text("".join(src))
    for opt in ("-O0", "-O2"):
        exe = tmp_path / f"softmax{opt}"
        compile_c("gcc", [tmp_path / "softmax.c", TEMPLATE_DIR / "edgernn_kernels.c"], exe,
                  (*C_FLAGS, opt, f"-I{TEMPLATE_DIR}"))
        got = np.array(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split(), np.int64)
        at = 0
        for *_, x, want in cases:
            size = len(x) * (x.shape[1] + 1)
            rows = got[at:at + size].reshape(len(x), -1)
            at += size
            assert np.array_equal(rows[:, :-1], want) and (rows[:, -1] == 99).all()
        assert at == len(got)


def test_c_reciprocal_equals_gemmlowp(tmp_path):
    """Every a = (sum << clz(sum)) - 2^31 for sums in [2^19, 2^23) (those of [2^22, 2^23) give all
    of them), plus random even a: the C reciprocal's int32 bits, written raw, against fixedpoint."""
    rng = np.random.default_rng(11)
    extra = rng.integers(0, 2**30, 200_000) * 2
    (tmp_path / "extra.bin").write_bytes(extra.astype("<i4").tobytes())
    (tmp_path / "recip.c").write_text(
        '#include <stdio.h>\n#include "edgernn_kernels.c"\n'
        "int main(void)\n{\n    uint32_t s;\n    int32_t a, r;\n"
        "    for (s = 1u << 22; s < 1u << 23; ++s) { a = (int32_t)((s << 9) - 0x80000000u);"
        " r = edgernn_softmax_reciprocal(a); fwrite(&r, 4, 1, stdout); }\n"
        "    while (fread(&a, 4, 1, stdin) == 1) { r = edgernn_softmax_reciprocal(a); fwrite(&r, 4, 1, stdout); }\n"
        "    return 0;\n}\n")
    exe = tmp_path / "recip"
    compile_c("gcc", [tmp_path / "recip.c"], exe, (*C_FLAGS, f"-I{TEMPLATE_DIR}"))
    with open(tmp_path / "extra.bin", "rb") as f:
        got = np.frombuffer(subprocess.run([str(exe)], stdin=f, capture_output=True, check=True).stdout, "<i4")
    a = np.concatenate([(np.arange(1 << 22, 1 << 23, dtype=np.int64) << 9) - (1 << 31), extra])
    want = np.concatenate([fp.one_over_one_plus_x_for_x_in_0_1(part) for part in np.array_split(a, 16)])
    assert len(got) == len(a) and np.array_equal(got, want)


def test_native_one_op_model_equals_tflm(tmp_path):
    pytest.importorskip("tflite_micro")
    from oneop import native_build, tflm_run

    rng = np.random.default_rng(5)
    for k, (beta, scale, n) in enumerate([(1.0, 0.0625, 4), (0.5, 0.3, 7)]):
        table, diff_min = _table(beta, scale)
        x = _rows(rng, n, len(table), diff_min, count=100)
        raw = _softmax_graph(beta, scale, n)
        want = tflm_run(raw, [x])[0].reshape(x.shape)
        nb = native_build(raw, tmp_path / f"m{k}")
        src = (tmp_path / f"m{k}" / "m.c").read_text()
        assert f"[{len(table)}] = {{" in src and "exp_on_negative_values" in src  # the table and its origin
        got = nb.run(x.reshape(len(x), nb.plan.timesteps, -1)).reshape(x.shape)
        assert np.array_equal(got, want)
