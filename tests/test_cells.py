"""Every recurrent cell and topology: IR, float graph, int8 TFLM flatbuffer, size, metadata.

Fast tests use small Keras 3 models with seeded random weights run on real BasicMotions
inputs; the trained-model accuracy bars (``@pytest.mark.slow``) use the session ``zoo``.
"""

from __future__ import annotations


import numpy as np
import pytest

import edgernn
from edgernn import tflite_model
from edgernn.tflite_model import decode_edgernn_metadata
from edgernn.backends.tflm.convert import conversion_strategy, check_rebuild_matches, convert_ir
from edgernn.backends.tflm.graph import METADATA_NAME
from edgernn.backends.tflm.recurrent import build_sequence_program, metadata_doc
from edgernn.backends.tflm.runtime import TFLMRunner
from edgernn.errors import EdgeRNNError, UnsupportedLayerError
from edgernn.frontend import from_keras
from edgernn.quantize.calibrate import run_float

from conftest import Spec, load_npz

ARENA = 300_000


def _layers(kind: str):
    """Keras 3 layers for a topology id (units kept small)."""
    import keras

    L = keras.layers

    def cell(name, units=8, **kw):
        cls = {"gru": L.GRU, "rnn": L.SimpleRNN, "lstm": L.LSTM}[name]
        return cls(units, **kw)

    table = {
        "gru": lambda: [cell("gru")],
        "gru_reset_before": lambda: [cell("gru", reset_after=False)],
        "rnn_tanh": lambda: [cell("rnn")],
        "rnn_relu": lambda: [cell("rnn", activation="relu")],
        "lstm": lambda: [cell("lstm")],
        "gru_x2": lambda: [cell("gru", return_sequences=True), cell("gru")],
        "rnn_x3": lambda: [cell("rnn", return_sequences=True), cell("rnn", return_sequences=True), cell("rnn")],
        "gru_x4": lambda: [cell("gru", 6, return_sequences=True) for _ in range(3)] + [cell("gru", 6)],
        "mixed_lstm_gru": lambda: [cell("lstm", return_sequences=True), cell("gru")],
        "bi_gru_concat": lambda: [L.Bidirectional(cell("gru"))],
        "bi_gru_sum": lambda: [L.Bidirectional(cell("gru"), merge_mode="sum")],
        "bi_lstm": lambda: [L.Bidirectional(cell("lstm"))],
        "bi_rnn_relu_sum": lambda: [L.Bidirectional(cell("rnn", activation="relu"), merge_mode="sum")],
        "bi_gru_x2": lambda: [L.Bidirectional(cell("gru", return_sequences=True)), L.Bidirectional(cell("gru"))],
        "per_step_gru": lambda: [cell("gru", return_sequences=True)],
        "per_step_lstm": lambda: [cell("lstm", return_sequences=True)],
        "per_step_bi_gru": lambda: [L.Bidirectional(cell("gru", return_sequences=True))],
        "per_step_rnn_relu_dense": lambda: [cell("rnn", activation="relu", return_sequences=True),
                                            L.Dense(8, activation="relu")],
        "bi_gru_sum_seq_lstm": lambda: [L.Bidirectional(cell("gru", return_sequences=True), merge_mode="sum"),
                                        cell("lstm")],
        "gru_bi_rnn": lambda: [cell("gru", return_sequences=True), L.Bidirectional(cell("rnn"))],
        "gru32_x2": lambda: [cell("gru", 32, return_sequences=True), cell("gru", 32)],
        "bi_gru32": lambda: [L.Bidirectional(cell("gru", 32))],
    }
    return table[kind]()  # built lazily: only this topology's layers draw random weights


TOPOLOGIES = ["gru", "gru_reset_before", "rnn_tanh", "rnn_relu", "lstm", "gru_x2", "rnn_x3", "gru_x4",
              "mixed_lstm_gru", "bi_gru_concat", "bi_gru_sum", "bi_lstm", "bi_rnn_relu_sum", "bi_gru_x2",
              "per_step_gru", "per_step_lstm", "per_step_bi_gru", "per_step_rnn_relu_dense",
              "bi_gru_sum_seq_lstm", "gru_bi_rnn"]


def keras3_model(kind: str, timesteps: int = 100, features: int = 6, classes: int = 4, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((timesteps, features))] + _layers(kind)
                            + [keras.layers.Dense(classes, activation="softmax")], name=f"m_{kind}")


@pytest.fixture(scope="module")
def bm_arrays(bm_data):
    (xtr, ytr), (xte, yte) = load_npz(bm_data[0]), load_npz(bm_data[1])
    return xtr, ytr, xte, yte


@pytest.fixture(scope="session")
def topology_tflite(zoo, tmp_path_factory):
    """kind -> (Keras 3 model, path of its int8 flatbuffer calibrated on BasicMotions train):
    each topology is converted once per session and shared by every test here."""
    cache = {}
    root = tmp_path_factory.mktemp("topologies")

    def get(kind: str):
        if kind not in cache:
            xtr, _ = load_npz(zoo.data("basic_motions")[0])
            model = keras3_model(kind)
            path = root / f"{kind}.tflite"
            path.write_bytes(convert_ir(from_keras(model), xtr))
            cache[kind] = (model, path)
        return cache[kind]

    return get


@pytest.mark.parametrize("kind", TOPOLOGIES)
def test_ir_param_count_equals_keras(kind):
    model = keras3_model(kind, timesteps=12)
    assert from_keras(model).param_count == model.count_params()


@pytest.mark.parametrize("kind", TOPOLOGIES)
def test_float_graph_and_tf_keras_rebuild_equal_keras3(kind, bm_arrays):
    """The WHILE graph run in float, and the tf_keras rebuild, both equal the Keras 3 model."""
    x = bm_arrays[2][:6]
    model = keras3_model(kind)
    m = from_keras(model)
    want = np.asarray(model(x, training=False))
    got = run_float(build_sequence_program(m, x.shape[1]), {"input": x})
    out = got[build_sequence_program(m, x.shape[1]).graphs[0].outputs[0]]
    np.testing.assert_allclose(out.reshape(want.shape), want, atol=1e-5)
    assert check_rebuild_matches(model, m, x) <= 1e-5


def _slow_if_fused_lstm(kinds):
    """Fused-LSTM conversions run the TFLite converter in a child process (~10 s each)."""
    return [pytest.param(k, marks=pytest.mark.slow) if k == "per_step_lstm" else k for k in kinds]


@pytest.mark.parametrize("kind", _slow_if_fused_lstm(TOPOLOGIES))
def test_int8_runs_in_tflm_close_to_float(kind, bm_arrays, topology_tflite):
    """Each topology converts to one int8 model (1 input, 1 output, builtins only) that TFLM runs."""
    xte = bm_arrays[2]
    model, path = topology_tflite(kind)
    m = from_keras(model)
    data = path.read_bytes()
    tm = tflite_model.parse(data)
    assert len(tm.main.inputs) == 1 and len(tm.main.outputs) == 1
    assert tm.input().dtype == "int8" and tm.output().dtype == "int8"
    assert tm.input().shape == (1, 100, 6)
    assert not any(op.startswith("CUSTOM") for op in tm.op_counts)
    if conversion_strategy(m) == "while-graph":  # one loop per stack of layers, one per direction
        stacks = sum(1 for i, l in enumerate(m.layers) if l.kind == "recurrent"
                     and (i == 0 or m.layers[i - 1].kind != "recurrent"))
        assert tm.op_counts["WHILE"] == stacks + 2 * sum(l.kind == "bidirectional" for l in m.layers)
    runner = TFLMRunner(data, arena_size=ARENA)
    y8 = runner.dequantize_output(runner.run(runner.quantize_input(xte)))
    yf = np.asarray(model(xte, training=False))
    assert y8.shape == yf.shape
    err = np.abs(y8 - yf)  # softmax outputs, 1 LSB = 1/256; untrained (random) weights
    # untrained SimpleRNNs over 100 steps amplify rounding more than gated cells do
    assert err.mean() < (0.03 if "rnn" in kind else 0.01), kind
    assert err.max() < (0.2 if "rnn" in kind else 0.1), kind


@pytest.mark.parametrize("kind", _slow_if_fused_lstm(TOPOLOGIES))
def test_simulator_and_native_c_equal_tflm_bit_for_bit(kind, bm_arrays, topology_tflite, tmp_path):
    """Every topology at 0 LSB: both simulator engines and the compiled native C give TFLM's int8
    outputs on every BasicMotions test recording (one native build per model, all samples in one run)."""
    from edgernn.backends.native.host import NativeBuild
    from edgernn.simulate import Simulator

    _, path = topology_tflite(kind)
    runner = TFLMRunner(path.read_bytes(), arena_size=ARENA)
    xq = runner.quantize_input(bm_arrays[2])
    want = runner.run(xq)
    assert len(np.unique(want.reshape(len(want), -1), axis=0)) > 1, "constant outputs prove nothing"
    engines = {e: Simulator.from_file(path, engine=e).run(xq) for e in ("numpy", "numba")}
    engines["native"] = NativeBuild.create(path, tmp_path).run(xq).reshape(want.shape)
    for engine, got in engines.items():
        diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
        assert diff.max() == 0, f"{kind} {engine}: {int((diff > 0).sum())} of {diff.size} outputs differ, " \
                                f"max {diff.max()} LSB"


@pytest.mark.parametrize("kind", _slow_if_fused_lstm(TOPOLOGIES))
def test_arena_replay_equals_what_the_tflm_runtime_records(kind, topology_tflite):
    """TFLM's allocator replayed in the runtime's ABI gives, for every topology, the head and tail
    tflite_micro.runtime records after AllocateTensors (the check that makes the Cortex-M figures
    emitted firmware uses trustworthy)."""
    from edgernn.backends.tflm.allocator import replay
    from edgernn.backends.tflm.arena import recorded_head_tail

    _, path = topology_tflite(kind)
    m = tflite_model.read(path)
    host = replay(m, "x86-64")
    assert host.exact, host.unknown_ops
    assert (host.head, host.tail) == recorded_head_tail(m.raw)
    assert replay(m, "cortex-m").used < host.used  # 4-byte pointers, short enums


def test_native_whole_window_model_api(bm_arrays, topology_tflite, tmp_path):
    """A model with a Bidirectional layer returning sequences: NAME_run_f32 = quantize, NAME_run,
    dequantize; T beyond the sequence buffers' rows is refused; the buffers are in the RAM macro."""
    from edgernn.backends.native.host import NativeBuild

    _, path = topology_tflite("bi_gru_x2")
    build = NativeBuild.create(path, tmp_path)
    plan = build.plan
    assert plan.bidirectional and [len(s.layers) for s in plan.stages] == [2, 2]
    assert plan.sequence_buffers == [("$seq0", 100 * 16)]
    header = (tmp_path / "model.h").read_text()
    assert f"#define MODEL_SCRATCH_BYTES {plan.scratch_bytes}" in header and plan.scratch_bytes >= 1600
    runner = TFLMRunner(path.read_bytes(), arena_size=ARENA)
    x = bm_arrays[2][:5]
    y = build.run(runner.quantize_input(x))
    np.testing.assert_array_equal(build.run_f32(x), runner.dequantize_output(y))
    with pytest.raises(EdgeRNNError, match="status"):
        build.run(np.zeros((1, 101, 6), np.int8))
    assert np.array_equal(build.run(runner.quantize_input(x[:, :40])).shape, y.shape)


@pytest.mark.parametrize("kind", ["gru_reset_before", "bi_gru_concat", "per_step_rnn_relu_dense"])
def test_desktop_tflite_interpreter_runs_the_while_graphs(kind, bm_arrays, topology_tflite):
    """Desktop TF Lite (LiteRT's interpreter) allocates and invokes edgernn's WHILE graphs: one
    zero point per channel for per-channel weights, step FCs keeping the (1, 1, n) rank. Its
    kernels are not TFLM's (XNNPACK, other rounding), so it is close to TFLM, not equal."""
    import tensorflow as tf

    _, path = topology_tflite(kind)
    runner = TFLMRunner(path.read_bytes(), arena_size=ARENA)
    xq = runner.quantize_input(bm_arrays[2][:12])
    want = runner.run(xq)
    it = tf.lite.Interpreter(model_content=path.read_bytes())
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    got = []
    for sample in xq:
        it.set_tensor(i["index"], sample[None])
        it.invoke()
        got.append(it.get_tensor(o["index"])[0])
    diff = np.abs(np.stack(got).astype(np.int32) - want.astype(np.int32))
    # untrained SimpleRNNs amplify a rounding difference over 100 steps (as in the float test above)
    assert diff.max() <= (12 if "rnn" in kind else 3) and diff.mean() <= 0.5, (kind, diff.max(), diff.mean())


def _synthetic(t_steps: int, n: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tt = np.arange(t_steps)[None, :, None]
    f = rng.uniform(0.05, 0.3, (n, 1, 1))
    return (np.sin(f * tt) + 0.1 * rng.normal(size=(n, t_steps, 1))).astype(np.float32)


@pytest.mark.parametrize("kind", ["gru", "gru_reset_before", "rnn_tanh", "rnn_relu",
                                  pytest.param("lstm", marks=pytest.mark.slow), "per_step_gru", "bi_gru_concat",
                                  "gru32_x2", "bi_gru32"])
def test_flatbuffer_size_does_not_grow_with_t(kind):
    """At T=25 and T=150: flatbuffer bytes <= int8 weight bytes + their per-channel quantization
    (a float32 scale and an int64 zero point a channel) + 16 KB, and the same at both."""
    sizes = []
    for t_steps in (25, 150):
        model = keras3_model(kind, timesteps=t_steps, features=1, classes=3)
        data = convert_ir(from_keras(model), _synthetic(t_steps))
        tm = tflite_model.parse(data)
        channels = sum(len(t.scale) for sg in tm.subgraphs for t in sg.tensors
                       if t.data is not None and t.scale is not None and len(t.scale) > 1)
        budget = tm.weight_bytes + 12 * channels + 16 * 1024
        assert len(data) <= budget, (kind, t_steps, len(data), tm.weight_bytes, channels)
        sizes.append(len(data))
    assert abs(sizes[1] - sizes[0]) <= 64, sizes


def _metadata(data: bytes) -> dict:
    from tensorflow.lite.python import schema_py_generated as s

    m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    entry = next(md for md in m.metadata if md.name.decode() == METADATA_NAME)
    return decode_edgernn_metadata(bytes(bytearray(m.buffers[entry.buffer].data)))


def _keras_rows(layer, side: str, state: str) -> list[np.ndarray]:
    """The (out, in) float matrices the converter writes for one side of a layer."""
    w = layer.kernel if side == "kernel" else layer.recurrent_kernel
    u = layer.units
    blocks = [w[:, g * u:(g + 1) * u].T for g in range(w.shape[1] // u)]
    if state == "int8":
        return blocks
    if layer.cell == "lstm":  # i f c o -> i f o c
        blocks = [blocks[0], blocks[1], blocks[3], blocks[2]]
    if layer.cell == "gru":  # [z r] then [h], on both sides
        return [np.concatenate(blocks[:2]), blocks[2]]
    return [np.concatenate(blocks)]


@pytest.mark.parametrize("state", ["int16", "int8"])
@pytest.mark.parametrize("kind", ["gru", "gru_reset_before", "rnn_relu", "bi_gru_sum", "mixed_lstm_gru"])
def test_metadata_maps_graph_back_to_cells(kind, state, bm_arrays):
    model = keras3_model(kind, timesteps=20)
    m = from_keras(model)
    data = convert_ir(m, bm_arrays[0][:, :20], state=state)
    meta = _metadata(data)
    tm = tflite_model.parse(data)
    assert meta["version"] == 3 and meta["form"] == "sequence" and meta["timesteps"] == 20
    assert meta["state"] == state
    assert tm.main.inputs == [meta["input"]] and tm.main.outputs == [meta["output"]]
    dirs = []
    for l in m.recurrent_layers:
        dirs += [(l, "forward")] if l.kind == "recurrent" else [(l.forward, "forward"), (l.backward, "backward")]
    assert len(meta["layers"]) == len(dirs)
    for info, (layer, direction) in zip(meta["layers"], dirs):
        assert (info["cell"], info["units"], info["direction"]) == (layer.cell, layer.units, direction)
        sg = tm.subgraphs[info["subgraph"]]
        assert tm.main.operators[info["while_op"]].opcode == "WHILE"
        assert tm.main.operators[info["while_op"]].options.bodySubgraphIndex == info["subgraph"]
        u = layer.units
        for side in ("kernel", "recurrent_kernel"):
            mats = [sg.tensors[i] for i in info["tensors"][side]]
            want = _keras_rows(layer, side, state)
            assert [k.shape for k in mats] == [w.shape for w in want], side
            for k, w in zip(mats, want):  # int8 per-channel weights dequantize to the Keras kernel,
                # within half a step of each row's scale (its own, or shared with the input side's
                # rows: cells' SHARED_SCALES, never below the row's own max / 127)
                sc = k.scale.astype(np.float64)[:, None]
                assert np.all(sc * (1 + 1e-6) >= np.abs(w).max(axis=1, keepdims=True) / 127), side
                assert np.all(np.abs(k.data * sc - w) <= sc / 2 * (1 + 1e-5) + 1e-7), side
        st = sg.tensors[info["tensors"]["state"]]
        assert st.shape == (1, 1, u) and st.dtype == state
        assert st.scale == sg.tensors[info["tensors"]["state_out"]].scale
        if layer.cell == "gru":
            assert info["reset_after"] == layer.reset_after
    assert "reset_after" in metadata_doc()


def test_loop_carried_tensors_share_one_quantization(bm_arrays):
    data = convert_ir(from_keras(keras3_model("gru_x2", timesteps=20)), bm_arrays[0][:, :20])
    tm = tflite_model.parse(data)
    while_ops = [op for op in tm.main.operators if op.opcode == "WHILE"]
    for op in while_ops:
        cond = tm.subgraphs[op.options.condSubgraphIndex]
        body = tm.subgraphs[op.options.bodySubgraphIndex]
        for k, (i, o) in enumerate(zip(op.inputs, op.outputs)):
            views = [tm.main.tensors[i], tm.main.tensors[o], cond.tensors[cond.inputs[k]],
                     body.tensors[body.inputs[k]], body.tensors[body.outputs[k]]]
            if views[0].dtype != "int8":
                continue
            assert len({(float(v.scale[0]), int(v.zero_point[0])) for v in views}) == 1, k


@pytest.mark.parametrize("kind", ["gru_x2", "bi_lstm"])
def test_compact_flatbuffer_equals_the_object_api_one_in_tflm(kind, bm_arrays):
    """The compact writer (shared tables, no names, 16-byte aligned buffers) gives the same TFLM
    outputs as the same model written by the schema's object API, in fewer bytes."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as s

    xtr, _, xte, _ = bm_arrays
    data = convert_ir(from_keras(keras3_model(kind, timesteps=30)), xtr[:, :30])
    plain = flatbuffers.Builder(1024)
    plain.Finish(s.ModelT.InitFromPackedBuf(bytearray(data), 0).Pack(plain), file_identifier=b"TFL3")
    plain = bytes(plain.Output())
    assert len(data) < 0.8 * len(plain), (len(data), len(plain))
    a, b = TFLMRunner(data, arena_size=ARENA), TFLMRunner(plain, arena_size=ARENA)
    xq = a.quantize_input(xte[:6, :30])
    np.testing.assert_array_equal(a.run(xq), b.run(xq))
    root = s.Model.GetRootAsModel(bytearray(data), 0)
    assert all(not root.Subgraphs(i).Tensors(j).Name() for i in range(root.SubgraphsLength())
               for j in range(root.Subgraphs(i).TensorsLength()))
    for i in range(root.BuffersLength()):
        buf = root.Buffers(i)
        if buf.DataLength():
            tab = buf._tab
            assert tab.Vector(tab.Offset(4)) % 16 == 0, i  # where the data starts, from the file start


# --- errors -----------------------------------------------------------------------------------

def _keras(*layers, t=10, f=3):
    import keras

    return keras.Sequential([keras.Input((t, f)), *layers, keras.layers.Dense(2)])


def test_masking_refused_naming_the_layer():
    import keras

    m = _keras(keras.layers.Masking(name="pad_mask"), keras.layers.GRU(4))
    with pytest.raises(UnsupportedLayerError, match="layer 'pad_mask' \\(Masking\\) is not supported") as e:
        from_keras(m)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("layer,option", [
    (lambda L: L.GRU(4, activation="relu", name="bad"), "activation"),
    (lambda L: L.SimpleRNN(4, activation="sigmoid", name="bad"), "activation"),
    (lambda L: L.GRU(4, recurrent_activation="hard_sigmoid", name="bad"), "recurrent_activation"),
    (lambda L: L.Bidirectional(L.GRU(4), merge_mode="ave", name="bad"), "merge_mode"),
    (lambda L: L.GRU(4, go_backwards=True, name="bad"), "go_backwards"),
], ids=["gru-relu", "rnn-sigmoid", "hard-sigmoid", "merge-ave", "go-backwards"])
def test_unsupported_option_is_one_line_naming_layer(layer, option):
    import keras

    with pytest.raises(EdgeRNNError, match=f"layer 'bad'.*{option}") as e:
        from_keras(_keras(layer(keras.layers)))
    assert "\n" not in str(e.value)


# --- whole models through edgernn.convert -----------------------------------------------------

def test_tf_keras_h5_and_keras3_gru_both_convert(tmp_path, bm_data):
    """A tf_keras .h5 GRU (reset_after=False) and a Keras 3 .keras GRU go through `convert`."""
    import tf_keras

    tf_keras.utils.set_random_seed(1)
    h5 = tf_keras.Sequential([tf_keras.Input((100, 6)), tf_keras.layers.GRU(8, reset_after=False),
                              tf_keras.layers.Dense(4, activation="softmax")])
    h5.save(tmp_path / "gru.h5")
    k3 = keras3_model("gru")
    k3.save(tmp_path / "gru.keras")
    xte, _ = load_npz(bm_data[1])
    for path, ref in ((tmp_path / "gru.h5", h5), (tmp_path / "gru.keras", k3)):
        res = edgernn.convert(path, calib=bm_data[0], output=tmp_path / f"{path.stem}{path.suffix[1:]}.tflite")
        assert res.float_check_max_diff <= 1e-5 and res.path.exists()
        runner = TFLMRunner(res.path.read_bytes(), arena_size=ARENA)
        y8 = runner.dequantize_output(runner.run(runner.quantize_input(xte)))
        yf = np.asarray(ref(xte, training=False))
        assert np.max(np.abs(y8 - yf)) < 0.06


# --- trained models on real data (zoo) --------------------------------------------------------

TRAINED = [  # BasicMotions has 40 test recordings: one flipped answer costs 2.5 points
    pytest.param(Spec(cell="gru", units=16, epochs=30, dataset="digits"), 2, id="gru-digits"),
    pytest.param(Spec(cell="rnn"), 3, id="rnn-basic_motions"),
    pytest.param(Spec(cell="gru", layers=2), 2, id="gru-x2-basic_motions"),
    pytest.param(Spec(cell="gru", units=16, bidirectional=True), 2, id="bi-gru-basic_motions"),
    pytest.param(Spec(), 2, id="lstm-basic_motions"),  # the headline model, shared with other tests
]


@pytest.mark.slow
@pytest.mark.parametrize("spec,max_drop_points", TRAINED)
def test_trained_int8_agrees_with_float(zoo, spec, max_drop_points):
    """int8 in tflite_micro agrees with float on >= 97% of test samples, loses <= 2 points (3 for RNN)."""
    import keras

    path = zoo.tflite(spec)
    model = keras.saving.load_model(zoo.keras(spec), compile=False)
    xte, yte = load_npz(zoo.data(spec.dataset)[1])
    runner = TFLMRunner(path.read_bytes(), arena_size=ARENA)
    y8 = runner.dequantize_output(runner.run(runner.quantize_input(xte))).argmax(-1)
    yf = np.asarray(model.predict(xte, verbose=0)).argmax(-1)
    agreement = float(np.mean(y8 == yf))
    drop = 100 * (np.mean(yf == yte) - np.mean(y8 == yte))
    assert np.mean(yf == yte) > 2.0 / (int(yte.max()) + 1), spec.key  # a trained model, not chance
    assert agreement >= 0.97, (spec.key, agreement)
    assert drop <= max_drop_points, (spec.key, drop)
