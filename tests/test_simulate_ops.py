"""Op-level exactness: tiny float tf_keras models, int8 PTQ with the TF converter, simulator vs
TFLM on every sample; and the fixed-point helpers against their definitions."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from edgernn.simulate import Simulator
from edgernn import fixedpoint as fp

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _convert(model, calib: np.ndarray, float_io: bool) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def _elementwise_model(seed: int):
    """Dense -> tanh / sigmoid, multiply, add, subtract (+ fused relu), concatenate (with the
    requantizing QUANTIZE the converter inserts), slice, gather, relu / relu6, flatten,
    dense + softmax: one graph touching every elementwise int8 kernel."""
    import tensorflow as tf
    import tf_keras as tfk

    tfk.utils.set_random_seed(seed)
    inp = tfk.Input((8, 6), batch_size=1)
    d = tfk.layers.Dense(12)(inp)
    a = tfk.layers.Activation("tanh")(d)
    b = tfk.layers.Activation("sigmoid")(tfk.layers.Dense(12)(inp))
    m = tfk.layers.Multiply()([a, b])
    s = tfk.layers.Add()([m, d])
    u = tfk.layers.Subtract()([s, b])
    r = tfk.layers.ReLU()(u)
    c = tfk.layers.Concatenate()([r, a])
    sl = tfk.layers.Lambda(lambda z: z[:, 2:7, :])(c)
    g = tfk.layers.Lambda(lambda z: tf.gather(z, [3, 0, 5, 1], axis=2))(sl)
    g = tfk.layers.Concatenate()([tfk.layers.ReLU()(g), tfk.layers.ReLU(max_value=6.0)(g)])
    f = tfk.layers.Flatten()(g)
    out = tfk.layers.Dense(5, activation="softmax")(f)
    return tfk.Model(inp, out)


@pytest.fixture(scope="module")
def op_models(tmp_path_factory):
    rng = np.random.default_rng(1)
    calib = rng.normal(0, 1.5, size=(64, 8, 6)).astype(np.float32)
    test = rng.normal(0, 2.0, size=(300, 8, 6)).astype(np.float32)  # wider: saturating inputs too
    root = tmp_path_factory.mktemp("simops")
    paths = {}
    for name, float_io in (("int8-io", False), ("float-io", True)):
        p = root / f"{name}.tflite"
        p.write_bytes(_convert(_elementwise_model(3), calib, float_io))
        paths[name] = p
    return paths, test


def _tflm(path, x):
    from tflite_micro.python.tflite_micro import runtime

    ip = runtime.Interpreter.from_file(str(path))
    out = []
    for i in range(len(x)):
        ip.reset()
        ip.set_input(x[i:i + 1], 0)
        ip.invoke()
        out.append(ip.get_output(0).copy())
    return np.concatenate(out)


def test_elementwise_ops_equal_tflm(op_models):
    paths, x = op_models
    sim = Simulator.from_file(paths["int8-io"])
    ops = set(sim.model.op_counts)
    for needed in ("FULLY_CONNECTED", "TANH", "LOGISTIC", "MUL", "ADD", "SUB", "CONCATENATION",
                   "STRIDED_SLICE", "GATHER", "RESHAPE", "SOFTMAX", "RELU", "RELU6", "QUANTIZE"):
        assert needed in ops, f"the converter no longer emits {needed}: {sorted(ops)}"
    xq = sim.quantize_input(x)
    got = sim.run(xq)
    want = _tflm(paths["int8-io"], xq)
    assert np.array_equal(got, want), f"max {np.abs(got.astype(int) - want).max()} LSB"
    # every intermediate is int8 with a leading sample axis
    _, tensors = sim.run(xq[:5], capture=True)
    assert all(v.shape[0] == 5 for v in tensors.values())


def test_float_io_quantize_dequantize_equal_tflm(op_models):
    paths, x = op_models
    sim = Simulator.from_file(paths["float-io"])
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(sim.model.op_counts)
    got = sim.run(x.astype(np.float32))
    want = _tflm(paths["float-io"], x.astype(np.float32))
    assert got.dtype == np.float32
    assert np.array_equal(got, want)


def test_quantize_rounds_like_tflm_at_ties(op_models):
    """QUANTIZE divides in float32 and rounds half away from zero: check values at and next to
    the .5 ties, where a double division or banker's rounding would differ."""
    from tflite_micro.python.tflite_micro import runtime

    paths, _ = op_models
    sim = Simulator.from_file(paths["float-io"])
    main = sim.model.main
    qop = next(op for op in main.operators if op.opcode == "QUANTIZE")
    qt = main.tensors[qop.outputs[0]]
    scale, zp = np.float32(qt.scale[0]), int(qt.zero_point[0])
    k = np.arange(-140 - zp, 140 - zp, dtype=np.float32)
    ties = (k + np.float32(0.5)) * scale
    vals = np.concatenate([ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    vals = np.resize(vals.astype(np.float32), (len(vals) // 48 + 1) * 48).reshape(-1, 8, 6)
    _, tensors = sim.run(vals, capture=True)
    ip = runtime.Interpreter.from_file(str(paths["float-io"]),
                                       intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    for i in range(len(vals)):
        ip.reset()
        ip.set_input(vals[i:i + 1], 0)
        ip.invoke()
        want = ip.GetTensor(qop.outputs[0], 0)["tensor_data"]
        assert np.array_equal(tensors[qt.name][i].reshape(want.shape), want)


# --------------------------------------------------------------------------- fixed-point helpers
def _srdhm_def(a: int, b: int) -> int:
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    v = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    return v // (1 << 31) if v >= 0 else -((-v) // (1 << 31))  # C division truncates


def _rdbpot_def(x: int, e: int) -> int:
    # round half away from zero of x / 2^e, from exact rationals
    from fractions import Fraction
    q = Fraction(x, 1 << e)
    return int(math.floor(abs(q) + Fraction(1, 2))) * (1 if q >= 0 else -1)


def test_rounding_primitives_match_their_definitions():
    rng = np.random.default_rng(0)
    a = rng.integers(-(1 << 31), 1 << 31, size=2000)
    b = rng.integers(0, 1 << 31, size=2000)
    got = fp.saturating_rounding_doubling_high_mul(a, b)
    want = [_srdhm_def(int(x), int(y)) for x, y in zip(a, b)]
    assert got.tolist() == want
    assert int(fp.saturating_rounding_doubling_high_mul(-(1 << 31), -(1 << 31))) == (1 << 31) - 1
    x = rng.integers(-(1 << 31), 1 << 31, size=2000)
    e = rng.integers(0, 31, size=2000)
    assert fp.rounding_divide_by_pot(x, e).tolist() == [_rdbpot_def(int(v), int(s)) for v, s in zip(x, e)]
    # ties round away from zero
    assert fp.rounding_divide_by_pot(np.array([3, -3, 5, -5]), 1).tolist() == [2, -2, 3, -3]


def test_fast_requantization_equals_the_integer_reference():
    """The float64 MultiplyByQuantizedMultiplier the kernels use == the int32 reference, ties included."""
    rng = np.random.default_rng(2)
    for _ in range(30):
        m, shift = int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(-31, 8))
        lim = (1 << 31) >> max(shift, 0)
        x = np.concatenate([rng.integers(-lim, lim, size=20000), [0, 1, -1, lim - 1, -lim]])
        assert np.array_equal(fp.multiply_by_quantized_multiplier(x, m, shift),
                              fp.multiply_by_quantized_multiplier_fast(x, m, shift).astype(np.int64)), (m, shift)
    x = np.arange(-70000, 70000)
    for shift in range(-12, 1):
        assert np.array_equal(fp.multiply_by_quantized_multiplier(x, 1 << 30, shift),
                              fp.multiply_by_quantized_multiplier_fast(x, 1 << 30, shift).astype(np.int64))


def test_quantize_multiplier_reconstructs_the_scale():
    for real in (0.5, 0.999999999, 1.0, 3.7, 1e-3, 2.0 ** -20, 0.000244140625 / 0.0076):
        m, shift = fp.quantize_multiplier(real)
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (shift - 31) - real) <= real * 2.0 ** -30
    assert fp.quantize_multiplier(0.0) == (0, 0)
    assert fp.quantize_multiplier(2.0 ** -40) == (0, 0)  # flushed like TFLM
    # MultiplyByQuantizedMultiplier approximates x * real to within one unit
    x = np.arange(-5000, 5000, 7)
    m, s = fp.quantize_multiplier(0.0123)
    assert np.abs(fp.multiply_by_quantized_multiplier(x, m, s) - x * 0.0123).max() <= 1.0


def test_int16_lut_activations_track_float_functions():
    x = np.arange(-32768, 32768, dtype=np.int64)  # Q3.12
    sig = fp.logistic_int16(x) / 32768.0
    assert np.abs(sig - 1 / (1 + np.exp(-x / 4096.0))).max() < 2e-3
    assert np.all(np.diff(fp.logistic_int16(x)) >= 0)
    th = fp.lstm_tanh_int16(x, -12) / 32768.0
    assert np.abs(th - np.tanh(x / 4096.0)).max() < 2e-3
    # cell state at scale 2^-11 (Q4.11): the tanh input is shifted accordingly
    th11 = fp.lstm_tanh_int16(x, -11) / 32768.0
    assert np.abs(th11 - np.tanh(x / 2048.0)).max() < 2e-3


def test_gemmlowp_functions_track_float_functions():
    q = np.linspace(-7.9, 7.9, 4001)
    raw = np.round(q * (1 << 27)).astype(np.int64)  # Q4.27
    assert np.abs(fp.fixed_point_logistic(raw, 4) / 2.0 ** 31 - 1 / (1 + np.exp(-q))).max() < 1e-6
    assert np.abs(fp.fixed_point_tanh(raw, 4) / 2.0 ** 31 - np.tanh(q)).max() < 1e-6
    neg = -np.abs(raw)
    assert np.abs(fp.exp_on_negative_values(neg, 4) / 2.0 ** 31 - np.exp(-np.abs(q))).max() < 1e-6
    r, bits = fp.get_reciprocal(np.array([3 << 19]), 12)  # 3.0 in Q12.19
    assert abs(r[0] / 2.0 ** 31 * 2.0 ** -int(bits[0]) - 1 / 3) < 1e-6


@pytest.mark.parametrize("portable", [False, True], ids=["native", "portable"])
def test_compiled_int8_dot_products_are_exact(monkeypatch, portable):
    """The LSTM kernel's packed int8 dot product (vpdpbusd where the CPU has AVX-512 VNNI,
    portable vector code otherwise) equals the integer matrix product, extreme values included."""
    from edgernn.simulate import _fast

    monkeypatch.setattr(_fast, "FORCE_PORTABLE_DOT", portable)

    @_fast.numba.njit  # compiled here (not cached), so FORCE_PORTABLE_DOT applies
    def fc(w4, v4, init, out):
        for r in range(0, w4.shape[0], 4):
            for col in range(0, v4.shape[1], 32):
                _fast._dot4_u8s8(w4, v4, init, out, r, col)

    rng = np.random.default_rng(3)
    for rows, k, cols in [(8, 6, 32), (128, 32, 96), (12, 13, 64)]:
        w = rng.integers(-128, 128, size=(rows, k)).astype(np.int8)
        w[0] = -128
        v = rng.integers(-128, 128, size=(k, cols)).astype(np.int8)
        v[:, 0] = 127
        v4 = _fast.pack4((v.astype(np.int16) + 128).astype(np.uint8).T.view(np.int8)).T  # (ceil(k/4), cols)
        out = np.zeros((rows, cols), np.int32)
        init = rng.integers(-1000, 1000, size=rows).astype(np.int32)
        init[1] = -(1 << 31)  # wraps below INT32_MIN on the way, as the int32 sums may
        fc(_fast.pack4(w), np.ascontiguousarray(v4), init, out)
        want = init[:, None].astype(np.int64) + w.astype(np.int64) @ (v.astype(np.int64) + 128)
        assert np.array_equal(out, (want + (1 << 31)) % (1 << 32) - (1 << 31))
    if portable:
        assert "vpdpbusd" not in "".join(fc.inspect_asm().values())


def test_folded_requantization_constants_equal_the_integer_reference():
    """The compiled kernels' one-step MultiplyByQuantizedMultiplier (both roundings folded into
    one floor) == the int32 reference, ties and negative values included, in its float64 form
    (inputs within its exactness bound) and its int64 form (right shifts only)."""
    from edgernn.simulate import _fast

    rng = np.random.default_rng(5)
    cases = []
    for _ in range(40):
        m, shift = int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(-31, 4))
        lim = int(_fast.FLOAT_EXACT) // (m << max(shift, 0))
        x = np.concatenate([rng.integers(-lim, lim, size=20000), [0, 1, -1, 2, -2, lim - 1, -lim + 1]])
        cases.append((x, m, shift))
    # multiplier 2^30 (the LSTM cell's): a dense range holds every SRDHM and RDBPOT tie
    cases += [(np.arange(-70000, 70000), 1 << 30, shift) for shift in range(-16, 1)]
    for x, m, shift in cases:
        want = fp.multiply_by_quantized_multiplier(x, m, shift)
        scale, thr, k_pos, k_neg = _fast.requant_constants(m, shift)
        xf = x.astype(np.float64)
        assert np.array_equal(np.floor(xf * scale + np.where(xf <= thr, k_neg, k_pos)), want), (m, shift)
        if shift <= 0:
            mult, c, d, s = _fast.requant_int_constants(m, shift)
            p = x * mult
            assert np.array_equal((p + c - np.where(p < -(1 << 30), d, 0)) >> s, want), (m, shift)
    assert _fast.requant_constants(1 << 30, 0)[3] == _fast.requant_constants(1 << 30, 0)[2]  # no shift, no sign step


def test_compiled_softmax_equals_the_numpy_kernel_and_its_reciprocal_the_reference(op_models):
    """The numba SOFTMAX (one row at a time, GetReciprocal compiled) gives the numpy kernel's
    bits on random logits with ties and equal rows; its reciprocal equals
    :func:`fixedpoint.get_reciprocal` over the whole positive int32 range."""
    import numba

    from edgernn.simulate import _fast
    from edgernn.simulate.ops import Softmax, Val

    sims = {e: Simulator.from_file(op_models[0]["int8-io"], engine=e) for e in ("numba", "numpy")}
    kern = {e: next(k for k in s.graphs[0].kernels if isinstance(k, Softmax)) for e, s in sims.items()}
    rng = np.random.default_rng(7)
    c = kern["numpy"].t_in(0).shape[-1]
    x = rng.integers(-128, 128, (5000, 1, c)).astype(np.int8)
    x[:1000] = x[:1000, :, :1]  # all classes equal
    x[1000:2000, :, 0] = 127  # one clear winner
    got, ref = (kern[e]([Val(x, True)])[0].a for e in ("numba", "numpy"))
    assert sims["numba"].engine == "numba"  # the compiled kernel ran, no fall-back
    np.testing.assert_array_equal(got, ref)

    @numba.njit
    def reciprocals(xs, scale, bits):
        for i in range(xs.shape[0]):
            scale[i], bits[i] = _fast._reciprocal(xs[i], 12)

    xs = np.concatenate([np.arange(1, 4096), rng.integers(1, 2**31 - 1, 100_000),
                         [2**19, 2**31 - 1]]).astype(np.int64)
    scale, bits = np.empty_like(xs), np.empty_like(xs)
    reciprocals(xs, scale, bits)
    ref_scale, ref_bits = fp.get_reciprocal(xs, 12)
    np.testing.assert_array_equal(scale, ref_scale)
    np.testing.assert_array_equal(bits, ref_bits)
