"""Per-op exactness against TFLM over shapes drawn by hypothesis.

Each example writes a small int8 flatbuffer (tests/oneop.py: the schema object API, no
converter), runs it in ``tflite_micro.runtime`` and in edgernn's simulator (numpy and numba
engines), and requires the same bits. Shapes cover strides, dilations, SAME/VALID padding,
channel counts, depth multipliers, groups and odd sizes; scales and zero points are random;
inputs come from the whole int8 range and from a narrow band around the zero point (where
convolutions and pools saturate differently). The native C of each graph is compiled
(the kernels once per session) and must give the same bits too.
"""

from __future__ import annotations

import collections
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgernn.simulate import Simulator
from edgernn.simulate.conv import conv_output_size
from oneop import Graph, native_build, tflm_run

EXAMPLES = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scales = st.floats(1e-3, 1.0).map(lambda v: float(np.float32(v)))
zero_points = st.integers(-128, 127)
acts = st.sampled_from([0, 1, 3])  # NONE, RELU, RELU6


def inputs(rng: np.random.Generator, shape, zp: int, n: int = 6) -> np.ndarray:
    """n samples: half uniform over int8, half within +-8 of the zero point."""
    wide = rng.integers(-128, 128, (n - n // 2,) + tuple(shape))
    narrow = np.clip(zp + rng.integers(-8, 9, (n // 2,) + tuple(shape)), -128, 127)
    return np.concatenate([wide, narrow]).astype(np.int8)


NATIVE_EVERY = 4  # a gcc build per graph: native C on every 4th example of each test (25 -> 7)
_examples = collections.Counter()


def check(raw: bytes, xs: list[np.ndarray], outputs: int = 1, native: bool = True) -> None:
    """TFLM == simulator (both engines) on every example; native C (``NAME_run``, and
    ``NAME_step`` over every step when the model streams) on every ``NATIVE_EVERY``-th example
    of each test (the first included)."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    native = native and _examples[test] % NATIVE_EVERY == 0
    _examples[test] += 1
    want = tflm_run(raw, xs, outputs)
    for engine in ("numpy", "numba"):
        got = Simulator.from_bytes(raw, engine=engine).run(*xs)
        got = got if isinstance(got, list) else [got]
        for g, w in zip(got, want):
            g = np.asarray(g).reshape(w.shape)
            assert g.dtype == w.dtype
            assert np.array_equal(g, w), f"{engine}: {np.count_nonzero(g != w)} of {w.size} differ"
    if native:
        with tempfile.TemporaryDirectory(prefix="edgernn-op-") as tmp:
            nb = native_build(raw, tmp)
            x = xs[0].reshape(len(xs[0]), nb.plan.timesteps, -1)
            got = nb.run(x).reshape(want[0].shape)
            assert np.array_equal(got, want[0]), f"native: {np.count_nonzero(got != want[0])} of {got.size} differ"
            if nb.plan.graph is not None and nb.plan.graph.streaming:
                steps = nb.steps(x)
                last = steps[:, -1] if nb.plan.last_step_only else steps
                assert np.array_equal(last.reshape(want[0].shape), want[0]), "native NAME_step != TFLM"


# ----------------------------------------------------------------------------- builders
@st.composite
def conv_cases(draw, depthwise: bool):
    h = draw(st.integers(1, 4))
    w = draw(st.integers(1, 13))
    c = draw(st.integers(1, 5))
    kh = draw(st.integers(1, h))
    kw = draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from([0, 1]))  # SAME, VALID
    oh = conv_output_size(padding, h, kh, stride[0], dilation[0])
    ow = conv_output_size(padding, w, kw, stride[1], dilation[1])
    if oh < 1 or ow < 1:
        padding, oh, ow = 0, -(-h // stride[0]), -(-w // stride[1])
    mult = draw(st.integers(1, 3)) if depthwise else 1
    groups = 1 if depthwise else draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
    cout = c * mult if depthwise else groups * draw(st.integers(1, 4))
    per_channel = draw(st.booleans())
    return dict(h=h, w=w, c=c, kh=kh, kw=kw, stride=stride, dilation=dilation, padding=padding, oh=oh, ow=ow,
                mult=mult, groups=groups, cout=cout, per_channel=per_channel, bias=draw(st.booleans()),
                act=draw(acts), sx=draw(scales), zx=draw(zero_points), sy=draw(scales), zy=draw(zero_points),
                seed=draw(st.integers(0, 2**31)))


def conv_graph(case: dict, depthwise: bool) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(case["seed"])
    g = Graph()
    c, o = case["c"], case["cout"]
    x = g.input((1, case["h"], case["w"], c), scale=case["sx"], zp=case["zx"])
    n_scales = o if case["per_channel"] else 1
    ws = (10 ** rng.uniform(-3, -1, n_scales)).astype(np.float32)
    axis = 3 if depthwise else 0
    shape = (1, case["kh"], case["kw"], o) if depthwise else (o, case["kh"], case["kw"], c // case["groups"])
    w = g.const(rng.integers(-127, 128, shape), "int8", scale=ws, zp=[0] * n_scales, axis=axis)
    ins = [x, w]
    if case["bias"]:
        ins.append(g.const(rng.integers(-4000, 4000, o), "int32", scale=np.resize(ws, o) * case["sx"], zp=[0] * o))
    y = g.tensor((1, case["oh"], case["ow"], o), scale=case["sy"], zp=case["zy"])
    common = dict(padding=case["padding"], strideH=case["stride"][0], strideW=case["stride"][1],
                  dilationHFactor=case["dilation"][0], dilationWFactor=case["dilation"][1],
                  fusedActivationFunction=case["act"])
    if depthwise:
        g.op("DEPTHWISE_CONV_2D", ins, [y], g.options("DepthwiseConv2DOptions", depthMultiplier=case["mult"], **common))
    else:
        g.op("CONV_2D", ins, [y], g.options("Conv2DOptions", **common))
    return g.finish([y]), inputs(rng, (case["h"], case["w"], c), case["zx"])


@st.composite
def pool_cases(draw):
    h, w, c = draw(st.integers(1, 9)), draw(st.integers(1, 11)), draw(st.integers(1, 4))
    k = (draw(st.integers(1, h)), draw(st.integers(1, w)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from([0, 1]))
    oh = conv_output_size(padding, h, k[0], stride[0], 1)
    ow = conv_output_size(padding, w, k[1], stride[1], 1)
    return dict(h=h, w=w, c=c, k=k, stride=stride, padding=padding, oh=oh, ow=ow, act=draw(st.sampled_from([0, 1])),
                s=draw(scales), zp=draw(zero_points), seed=draw(st.integers(0, 2**31)))


def pool_graph(case: dict, opcode: str) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(case["seed"])
    g = Graph()
    x = g.input((1, case["h"], case["w"], case["c"]), scale=case["s"], zp=case["zp"])
    y = g.tensor((1, case["oh"], case["ow"], case["c"]), scale=case["s"], zp=case["zp"])
    g.op(opcode, [x], [y], g.options("Pool2DOptions", padding=case["padding"], strideH=case["stride"][0],
                                      strideW=case["stride"][1], filterHeight=case["k"][0], filterWidth=case["k"][1],
                                      fusedActivationFunction=case["act"]))
    return g.finish([y]), inputs(rng, (case["h"], case["w"], case["c"]), case["zp"])


# ----------------------------------------------------------------------------- tests
@EXAMPLES
@given(conv_cases(depthwise=False))
def test_conv2d(case):
    raw, x = conv_graph(case, depthwise=False)
    check(raw, [x])


@EXAMPLES
@given(conv_cases(depthwise=True))
def test_depthwise_conv2d(case):
    raw, x = conv_graph(case, depthwise=True)
    check(raw, [x])


@EXAMPLES
@given(pool_cases(), st.sampled_from(["MAX_POOL_2D", "AVERAGE_POOL_2D"]))
def test_pools(case, opcode):
    raw, x = pool_graph(case, opcode)
    check(raw, [x])


@EXAMPLES
@given(st.lists(st.integers(1, 7), min_size=2, max_size=4), st.data())
def test_reductions(shape, data):
    """MEAN, SUM, REDUCE_MAX and REDUCE_MIN over any axis set, keep_dims or not."""
    rank = len(shape)
    shape = [1] + shape[1:]
    opcode = data.draw(st.sampled_from(["MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"]))
    axes = data.draw(st.lists(st.integers(1, rank - 1), min_size=1, max_size=2, unique=True))
    keep = data.draw(st.booleans())
    sx, zx = data.draw(scales), data.draw(zero_points)
    same = opcode.startswith("REDUCE")
    sy, zy = (sx, zx) if same else (data.draw(scales), data.draw(zero_points))
    out = [1 if a in axes else d for a, d in enumerate(shape)] if keep else \
        [d for a, d in enumerate(shape) if a not in axes]
    g = Graph()
    x = g.input(shape, scale=sx, zp=zx)
    ax = g.const(data.draw(st.permutations(axes)) if len(axes) > 1 else axes)
    y = g.tensor(out, scale=sy, zp=zy)
    g.op(opcode, [x, ax], [y], g.options("ReducerOptions", keepDims=keep))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    check(g.finish([y]), [inputs(rng, shape[1:], zx)])


@EXAMPLES
@given(st.lists(st.integers(1, 5), min_size=2, max_size=4), st.data())
def test_pad(shape, data):
    shape = [1] + shape[1:]
    pads = [[0, 0]] + [[data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))] for _ in shape[1:]]
    s, zp = data.draw(scales), data.draw(zero_points)
    v2 = data.draw(st.booleans())
    g = Graph()
    x = g.input(shape, scale=s, zp=zp)
    ins = [x, g.const(pads)]
    if v2:
        ins.append(g.const([data.draw(zero_points)], "int8", scale=s, zp=zp))
    y = g.tensor([d + a + b for d, (a, b) in zip(shape, pads)], scale=s, zp=zp)
    g.op("PADV2" if v2 else "PAD", ins, [y], g.options("PadV2Options" if v2 else "PadOptions"))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    check(g.finish([y]), [inputs(rng, shape[1:], zp)])


@EXAMPLES
@given(st.lists(st.integers(1, 5), min_size=2, max_size=4), st.data())
def test_transpose(shape, data):
    shape = [1] + shape[1:]
    perm = [0] + list(data.draw(st.permutations(list(range(1, len(shape))))))
    g = Graph()
    x = g.input(shape, scale=0.05, zp=-3)
    y = g.tensor([shape[p] for p in perm], scale=0.05, zp=-3)
    g.op("TRANSPOSE", [x, g.const(perm)], [y], g.options("TransposeOptions"))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    check(g.finish([y]), [inputs(rng, shape[1:], -3)])


@EXAMPLES
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 4), st.data())
def test_pack_unpack(k, t, c, data):
    """UNPACK a (1, k, t, c) tensor along axis 1, PACK the pieces back along another axis."""
    g = Graph()
    x = g.input((1, k, t, c), scale=0.1, zp=5)
    parts = [g.tensor((1, t, c), scale=0.1, zp=5) for _ in range(k)]
    g.op("UNPACK", [x], parts, g.options("UnpackOptions", num=k, axis=1))
    axis = data.draw(st.integers(0, 3))
    shape = [1, t, c]
    shape.insert(axis, k)
    y = g.tensor(shape, scale=0.1, zp=5)
    g.op("PACK", parts, [y], g.options("PackOptions", valuesCount=k, axis=axis))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    check(g.finish([y]), [inputs(rng, (k, t, c), 5)])


def s2b_conv_graph(t: int, c: int, d: int, k: int, pad_before: int, crop_end: int, o: int, seed: int):
    """The converter's batch-None dilated Conv1D: SPACE_TO_BATCH_ND -> EXPAND_DIMS -> CONV_2D ->
    RESHAPE -> BATCH_TO_SPACE_ND -> ADD(bias), on a 3-D (1, T, C) input."""
    total = -(-(t + pad_before) // d) * d
    pads = [[pad_before, total - t - pad_before]]
    tb = total // d
    out_len = tb - (k - 1)
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.input((1, t, c), scale=0.05, zp=-10)
    s2b = g.tensor((d, tb, c), scale=0.05, zp=-10)
    g.op("SPACE_TO_BATCH_ND", [x, g.const([d]), g.const(pads)], [s2b], g.options("SpaceToBatchNDOptions"))
    x4 = g.tensor((d, 1, tb, c), scale=0.05, zp=-10)
    g.op("EXPAND_DIMS", [s2b, g.const([1])], [x4], g.options("ExpandDimsOptions"))
    ws = (10 ** rng.uniform(-3, -1, o)).astype(np.float32)
    w = g.const(rng.integers(-127, 128, (o, 1, k, c)), "int8", scale=ws, zp=[0] * o)
    y4 = g.tensor((d, 1, out_len, o), scale=0.08, zp=4)
    g.op("CONV_2D", [x4, w, -1], [y4], g.options("Conv2DOptions", padding=1, strideH=1, strideW=1))
    y3 = g.tensor((d, out_len, o), scale=0.08, zp=4)
    g.op("RESHAPE", [y4, g.const([d, out_len, o])], [y3], g.options("ReshapeOptions", newShape=[d, out_len, o]))
    yb = g.tensor((1, out_len * d - crop_end, o), scale=0.08, zp=4)
    g.op("BATCH_TO_SPACE_ND", [y3, g.const([d]), g.const([[0, crop_end]])], [yb],
         g.options("BatchToSpaceNDOptions"))
    y = g.tensor((1, out_len * d - crop_end, o), scale=0.1, zp=-2)
    bias = g.const(rng.integers(-128, 128, o), "int8", scale=0.02, zp=0)
    g.op("ADD", [yb, bias], [y], g.options("AddOptions"))
    return g.finish([y]), inputs(rng, (t, c), -10)


@EXAMPLES
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 3), st.data())
def test_space_to_batch_dilated_conv(m, c, d, data):
    """T a multiple of the dilation: SPACE_TO_BATCH_ND pads nothing (where it pads an int8
    tensor TFLM reads uninitialized memory, see below)."""
    k = data.draw(st.integers(1, m))
    crop_end = data.draw(st.integers(0, min((m - k + 1) * d - 1, d)))
    raw, x = s2b_conv_graph(m * d, c, d, k, 0, crop_end, data.draw(st.integers(1, 4)), data.draw(st.integers(0, 2**31)))
    check(raw, [x])


def test_space_to_batch_padding_is_the_zero_point(caplog):
    """TFLM's micro SPACE_TO_BATCH_ND pads with a never-initialized ``output_offset``; the
    simulator and the native C pad with the zero point (what the float graph means), agree with
    each other, and the simulator says so."""
    import logging

    raw, x = s2b_conv_graph(7, 3, 2, 2, 1, 1, 3, 5)
    with caplog.at_level(logging.WARNING):
        sim = Simulator.from_bytes(raw)
    assert "uninitialized memory" in caplog.text
    y_sim = sim.run(x)
    with tempfile.TemporaryDirectory(prefix="edgernn-op-") as tmp:
        nb = native_build(raw, tmp)
        assert np.array_equal(nb.run(x.reshape(len(x), 7, -1)).reshape(y_sim.shape), y_sim)
    _, tensors = sim.run(x, capture=True)
    padded = next(v for k, v in tensors.items() if v.shape[1:] == (2, 4, 3))  # (d, (7 + 1) / 2, C)
    assert np.all(padded[:, 0, 0, :] == -10)  # the first row of block 0 is the padding: the zero point


@EXAMPLES
@given(st.integers(1, 8), st.integers(1, 6), st.data())
def test_broadcast_add_mul_requantize(t, c, data):
    """BatchNorm that cannot be folded: MUL and ADD by per-channel int8 constants; then an
    int8 -> int8 QUANTIZE (requantization) and a CONCATENATION along channels."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    sx, zx = data.draw(scales), data.draw(zero_points)
    g = Graph()
    x = g.input((1, t, c), scale=sx, zp=zx)
    m = g.tensor((1, t, c), scale=data.draw(scales), zp=data.draw(zero_points))
    g.op("MUL", [x, g.const(rng.integers(-128, 128, c), "int8", scale=0.01, zp=3)], [m],
         g.options("MulOptions", fusedActivationFunction=data.draw(st.sampled_from([0, 1]))))
    a = g.tensor((1, t, c), scale=data.draw(scales), zp=data.draw(zero_points))
    g.op("ADD", [m, g.const(rng.integers(-128, 128, (1, 1, c)), "int8", scale=0.02, zp=-5)], [a],
         g.options("AddOptions", fusedActivationFunction=data.draw(acts)))
    q = g.tensor((1, t, c), scale=sx, zp=zx)
    g.op("QUANTIZE", [a], [q])
    y = g.tensor((1, t, 2 * c), scale=sx, zp=zx)
    g.op("CONCATENATION", [q, x], [y], g.options("ConcatenationOptions", axis=2))
    check(g.finish([y]), [inputs(rng, (t, c), zx)])


def test_shape_of_a_dynamic_batch_export_is_static():
    """SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE (a batch-None Reshape) runs as a plain RESHAPE."""
    g = Graph()
    x = g.input((1, 4, 6), scale=0.1, zp=1)
    shp = g.tensor((3,), "int32")
    g.op("SHAPE", [x], [shp], g.options("ShapeOptions", outType=2))
    b = g.tensor((), "int32")
    g.op("STRIDED_SLICE", [shp, g.const([0]), g.const([1]), g.const([1])], [b],
         g.options("StridedSliceOptions", shrinkAxisMask=1))
    new = g.tensor((2,), "int32")
    g.op("PACK", [b, g.const(24)], [new], g.options("PackOptions", valuesCount=2, axis=0))
    y = g.tensor((1, 24), scale=0.1, zp=1)
    g.op("RESHAPE", [x, new], [y], g.options("ReshapeOptions"))
    rng = np.random.default_rng(0)
    check(g.finish([y]), [inputs(rng, (4, 6), 1)])


def test_pooling_refuses_requantization():
    from edgernn.errors import EdgeRNNError

    g = Graph()
    x = g.input((1, 4, 1, 2), scale=0.1, zp=0)
    y = g.tensor((1, 2, 1, 2), scale=0.2, zp=0)
    g.op("MAX_POOL_2D", [x], [y], g.options("Pool2DOptions", padding=1, strideH=2, strideW=1, filterHeight=2,
                                            filterWidth=1))
    with pytest.raises(EdgeRNNError, match="MAX_POOL_2D.*quantization differ"):
        Simulator.from_bytes(g.finish([y]))
