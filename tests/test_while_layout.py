"""The WHILE-graph layout of issue 15: int16 state with one FULLY_CONNECTED per input side,
stacks in one loop, the offline memory plan, and every engine bit-exact with TFLM on it.

Fast tests use small Keras 3 models with seeded random weights on real BasicMotions inputs
(the topologies of test_cells); the size, arena and precision checks build the issue's own
models (32 units, T = 25 / 150).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgernn import tflite_model
from edgernn.backends.tflm.convert import convert_ir
from edgernn.backends.tflm.graph import OFFLINE_PLAN_NAME
from edgernn.backends.tflm.runtime import TFLMRunner
from edgernn.frontend import from_keras
from edgernn.simulate import Simulator

from conftest import Spec, load_npz
from test_cells import keras3_model

T = 30
# --state int16 (the default) is checked on every test_cells topology; int8 here, one of each kind
INT8_TOPOLOGIES = ["gru", "rnn_relu", "gru_x2", "mixed_lstm_gru", "bi_gru_sum", "per_step_gru", "bi_gru_x2"]


@pytest.fixture(scope="module")
def bm(bm_data):
    (xtr, _), (xte, _) = load_npz(bm_data[0]), load_npz(bm_data[1])
    return xtr[:, :T], xte[:16, :T]


def _offline_plan(data: bytes) -> np.ndarray:
    from tensorflow.lite.python import schema_py_generated as s

    m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    entry = next(md for md in m.metadata if md.name.decode() == OFFLINE_PLAN_NAME)
    return np.frombuffer(bytes(bytearray(m.buffers[entry.buffer].data)), "<i4")


@pytest.mark.parametrize("kind", INT8_TOPOLOGIES)
def test_int8_state_simulator_and_native_c_equal_tflm(kind, bm, tmp_path):
    """``--state int8`` (one FULLY_CONNECTED per gate, int8 state): TFLM, the simulator's numpy
    and numba engines and the generated C give the same int8 outputs (0 LSB) on every sample."""
    from edgernn.backends.native.host import NativeBuild

    xtr, xte = bm
    data = convert_ir(from_keras(keras3_model(kind, timesteps=T)), xtr, state="int8")
    assert _metadata_of(data)["state"] == "int8"
    runner = TFLMRunner(data, arena_size=300_000)
    xq = runner.quantize_input(xte)
    want = runner.run(xq)
    for engine in ("numpy", "numba"):
        got = Simulator.from_bytes(data, engine=engine).run(xq)
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=engine)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    got = NativeBuild.create(path, tmp_path / "native", name="model").run(xq)
    np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg="native C")


@pytest.mark.parametrize("kind", ["gru", "bi_lstm", "bi_gru_sum", "rnn_relu"])
def test_int16_head_reads_the_final_int16_state(kind, bm, tmp_path):
    """``--state int16``: the head's Dense is a 16x8 FULLY_CONNECTED on the last layer's final
    int16 h (a Bidirectional layer's int16 CONCATENATION of two Q15 halves, or int16 sum), with
    an int64 bias and int16 logits, then QUANTIZE to int8 and the int8 SOFTMAX: h is never
    rounded to int8 on its way to the logits. TFLM, the simulator's numpy and numba engines and
    the generated C give the same int8 outputs; ``--state int8`` keeps its int8 head."""
    from edgernn.backends.native.host import NativeBuild

    xtr, xte = bm
    model = from_keras(keras3_model(kind, timesteps=T))
    data = convert_ir(model, xtr)
    main = tflite_model.parse(data).main
    ops = [op.opcode for op in main.operators]
    i = ops.index("FULLY_CONNECTED")
    fc_op = main.operators[i]
    x, b, y = (main.tensors[t] for t in (fc_op.inputs[0], fc_op.inputs[2], fc_op.outputs[0]))
    assert (x.dtype, b.dtype, y.dtype) == ("int16", "int64", "int16")
    assert ops[i - 1] == {"gru": "WHILE", "rnn_relu": "WHILE", "bi_lstm": "CONCATENATION", "bi_gru_sum": "ADD"}[kind]
    assert ops[i + 1:] == ["QUANTIZE", "SOFTMAX"] and "QUANTIZE" not in ops[:i]
    if kind == "bi_lstm":
        assert x.scale[0] == 2.0 ** -15  # both halves on Q15: the concatenation is a copy
    runner = TFLMRunner(data, arena_size=300_000)
    xq = runner.quantize_input(xte)
    want = runner.run(xq)
    for engine in ("numpy", "numba"):
        got = Simulator.from_bytes(data, engine=engine).run(xq)
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=engine)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    got = NativeBuild.create(path, tmp_path / "native", name="model").run(xq)
    np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg="native C")
    int8 = tflite_model.parse(convert_ir(model, xtr, state="int8")).main
    fc8 = next(op for op in int8.operators if op.opcode == "FULLY_CONNECTED")
    assert int8.tensors[fc8.inputs[0]].dtype == "int8" and int8.tensors[fc8.outputs[0]].dtype == "int8"


def _metadata_of(data: bytes) -> dict:
    from test_cells import _metadata

    return _metadata(data)


@pytest.mark.parametrize("kind,state", [("gru_x4", "int16"), ("bi_lstm", "int16"), ("per_step_gru", "int8")])
def test_offline_plan_reads_the_same_per_subgraph_or_concatenated(kind, state, bm):
    """TFLM reads OfflineMemoryAllocation over all subgraphs' tensors concatenated; older
    allocators read entry i for tensor i of every subgraph. Both readings give every tensor TFLM
    allocates the same offset, and each sequence's tensors in the main, cond and body graphs
    share one offset (that is what makes TFLM skip the WHILE copies)."""
    xtr, _ = bm
    data = convert_ir(from_keras(keras3_model(kind, timesteps=T)), xtr, state=state)
    tm = tflite_model.parse(data)
    plan = _offline_plan(data)
    assert plan[2] == len(plan) - 3 == sum(len(sg.tensors) for sg in tm.subgraphs)
    entries, base = plan[3:], 0
    shared = 0
    for sg in tm.subgraphs:
        for i, t in enumerate(sg.tensors):
            allocated = t.data is None and not t.is_variable and t.nbytes > 0
            if allocated:
                assert entries[base + i] == entries[i], (sg.name, i)
                assert entries[i] % 16 == 0 or entries[i] == -1
                shared += entries[i] >= 0
        base += len(sg.tensors)
    for op in tm.main.operators:
        if op.opcode == "WHILE":
            cond_base = sum(len(sg.tensors) for sg in tm.subgraphs[:op.options.condSubgraphIndex])
            body_base = sum(len(sg.tensors) for sg in tm.subgraphs[:op.options.bodySubgraphIndex])
            cond = tm.subgraphs[op.options.condSubgraphIndex]
            body = tm.subgraphs[op.options.bodySubgraphIndex]
            for k, t in enumerate(op.inputs):
                if len(tm.main.tensors[t].shape) == 3 and tm.main.tensors[t].shape[1] == T:  # a sequence
                    offs = {entries[t], entries[op.outputs[k]],  # the WHILE writes it in place
                            entries[cond_base + cond.inputs[k]], entries[body_base + body.inputs[k]]}
                    assert len(offs) == 1 and offs.pop() >= 0
    assert shared >= 3


def _issue_model(kind: str, t_steps: int):
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    body = {"bilstm32": [L.Bidirectional(L.LSTM(32))],
            "gru32x4": [L.GRU(32, return_sequences=True) for _ in range(3)] + [L.GRU(32)],
            "gru32": [L.GRU(32)],
            "gru32x2_seq": [L.GRU(32, return_sequences=True), L.GRU(32, return_sequences=True)]}[kind]
    model = keras.Sequential([keras.Input((t_steps, 1))] + body + [L.Dense(3, activation="softmax")])
    # Biases as a trained model has them: Keras initialises GRU biases to zero, and the
    # flatbuffer writer stores identical (all-zero) bias buffers once, which would hide ~2 KB.
    rng = np.random.default_rng(0)
    for v in model.weights:
        if "bias" in v.path:
            v.assign((rng.standard_normal(v.shape) * 0.1).astype(np.float32))
    return model


def _int8_weight_bytes(tm) -> int:
    return sum(t.data.nbytes for sg in tm.subgraphs for t in sg.tensors
               if t.data is not None and t.dtype == "int8" and len(t.shape) == 2)


@pytest.mark.parametrize("kind,overhead_max", [("bilstm32", 11_800), ("gru32x4", 16_100), ("gru32", 7_300)])
def test_issue_models_flatbuffer_overhead_is_bounded(kind, overhead_max):
    """Flatbuffer bytes over the int8 weights at T=150, bounded per model (before issue 15: ~17 KB
    and ~34 KB over for the first two). Issue 15's "int8 weights + 16 KiB" holds for both: the
    Bidirectional LSTM(32) is 11.7 KB over, 4 x GRU(32) 16,000 B (18,544 before the GRU's input
    side became two FCs sharing the recurrent side's zero-point vectors (-576), the
    ``"edgernn"`` JSON was zlib-compressed (-720) and the stacked layers' two sides shared one
    per-channel scale table per gate block (cells' SHARED_SCALES, -1,248)); 4 KB of it are the
    16x8 FULLY_CONNECTEDs' int64 biases. (That the size does not grow with T is test_cells'
    test_flatbuffer_size_does_not_grow_with_t.)"""
    from test_cells import _synthetic

    data = convert_ir(from_keras(_issue_model(kind, 150)), _synthetic(150))
    over = len(data) - _int8_weight_bytes(tflite_model.parse(data))
    assert over <= overhead_max, (kind, over)
    assert over <= 16 * 1024


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gru32x2_seq", "bilstm32"])
def test_arena_grows_with_t_only_by_the_sequences_themselves(kind):
    """The exact TFLM arena grows from T=25 to T=150 by at most the growth of the main graph's
    own sequence tensors (input, loop output sequences, per-step head tensors), each counted
    once: TFLM's WHILE copies of the sequences into the cond and body graphs are aliased away
    (they would add 2-3 more copies of each).

    The arena is TFLM's allocator replayed (backends/tflm/allocator.py, offline plan included),
    checked against the head and tail tflite_micro.runtime records for the same model (one
    AllocateTensors, not a bisection of child processes: seconds instead of minutes)."""
    from edgernn.backends.tflm.allocator import replay
    from edgernn.backends.tflm.arena import recorded_head_tail
    from test_cells import _synthetic

    arena, seqs = [], []
    for t_steps in (25, 150):
        data = convert_ir(from_keras(_issue_model(kind, t_steps)), _synthetic(t_steps, 8))
        tm = tflite_model.parse(data)
        aliased = {t for op in tm.main.operators if op.opcode == "WHILE" for t in op.outputs}  # = their inputs
        seqs.append(sum(t.nbytes for i, t in enumerate(tm.main.tensors)
                        if len(t.shape) == 3 and t.shape[1] == t_steps and i not in aliased and t.data is None))
        host = replay(tm, "x86-64")
        assert host.exact and (host.head, host.tail) == recorded_head_tail(data), (t_steps, host)
        arena.append(host.minimum)
    assert arena[1] - arena[0] <= seqs[1] - seqs[0] + 64, (arena, seqs)


def test_sub_ratios_are_exact_in_float32(bm):
    """Every SUB's Prepare ratios are the same in float32 and double (TFLM versions differ)."""
    xtr, _ = bm
    for state in ("int16", "int8"):
        tm = tflite_model.parse(convert_ir(from_keras(keras3_model("gru_x2", timesteps=T)), xtr, state=state))
        subs = [(sg, op) for sg in tm.subgraphs for op in sg.operators if op.opcode == "SUB"]
        assert subs
        for sg, op in subs:
            s1, s2, so = (np.float32(sg.tensors[i].scale[0]) for i in (*op.inputs[:2], op.outputs[0]))
            ls = 15 if state == "int16" else 20
            tw32 = np.float32(2) * max(s1, s2)
            tw = 2 * max(float(s1), float(s2))
            assert float(s1 / tw32) == float(s1) / tw and float(s2 / tw32) == float(s2) / tw
            assert float(tw32 / (np.float32(1 << ls) * so)) == tw / ((1 << ls) * float(so))


def test_metadata_state_and_int16_types(bm):
    from test_cells import _metadata

    xtr, _ = bm
    data = convert_ir(from_keras(keras3_model("gru_x2", timesteps=T)), xtr)
    meta = _metadata(data)
    tm = tflite_model.parse(data)
    assert meta["state"] == "int16" and len({l["while_op"] for l in meta["layers"]}) == 1  # one loop
    body = tm.subgraphs[meta["layers"][0]["subgraph"]]
    ops = [op.opcode for op in body.operators]
    assert {"CAST", "SPLIT"} <= set(ops) and "SPLIT_V" not in ops
    # the second layer reads the first one's int16 h: one CAST (x_t), no QUANTIZE in the loop
    assert ops.count("CAST") == 1 and "QUANTIZE" not in ops
    fcs = [op for op in body.operators if op.opcode == "FULLY_CONNECTED"]
    assert len(fcs) == 2 * 4  # per layer: x side (z r) and (h), h side (z r) and (h)
    for layer in meta["layers"]:  # the x side's two FCs: one output scale, as one FC + SPLIT_V
        xzr, xh = (next(op for op in fcs if op.inputs[1] == w) for w in layer["tensors"]["kernel"])
        assert body.tensors[xzr.outputs[0]].scale == body.tensors[xh.outputs[0]].scale
    assert all(body.tensors[op.inputs[0]].dtype == "int16" and body.tensors[op.outputs[0]].dtype == "int16"
               for op in fcs)
    # SHARED_SCALES: the second layer (reading the first one's Q15 h) gives each recurrent
    # matrix its input-side twin's per-channel scales; the first layer (CAST x) its own
    for k, layer in enumerate(meta["layers"]):
        scales = [[body.tensors[w].scale for w in layer["tensors"][side]] for side in ("kernel", "recurrent_kernel")]
        same = [np.array_equal(a, b) for a, b in zip(*scales)]
        assert same == ([False, False] if k == 0 else [True, True]), (k, same)
    assert json.dumps(meta)  # plain JSON (zlib-compressed in the file)
    raw = tm.metadata["edgernn"]
    assert raw[:1] != b"{" and len(raw) < len(json.dumps(meta)) / 2


def test_int16_lstm_cell_state_grid(bm):
    """int16 LSTM step: f * c is on c's grid (one range over both: calibrated alone, f * c's
    range ended inside c's and clipped it while c still fit), i * g on Q15 (|i * g| < 1), and
    c's range is CELL_HEADROOM (2) times the calibrated max |c| (BasicMotions' test recordings
    carry c past the training set's range)."""
    from edgernn.backends.tflm.recurrent import build_sequence_program
    from edgernn.quantize.calibrate import Ranges, run_float
    from edgernn.quantize.params import CELL_HEADROOM, symmetric_int16_params

    xtr, _ = bm
    m = from_keras(keras3_model("bi_lstm", timesteps=T))
    data = convert_ir(m, xtr)
    tm = tflite_model.parse(data)
    prog = build_sequence_program(m, T)
    ranges = Ranges()
    run_float(prog, {"input": np.asarray(xtr, np.float32)}, ranges)
    for info in _metadata_of(data)["layers"]:
        body = tm.subgraphs[info["subgraph"]]
        c, c_out = info["tensors"]["cell_state"], info["tensors"]["cell_state_out"]
        add = next(op for op in body.operators if op.opcode == "ADD" and op.outputs[0] == c_out)
        fc_ = next(i for i in add.inputs if any(op.opcode == "MUL" and op.outputs[0] == i and c in op.inputs
                                                for op in body.operators))
        ig = next(i for i in add.inputs if i != fc_)
        scale = body.tensors[c_out].scale[0]
        assert body.tensors[fc_].scale[0] == scale == body.tensors[c].scale[0]
        assert body.tensors[ig].scale[0] == 2.0 ** -15
        p = "L0f/" if info["direction"] == "forward" else "L0b/"
        seen = [ranges[n] for n in (f"{p}c_new", f"{p}c", f"{p}f_c")]
        lo, hi = min(r[0] for r in seen), max(r[1] for r in seen)
        assert scale == symmetric_int16_params(CELL_HEADROOM * lo, CELL_HEADROOM * hi).scale[0]


def _fused_same_model(model, x: np.ndarray):
    """The fused route on the *same* Bidirectional LSTM: one LSTM(2U) whose kernels are
    block-diagonal (forward units read x_t, backward units x_(T-1-t), each only its own h),
    followed by the model's own head. It computes exactly the Bidirectional model's function on
    ``[x, x reversed in time]`` and ``edgernn.convert`` makes it one fused int8 LSTM model
    (UNIDIRECTIONAL_SEQUENCE_LSTM, int8 head). Returns (that Keras model, its input for x)."""
    import keras

    bi = next(l for l in model.layers if isinstance(l, keras.layers.Bidirectional))
    (kf, rf, bf), (kb, rb, bb) = bi.forward_layer.get_weights(), bi.backward_layer.get_weights()
    f, u = kf.shape[0], rf.shape[0]
    k, r, b = np.zeros((2 * f, 8 * u), np.float32), np.zeros((2 * u, 8 * u), np.float32), np.zeros(8 * u, np.float32)
    for g in range(4):  # Keras' gate blocks i f c o, each [forward units | backward units]
        fw, bw = slice(2 * g * u, (2 * g + 1) * u), slice((2 * g + 1) * u, (2 * g + 2) * u)
        gate = slice(g * u, (g + 1) * u)
        k[:f, fw], k[f:, bw] = kf[:, gate], kb[:, gate]
        r[:u, fw], r[u:, bw] = rf[:, gate], rb[:, gate]
        b[fw], b[bw] = bf[gate], bb[gate]
    head = model.layers[model.layers.index(bi) + 1:]
    assert bi.merge_mode == "concat" and all(isinstance(l, keras.layers.Dense) for l in head)
    fused = keras.Sequential([keras.Input((x.shape[1], 2 * f)), keras.layers.LSTM(2 * u)]
                             + [keras.layers.Dense(l.units, activation=l.activation) for l in head])
    fused.layers[0].set_weights([k, r, b])
    for mine, theirs in zip(fused.layers[1:], head):
        mine.set_weights(theirs.get_weights())
    return fused, np.ascontiguousarray(np.concatenate([x, x[:, ::-1]], axis=2))


@pytest.mark.slow
@pytest.mark.parametrize("spec", [Spec(cell="gru"), Spec(units=16, bidirectional=True)], ids=["gru32", "bilstm16"])
def test_int16_state_error_at_most_the_fused_lstm_s(zoo, spec):
    """BasicMotions, T=100: the p99 over test recordings of the largest output-probability error
    (int8 model vs its float model) of an int16-state WHILE graph against the fused LSTM's of
    the same size: LSTM(32) for GRU(32) (at most); for the Bidirectional LSTM(16), the fused
    route on the same model (_fused_same_model: same float function, same int8 input).

    Bidirectional LSTM(16): there the int8 input's rounding (scale 0.104, shared by every
    route) alone moves one near-boundary recording's output by 0.61 (p99 0.384 of 40: the float
    model on the rounded input). The int16-state graph's head reads the int16 h (FULLY_CONNECTED
    16x8, int16 logits, QUANTIZE, int8 SOFTMAX); the fused route's rounds h to 1/128 first. Beyond
    the input's rounding (against the float model on the int8 input) the int16 graph is strictly
    closer on all 4 training seeds measured, p99 int16 / fused: 0.0050 / 0.0090, 0.0051 / 0.0071,
    0.0047 / 0.0134, 0.0051 / 0.0058 (with the int8 head before: 0.0068, 0.0077, 0.0041, 0.0032).
    The totals against float: 0.3851 / 0.3796, 0.0074 / 0.0091, 0.6578 / 0.6517, 0.0088 / 0.0080
    (int8 head: 0.3851, 0.0103, 0.6593, 0.0073): where the input's rounding dominates, which side
    of it each route's own rounding lands on decides (an exact softmax of the int16 logits,
    rounded to 1/256, still gives 0.3812 and 0.6578 on seeds 0 and 2), so the totals are compared
    within 2 LSB of the int8 output (measured at most 1.6), the rest strictly. (The
    2-layer LSTM(16) once used here is another model: 0.255 on its own near-boundary recording.)"""
    import keras

    import edgernn

    train, test = zoo.data("basic_motions")
    x, _ = load_npz(test)
    model = keras.saving.load_model(zoo.keras(spec), compile=False)
    yf = np.asarray(model.predict(x, verbose=0))
    runner = TFLMRunner(zoo.tflite(spec).read_bytes(), arena_size=400_000)
    xq = runner.quantize_input(x)
    y16 = runner.dequantize_output(runner.run(xq)).reshape(yf.shape)

    def p99(y, ref) -> float:
        return float(np.percentile(np.abs(y.reshape(ref.shape) - ref).max(axis=1), 99))

    if not spec.bidirectional:
        fused = Spec(units=spec.units)
        ref = keras.saving.load_model(zoo.keras(fused), compile=False)
        r = TFLMRunner(zoo.tflite(fused).read_bytes(), arena_size=400_000)
        y8 = r.dequantize_output(r.run(r.quantize_input(x)))
        assert p99(y16, yf) <= p99(y8, np.asarray(ref.predict(x, verbose=0))), spec.key
        return
    fused, x2 = _fused_same_model(model, x)
    np.testing.assert_allclose(np.asarray(fused.predict(x2, verbose=0)), yf, atol=1e-5)  # the same function
    r = TFLMRunner(edgernn.convert(fused, calib=_fused_same_model(model, load_npz(train)[0])[1]).tflite,
                   arena_size=400_000)
    assert r.input_quant == pytest.approx(runner.input_quant, rel=1e-6)  # the same int8 input (to 1 ulp)
    yfu = r.dequantize_output(r.run(r.quantize_input(x2)))
    s, zp = runner.input_quant
    y_in = np.asarray(model.predict(((xq.astype(np.float32) - zp) * s).reshape(x.shape), verbose=0))
    assert p99(y16, yf) <= p99(yfu, yf) + 2 / 256, (p99(y16, yf), p99(yfu, yf))
    assert p99(y16, y_in) <= p99(yfu, y_in), (p99(y16, y_in), p99(yfu, y_in))
