"""Hybrid models (conv front-ends, pooling, reshapes, BatchNorm) through the frontend and convert.

Small random-weight models: the IR must hold the Keras weights (BatchNorm folded where exact),
both conversion routes must give flatbuffers that run in TFLM close to the Keras float model,
and the streaming forms must equal the whole-sequence models bit for bit.
"""

import numpy as np
import pytest

import edgernn
from edgernn import ir, tflite_model
from edgernn.backends.tflm.keras_build import build_tf_keras
from edgernn.backends.tflm.runtime import TFLMRunner
from edgernn.backends.tflm.streaming import lstm_one_step, run_streaming
from edgernn.errors import EdgeRNNError

T, F = 24, 6
ARENA = 1 << 20  # no arena bisection: these tests compare outputs


def _bn_random(model, seed=0):
    """Give every BatchNormalization non-trivial statistics (a fresh one is the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            c = layer.get_weights()[0].size
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c),
                               rng.uniform(0.3, 3, c)])
    return model


def _x(n=120, seed=1, t=T):
    return np.random.default_rng(seed).normal(size=(n, t, F)).astype(np.float32)


def _build(K, body, name="hybrid", t=T):
    K.utils.set_random_seed(0)
    inp = K.Input((t, F))
    return _bn_random(K.Model(inp, body(K.layers, inp), name=name))


def deep_conv(L, inp, rnn="LSTM"):
    h = L.Conv1D(8, 5, activation="relu", name="c1")(inp)
    h = L.BatchNormalization(name="bn1")(h)  # after a relu: nothing to fold into but the causal conv's padding
    h = L.Conv1D(8, 3, padding="causal", dilation_rate=2, name="c2")(h)
    h = L.BatchNormalization(name="bn2")(h)  # folds into c2
    h = L.ReLU(name="relu2")(h)  # fused into c2
    h = L.MaxPooling1D(2, name="mp")(h)
    h = L.SeparableConv1D(6, 3, padding="same", activation="tanh", name="sep")(h)
    h = L.AveragePooling1D(3, strides=1, padding="same", name="ap")(h)
    h = L.SpatialDropout1D(0.1)(h)
    h = getattr(L, rnn)(12, return_sequences=True, name="rnn")(h)
    h = L.GlobalAveragePooling1D(name="gap")(h)
    return L.Dense(4, activation="softmax", name="head")(h)


def crnn(L, inp, rnn="GRU"):
    h = L.Reshape((T, F, 1), name="to_image")(inp)
    h = L.Conv2D(4, (3, 3), padding="same", activation="relu", name="c2d")(h)
    h = L.MaxPooling2D((1, 2), name="mp2")(h)
    h = L.Reshape((T, 12), name="to_seq")(h)
    h = getattr(L, rnn)(10, return_sequences=True, name="rnn")(h)
    h = L.Flatten(name="flat")(h)
    return L.Dense(4, activation="softmax", name="head")(h)


def cnn_bigru(L, inp):
    h = L.Permute((2, 1), name="p1")(inp)
    h = L.Permute((2, 1), name="p2")(h)
    h = L.Conv1D(8, 3, strides=2, padding="same", name="c")(h)
    h = L.BatchNormalization(name="bn")(h)
    h = L.DepthwiseConv1D(3, depth_multiplier=2, activation="relu", name="dw")(h)
    h = L.TimeDistributed(L.Dense(8), name="td")(h)
    h = L.Bidirectional(L.GRU(8, return_sequences=True), name="bi")(h)
    h = L.GlobalMaxPooling1D(name="gmp")(h)
    return L.Dense(4, activation="softmax", name="head")(h)


def test_keras_layers_to_ir_shapes_and_weights():
    import keras

    k = _build(keras, deep_conv)
    m = edgernn.load_model(k)
    assert [(l.name, l.kind) for l in m.layers] == [
        ("c1", "conv1d"), ("bn1", "batchnorm"), ("c2", "conv1d"), ("mp", "pool"),
        ("sep_depthwise", "depthwise_conv1d"), ("sep", "conv1d"), ("ap", "pool"), ("rnn", "recurrent"),
        ("gap", "global_pool"), ("head", "dense")]
    assert m.folded_batchnorm == {"bn2": "c2"}
    assert m.layers[2].activation == "relu" and m.layers[2].padding == "causal" and m.layers[2].history == 4
    assert [o for _, o in m.shapes()] == [(20, 8), (20, 8), (20, 8), (10, 8), (10, 8), (10, 6), (10, 6), (10, 12),
                                          (12,), (4,)]
    np.testing.assert_array_equal(m.layers[0].kernel, k.get_layer("c1").get_weights()[0])
    dw, pw, b = k.get_layer("sep").get_weights()
    np.testing.assert_array_equal(m.layers[4].kernel, dw)
    np.testing.assert_array_equal(m.layers[5].kernel, pw)
    assert not m.per_step_output and m.output_units == 4 and m.output_activation == "softmax"
    # MACs: each conv output step reads k x C_in x C_out weights
    assert m.layers[0].macs((T, F)) == 20 * 5 * 6 * 8
    assert m.macs() == sum(l.macs(i) for l, (i, _) in zip(m.layers, m.shapes()))


@pytest.mark.parametrize("body", [deep_conv, crnn, cnn_bigru])
@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_rebuilt_float_model_equals_keras(body, flavour):
    """The IR (BatchNorm folded, TimeDistributed a plain Dense) computes what the Keras model does."""
    K = __import__(flavour)
    k = _build(K, body)
    m = edgernn.load_model(k)
    x = _x(16)
    want = np.asarray(k(x, training=False))
    got = np.asarray(build_tf_keras(m, batch_size=None)(x))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_batchnorm_folding_exact_both_ways():
    import keras

    def body(L, inp):
        h = L.BatchNormalization(name="bn_in")(inp)  # -> forward into the valid conv
        h = L.Conv1D(6, 3, name="c")(h)
        h = L.BatchNormalization(name="bn_c")(h)  # -> back into c
        h = L.DepthwiseConv1D(3, depth_multiplier=2, padding="same", name="dw")(h)
        h = L.BatchNormalization(name="bn_dw")(h)  # -> back into the depthwise conv
        h = L.Activation("relu", name="act")(h)
        h = L.BatchNormalization(name="bn_lstm")(h)  # after a relu -> forward into the LSTM kernel
        h = L.LSTM(5, name="lstm")(h)
        h = L.BatchNormalization(name="bn_d")(h)  # -> forward into the Dense
        return L.Dense(3, name="d")(h)

    k = _build(keras, body)
    m = edgernn.load_model(k)
    assert m.folded_batchnorm == {"bn_in": "c", "bn_c": "c", "bn_dw": "dw", "bn_lstm": "lstm", "bn_d": "d"}
    assert [l.kind for l in m.layers] == ["conv1d", "depthwise_conv1d", "recurrent", "dense"]
    assert m.layers[1].activation == "relu"
    x = _x(16)
    np.testing.assert_allclose(np.asarray(build_tf_keras(m, batch_size=None)(x)), np.asarray(k(x)),
                               rtol=1e-4, atol=2e-5)


def test_unfoldable_batchnorm_becomes_mul_add(tmp_path):
    import keras

    def body(L, inp):
        h = L.Conv1D(6, 3, padding="causal", activation="relu", name="c1")(inp)
        h = L.BatchNormalization(name="bn")(h)
        h = L.Conv1D(6, 3, padding="causal", name="c2")(h)
        h = L.GRU(8, name="gru")(h)
        return L.Dense(3, activation="softmax", name="d")(h)

    k = _build(keras, body)
    m = edgernn.load_model(k)
    assert [l.kind for l in m.layers][:3] == ["conv1d", "batchnorm", "conv1d"] and not m.folded_batchnorm
    x = _x()
    res = edgernn.convert(k, x[:100], tmp_path / "bn.tflite")
    ops = tflite_model.parse(res.tflite).op_counts
    assert ops["PAD"] == 2 and ops["CONV_2D"] == 2 and ops["WHILE"] == 1
    runner = TFLMRunner(res.tflite, arena_size=ARENA)
    got = runner.dequantize_output(runner.run(runner.quantize_input(x[100:])))
    assert np.abs(got - np.asarray(k(x[100:]))).max() < 0.03


@pytest.mark.parametrize("make,err", [
    (lambda L: L.Conv1D(4, 3, groups=2, name="grouped"), "'grouped' \\(Conv1D\\): groups=2"),
    (lambda L: L.Conv1DTranspose(4, 3, name="convt"), "'convt' \\(Conv1DTranspose\\) is not supported"),
    (lambda L: L.BatchNormalization(axis=1, name="bn_time"), "'bn_time'.*axis"),
    (lambda L: L.GlobalAveragePooling1D(keepdims=True, name="gk"), "'gk'.*keepdims"),
])
def test_unsupported_hybrid_layers_refused_in_one_line(make, err):
    import keras

    inp = keras.Input((T, F))
    h = make(keras.layers)(inp)
    h = keras.layers.LSTM(4)(h)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    with pytest.raises(EdgeRNNError, match=err) as e:
        edgernn.load_model(model)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("body,rnn,route", [(deep_conv, "GRU", "while-graph"), (crnn, "GRU", "while-graph"),
                                            (cnn_bigru, None, "while-graph"), (deep_conv, "LSTM", "fused-lstm")])
def test_hybrids_convert_and_run_in_tflm(body, rnn, route, tmp_path):
    import keras

    from edgernn.backends.tflm.convert import conversion_strategy
    from edgernn.backends.tflm.recurrent import build_sequence_program
    from edgernn.quantize.calibrate import run_float

    k = _build(keras, (lambda L, i: body(L, i, rnn)) if rnn else body)
    m = edgernn.load_model(k)
    assert conversion_strategy(m) == route
    x = _x(220)
    want = np.asarray(k(x[120:]))
    if route == "while-graph":  # the float run that calibrates the graph is the Keras model
        prog = build_sequence_program(m, T)
        env = run_float(prog, {"input": x[120:]})
        np.testing.assert_allclose(env[prog.graphs[0].outputs[0]].reshape(want.shape), want, atol=1e-5)
    res = edgernn.convert(k, x[:120], tmp_path / "m.tflite")
    ops = tflite_model.parse(res.tflite).op_counts
    assert ("UNIDIRECTIONAL_SEQUENCE_LSTM" in ops) == (route == "fused-lstm")
    assert "CONV_2D" in ops and ("WHILE" in ops) == (route == "while-graph")
    runner = TFLMRunner(res.tflite, arena_size=ARENA)
    xq = runner.quantize_input(x[120:])
    out = runner.run(xq)
    got = runner.dequantize_output(out).reshape(want.shape)
    assert np.abs(got - want).max() < 0.05
    assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.9  # random weights: near-ties exist
    _engines_equal_tflm(res.tflite, xq, out, tmp_path, streams=False)


def _engines_equal_tflm(tflite, xq, want, tmp_path, streams):
    """edgernn's engines on what convert wrote: both simulator engines and the native C equal
    TFLM bit for bit; a causal model also streams in C (``NAME_step`` over T == TFLM)."""
    from edgernn.simulate import Simulator
    from oneop import native_build

    for engine in ("numpy", "numba"):
        assert np.array_equal(Simulator.from_bytes(tflite, engine=engine).run(xq).reshape(want.shape), want)
    nb = native_build(tflite, tmp_path / "c")
    assert np.array_equal(nb.run(xq).reshape(want.shape), want)
    assert nb.plan.graph.streaming == streams
    if streams:
        steps = nb.steps(xq)
        assert np.array_equal((steps[:, -1] if nb.plan.last_step_only else steps).reshape(want.shape), want)


def _causal(L, inp, rnn):
    h = L.Conv1D(8, 3, padding="causal", activation="relu", name="c1")(inp)
    h = L.BatchNormalization(name="bn1")(h)  # stays MUL + ADD (the next conv pads)
    h = L.Conv1D(8, 3, padding="causal", dilation_rate=2, name="c2")(h)
    h = L.DepthwiseConv1D(1, depth_multiplier=2, name="pointwise")(h)
    h = L.Reshape((T, 4, 4), name="to_image")(h)
    h = L.Conv2D(2, (1, 3), padding="same", name="freq_conv")(h)
    h = L.Reshape((T, 8), name="to_seq")(h)
    h = getattr(L, rnn)(12, return_sequences=True, name="rnn")(h)
    return L.Dense(4, name="per_step")(h)


@pytest.mark.parametrize("cell,merge", [("GRU", "concat"), ("GRU", "sum"), ("LSTM", "concat")])
def test_int16_state_head_after_a_conv_front_end(cell, merge, tmp_path):
    """A Bidirectional layer's last step under a conv front-end: with the int16 state (the
    default) the merge (int16 CONCATENATION or ADD) and the 16x8 Dense head run in the native
    C's tensor-op program too, bit for bit with TFLM."""
    import keras

    def body(L, inp):
        h = L.Conv1D(8, 3, padding="same", activation="relu", name="c")(inp)
        h = L.Bidirectional(getattr(L, cell)(8), merge_mode=merge, name="bi")(h)
        return L.Dense(4, activation="softmax", name="head")(h)

    k = _build(keras, body)
    x = _x(140)
    res = edgernn.convert(k, x[:100], tmp_path / "m.tflite")
    m = tflite_model.parse(res.tflite)
    int16_ops = {op.opcode for sg in m.subgraphs[:1] for op in sg.operators
                 if sg.tensors[op.outputs[0]].dtype == "int16"}
    assert {"FULLY_CONNECTED", "CONCATENATION" if merge == "concat" else "ADD"} <= int16_ops
    runner = TFLMRunner(res.tflite, arena_size=ARENA)
    xq = runner.quantize_input(x[100:])
    out = runner.run(xq)
    assert np.abs(runner.dequantize_output(out) - np.asarray(k(x[100:]))).max() < 0.05
    _engines_equal_tflm(res.tflite, xq, out, tmp_path, streams=False)


@pytest.mark.parametrize("rnn", ["LSTM", "GRU"])
def test_causal_conv_streaming_equals_sequence_bit_for_bit(rnn, tmp_path):
    import keras

    k = _build(keras, lambda L, i: _causal(L, i, rnn))
    x = _x(125)
    seq = edgernn.convert(k, x[:100])
    if rnn == "LSTM":  # what convert(streaming=True) does with the converter's flatbuffer (one conversion less)
        one = lstm_one_step(seq.tflite, seq.model)
    else:
        one = edgernn.convert(k, x[:100], streaming=True).tflite
    ops = tflite_model.parse(one).op_counts
    assert ops["CONCATENATION"] == 2 and ops["SLICE"] == 2 and "PAD" not in ops  # two ring buffers
    runner = TFLMRunner(seq.tflite, arena_size=ARENA)
    xq = runner.quantize_input(x[100:])
    want = runner.run(xq)
    got = run_streaming(TFLMRunner(one, arena_size=ARENA).interpreter, xq)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    _engines_equal_tflm(seq.tflite, xq, want, tmp_path, streams=True)


@pytest.mark.parametrize("make,why", [
    (lambda L: L.Conv1D(4, 3, padding="same", name="l"), "padding 'same': each output reads 1 future steps"),
    (lambda L: L.Conv1D(4, 3, name="l"), "padding 'valid'"),
    (lambda L: L.Conv1D(4, 3, strides=2, padding="causal", name="l"), "stride 2: it emits one output every 2"),
    (lambda L: L.MaxPooling1D(2, name="l"), "pools over 2 time steps with stride 2"),
    (lambda L: L.Permute((2, 1), name="l"), "moves the time axis"),
])
def test_streaming_refusals_say_why(make, why):
    import keras

    inp = keras.Input((T, F))
    h = make(keras.layers)(inp)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GRU(4)(h)))
    with pytest.raises(EdgeRNNError, match=f"layer 'l' .*{why}.*cannot stream; convert without --streaming") as e:
        edgernn.convert(model, _x(8), streaming=True)
    assert "\n" not in str(e.value)


def test_streaming_refuses_whole_window_heads():
    import keras

    inp = keras.Input((T, F))
    h = keras.layers.LSTM(4, return_sequences=True)(inp)
    h = keras.layers.GlobalAveragePooling1D(name="gap")(h)
    with pytest.raises(EdgeRNNError, match="'gap' pools over the whole sequence"):
        edgernn.convert(keras.Model(inp, keras.layers.Dense(2)(h)), _x(8), streaming=True)


def test_ir_shape_errors_name_the_layer():
    with pytest.raises(EdgeRNNError, match="'r': cannot reshape"):
        ir.Reshape("r", (5, -1)).out_shape((24, 6))
    conv = ir.Conv1D("long", np.zeros((30, 6, 4)), np.zeros(4))
    with pytest.raises(EdgeRNNError, match="'long': a window of 30 steps does not fit in 24 steps"):
        conv.out_shape((24, 6))
    with pytest.raises(EdgeRNNError, match="'long'.*takes 6 channels, its input has 3"):
        conv.out_shape((40, 3))
    gru = ir.Recurrent("gru", "gru", 2, 6, np.zeros((6, 6)), np.zeros((2, 6)), np.zeros((2, 6)))
    with pytest.raises(EdgeRNNError, match="'gru' takes a sequence.*add a Reshape"):
        gru.out_shape((24, 6, 2))


def test_image_input_reads_as_steps_of_features(tmp_path):
    """A CRNN whose input is an image (T, F, C): the int8 model's input is (1, T, F*C), the same
    bytes; data may be given as (N, T, F, C) images."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((T, F, 1))
    h = L.Conv2D(3, (3, 3), padding="same", activation="relu", name="c2d")(inp)
    h = L.Reshape((T, F * 3), name="to_seq")(h)
    k = keras.Model(inp, L.Dense(2)(L.GRU(6, name="gru")(h)))
    m = edgernn.load_model(k)
    assert m.input.features == F and (m.layers[0].kind, m.layers[0].target_shape) == ("reshape", (T, F, 1))
    x = _x(60)[..., None]
    data = tmp_path / "images.npz"
    np.savez(data, x=x, y=np.zeros(len(x), np.int64))
    res = edgernn.convert(k, data)
    runner = TFLMRunner(res.tflite, arena_size=ARENA)
    assert tuple(runner.input_details["shape"]) == (1, T, F)
    got = runner.dequantize_output(runner.run(runner.quantize_input(x[:, :, :, 0])))
    assert np.abs(got.reshape(-1, 2) - np.asarray(k(x))).max() < 0.05
