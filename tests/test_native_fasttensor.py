"""Hybrid convolutions and FULLY_CONNECTEDs on the row-pair kernel (backends/native/fasttensor.py,
edgernn_conv_pairs_s8): the window of each output position widened once, the EDGERNN_FC8_KERNEL
over every output channel. Bit-exact with TFLM on the host (the kernel's C twin) for padding,
strides, dilations, 2-D filters, odd windows and narrowed activation ranges; the reference
kernel where the layout cannot apply; the Cortex-M4 assembly on the DeepConvLSTM of
bench/bench_hybrid.py in QEMU, within 5 % of the instructions bench/expected.json records.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from oneop import m4_instructions_within_5_percent, native_build, tflm_run
from test_ops_tflm import conv_graph  # the per-op test's graph builder

BENCH = Path(__file__).parents[1] / "bench"

BASE = dict(h=1, w=13, c=5, kh=1, kw=5, stride=(1, 1), dilation=(1, 1), padding=1, mult=1, groups=1, cout=6,
            per_channel=False, bias=True, act=0, sx=0.05, zx=3, sy=0.5, zy=-7, seed=1)
CASES = {
    # 1-D 'valid', per-tensor (one right shift for every row), a window of 25: an odd length
    "conv1d_odd_window": {},
    # 2-D 'same' padding (taps outside read the zero point), stride and dilation, per-channel,
    # ReLU with the output zero point above -128 (the activation range is clamped after the kernel)
    "conv2d_same_strided_dilated_relu": dict(h=4, w=9, c=3, kh=3, kw=3, stride=(2, 1), dilation=(1, 2), padding=0,
                                             cout=4, per_channel=True, act=1, zx=-20, zy=9, seed=2),
    # one filter row, stride 1 along it, an even channel count: the ring of widened columns, with
    # 'same' padding (zero-point columns at both ends), two image rows (stride 2 over them)
    "conv_ring_same_two_rows": dict(h=3, w=13, c=4, kh=1, kw=5, stride=(2, 1), padding=0, cout=8, per_channel=True,
                                    act=1, zx=-9, zy=4, seed=7),
    # time along the height (a filter column, one input column): run as one row, on the ring
    "conv_column_as_a_row_ring": dict(h=13, w=1, c=4, kh=5, kw=1, padding=0, cout=6, per_channel=True, zx=60,
                                      seed=8),
    # 54 columns: the rolled kernel (ROLLED_COLUMNS), six loop iterations, a remaining quad and an
    # odd column pair
    "conv2d_rolled_remainders": dict(h=4, w=6, c=6, kh=3, kw=3, padding=0, cout=10, per_channel=True, act=0, seed=9),
    # three full passes of three row pairs and a remainder of one pair, 120 columns, RELU6
    "conv2d_wide_relu6": dict(h=3, w=7, c=8, kh=3, kw=5, padding=0, cout=14, per_channel=True, act=3, zy=-100,
                              seed=3),
}


def _shape(case: dict) -> dict:
    from edgernn.simulate.conv import conv_output_size

    c = {**BASE, **case}
    c["oh"] = conv_output_size(c["padding"], c["h"], c["kh"], c["stride"][0], c["dilation"][0])
    c["ow"] = conv_output_size(c["padding"], c["w"], c["kw"], c["stride"][1], c["dilation"][1])
    return c


def _native_equals_tflm(case: dict, tmp_path, kernel: str = "pairs") -> str:
    raw, x = conv_graph(case, depthwise=False)
    want = tflm_run(raw, [x])[0]
    nb = native_build(raw, tmp_path, kernel=kernel)  # the host's default is "rows" (test_native_mve_conv.py)
    got = nb.run(x.reshape(len(x), nb.plan.timesteps, -1)).reshape(want.shape)
    assert np.array_equal(got, want), f"native: {np.count_nonzero(got != want)} of {got.size} differ"
    return (tmp_path / "m.c").read_text()


@pytest.mark.parametrize("name", list(CASES))
def test_conv_on_the_pairs_kernel_equals_tflm(name, tmp_path):
    code = _native_equals_tflm(_shape(CASES[name]), tmp_path)
    assert "edgernn_conv_pairs_s8(" in code and "_KERNEL(m_fc8_" in code
    assert "edgernn_conv_s8(" not in code  # no reference convolution left
    assert ("1  /* 1: the window buffer is a ring" in code) == ("ring" in name)
    assert ("EDGERNN_FC8_ROLLED_KERNEL(" in code) == (name in ("conv2d_rolled_remainders", "conv2d_wide_relu6"))


DEPTHWISE = {
    # 2-D 'same', stride, dilation, depth multiplier 2, per-channel, 9 taps (odd: a zero tap pads the
    # pairs), ReLU clamped at the output zero point
    "depthwise_same_strided_dilated_x2": dict(h=4, w=9, c=3, kh=3, kw=3, stride=(1, 2), dilation=(2, 1), padding=0,
                                              mult=2, cout=6, per_channel=True, act=1, zx=40, zy=11, seed=5),
    # 1-D 'valid', 4 taps, per-tensor, no bias
    "depthwise_1d_even_taps": dict(kw=4, c=4, cout=4, bias=False, zx=-128, seed=6),
}


@pytest.mark.parametrize("name", list(DEPTHWISE))
def test_depthwise_on_smlad_pairs_equals_tflm(name, tmp_path):
    raw, x = conv_graph(_shape(DEPTHWISE[name]), depthwise=True)
    want = tflm_run(raw, [x])[0]
    nb = native_build(raw, tmp_path)
    got = nb.run(x.reshape(len(x), nb.plan.timesteps, -1)).reshape(want.shape)
    assert np.array_equal(got, want), f"native: {np.count_nonzero(got != want)} of {got.size} differ"
    code = (tmp_path / "m.c").read_text()
    assert "edgernn_depthwise_pairs_s8(" in code and "edgernn_conv_s8(" not in code


def test_conv_the_pairs_kernel_cannot_take_keeps_the_reference_kernel(tmp_path):
    """An odd channel count (the kernel writes row pairs): the reference kernel, still exact."""
    code = _native_equals_tflm(_shape(dict(cout=3, seed=4)), tmp_path)
    assert "edgernn_conv_s8(" in code and "edgernn_conv_pairs_s8(" not in code


def test_fc8_stream_refuses_what_the_kernel_cannot_compute():
    from edgernn.backends.native.fastlstm import NotFast
    from edgernn.backends.native.fasttensor import fc8_stream

    w = np.ones((4, 6), np.int64)
    s = fc8_stream(w, np.zeros(4), [1 << 30], [-7], -3, "x")
    assert (s.pairs, s.n_input, s.rs, s.scale, s.kernel) == (2, 6, 7, 2, "fc8_p2_i6_r7")
    assert fc8_stream(w, np.zeros(4), [1 << 30] * 4, [-7, -8, -7, -9], 0, "x").rs == -1  # per-row shifts
    for args, why in [((np.ones((3, 6)), np.zeros(3), [1 << 30], [-7]), "3 outputs"),
                      ((w, np.zeros(4), [1 << 30] * 4, [1, 2, 1, 1]), "left shifts differ"),
                      ((w, np.zeros(4), [1 << 30] * 4, [0, -3, -3, -3]), "right shifts")]:
        with pytest.raises(NotFast, match=why):
            fc8_stream(*args, 0, "x")


@pytest.mark.slow
def test_cortex_m4_deepconvlstm_instructions_stay_within_5_percent_of_the_benchmark(tmp_path):
    """bench/bench_hybrid.py's 'valid' DeepConvLSTM (Conv1D(16, 5) x 2, LSTM(32), Dense(4) on 100 x 6;
    here with random weights: the count hardly depends on them) in QEMU on the Cortex-M4 and the
    Cortex-M55: the self-tests equal TFLM, and the instructions per inference are within 5 % of
    bench/expected.json's (bench_hybrid.py --record updates the M4's, bench_firmware.py --record
    the M55's)."""
    import tf_keras as tfk

    from edgernn.simulate import Simulator
    from test_hybrid_tflite import convert_plain

    sys.path.insert(0, str(BENCH))
    try:
        import bench_hybrid
    finally:
        sys.path.remove(str(BENCH))
    tfk.utils.set_random_seed(0)
    model = bench_hybrid.build(**bench_hybrid.MODELS["valid"], batch_size=1)
    rng = np.random.default_rng(0)
    path = tmp_path / "dcl.tflite"
    path.write_bytes(convert_plain(model, rng.normal(0, 1, (32, 100, 6)).astype(np.float32)))
    x = Simulator.from_file(path).quantize_input(rng.normal(0, 1, (2, 100, 6)))
    r = m4_instructions_within_5_percent(path, x, tflm_run(path.read_bytes(), [x])[0], tmp_path, "hybrid",
                                         "bench_hybrid", "valid/cortex-m4", "bench/bench_hybrid.py")
    print(f"DeepConvLSTM (random weights), Cortex-M4: {r.perf.per_inference:,.0f} instructions per inference")
    assert "edgernn_conv_pairs_s8(" in (tmp_path / "src" / "hybrid.c").read_text()
    # the Cortex-M55 (Helium: the convolutions on int8 rows, edgernn_mve_conv.h) against
    # bench_firmware.py's hybrid row (the same model trained there)
    r = m4_instructions_within_5_percent(path, x, tflm_run(path.read_bytes(), [x])[0], tmp_path / "m55", "hybrid",
                                         "bench_firmware", "hybrid/cortex-m55", "bench/bench_firmware.py",
                                         target="cortex-m55")
    print(f"DeepConvLSTM (random weights), Cortex-M55: {r.perf.per_inference:,.0f} instructions per inference")
    assert "edgernn_conv_rows_s8(" in (tmp_path / "m55" / "src" / "hybrid.c").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name,depthwise", [("conv2d_same_strided_dilated_relu", False),
                                            ("conv_ring_same_two_rows", False),
                                            ("conv2d_rolled_remainders", False),
                                            ("depthwise_same_strided_dilated_x2", True)])
def test_padded_convolutions_on_the_cortex_m4_assembly_equal_tflm(name, depthwise, tmp_path):
    """The same graphs through the Cortex-M4 build (the FC8 assembly, SMLAD) in QEMU."""
    from edgernn.backends.native import emit_native
    from edgernn.firmware import run_project, write_project

    raw, x = conv_graph(_shape((DEPTHWISE if depthwise else CASES)[name]), depthwise=depthwise)
    path = tmp_path / "op.tflite"
    path.write_bytes(raw)
    want = tflm_run(raw, [x])[0]
    sources = emit_native(path, tmp_path / "src", "op", target="cortex-m4")
    project = write_project(tmp_path / "fw", target="cortex-m4", name="op", vectors_x_int8=x.reshape(len(x), x.shape[1], -1),
                            vectors_y_int8=want.reshape(len(want), -1), model_sources=sources)
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    assert "pairs_s8(" in (tmp_path / "src" / "op.c").read_text()
