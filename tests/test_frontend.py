"""Frontend: Keras 3 / tf_keras / SavedModel -> IR, weights equal, unsupported layers refused."""

import numpy as np
import pytest

import edgernn
from edgernn.errors import EdgeRNNError, UnsupportedLayerError


def _keras3_lstm():
    import keras
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((20, 3)), keras.layers.LSTM(8, return_sequences=True, name="l1"),
                             keras.layers.LSTM(6, name="l2"), keras.layers.Dropout(0.1),
                             keras.layers.Dense(4, activation="softmax", name="head")], name="k3")


def _tf_keras_lstm():
    import tf_keras
    tf_keras.utils.set_random_seed(1)
    return tf_keras.Sequential([tf_keras.Input((20, 3)), tf_keras.layers.LSTM(8, name="l1"),
                                tf_keras.layers.Dense(4, activation="softmax", name="head")], name="tfk")


def _assert_weights_equal(ir_model, keras_model):
    rec = [l for l in keras_model.layers if type(l).__name__ in ("LSTM", "GRU", "SimpleRNN", "Dense")]
    nodes = [l for l in ir_model.layers if l.kind in ("recurrent", "dense")]
    assert len(rec) == len(nodes)
    for k, node in zip(rec, nodes):
        want = k.get_weights()
        got = [node.kernel, node.recurrent_kernel, node.bias] if node.kind == "recurrent" else [node.kernel, node.bias]
        for w, g in zip(want, got):
            np.testing.assert_array_equal(w, g)


def test_keras3_archive_to_ir(tmp_path):
    k = _keras3_lstm()
    path = tmp_path / "m.keras"
    k.save(path)
    m = edgernn.load_model(path)
    assert [l.kind for l in m.layers] == ["recurrent", "recurrent", "dense"]  # Dropout vanishes
    assert m.input.timesteps == 20 and m.input.features == 3
    assert m.layers[0].return_sequences and not m.layers[1].return_sequences
    assert m.output_activation == "softmax"
    _assert_weights_equal(m, k)
    assert m.param_count == k.count_params()


@pytest.mark.parametrize("fmt", ["h5", "savedmodel", "keras"])
def test_tf_keras_formats_to_ir(tmp_path, fmt):
    k = _tf_keras_lstm()
    path = tmp_path / {"h5": "m.h5", "savedmodel": "sm", "keras": "m.keras"}[fmt]
    k.save(path) if fmt != "savedmodel" else k.save(str(path), save_format="tf")
    m = edgernn.load_model(path)
    _assert_weights_equal(m, k)
    assert m.param_count == k.count_params()


def test_macs_count_recurrent_work():
    m = edgernn.load_model(_keras3_lstm())
    # LSTM: (F + U) * 4U MACs per step over T steps; Dense once.
    expected = 20 * (3 + 8) * 32 + 20 * (8 + 6) * 24 + 6 * 4
    assert m.macs() == expected


@pytest.mark.parametrize("layer_name,make", [
    ("convt", lambda keras: keras.layers.Conv1DTranspose(4, 3, name="convt")),
    ("attn", None),
])
def test_unsupported_layer_is_named(layer_name, make):
    import keras
    inp = keras.Input((20, 3))
    if make is None:
        h = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="attn")(inp, inp)
    else:
        h = make(keras)(inp)
    h = keras.layers.LSTM(4)(h)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    with pytest.raises(EdgeRNNError) as e:
        edgernn.load_model(model)
    msg = str(e.value)
    assert layer_name in msg and "\n" not in msg
    assert "LSTM" in msg  # lists what is supported


def test_unsupported_option_is_named():
    import keras
    model = keras.Sequential([keras.Input((10, 2)), keras.layers.LSTM(4, recurrent_activation="hard_sigmoid", name="hs"),
                              keras.layers.Dense(2)])
    with pytest.raises(UnsupportedLayerError, match="'hs'.*recurrent_activation"):
        edgernn.load_model(model)


def test_masking_refused():
    import keras
    model = keras.Sequential([keras.Input((10, 2)), keras.layers.Masking(name="mask"), keras.layers.LSTM(4),
                              keras.layers.Dense(2)])
    with pytest.raises(UnsupportedLayerError, match="'mask' \\(Masking\\)"):
        edgernn.load_model(model)


def test_missing_and_unknown_model_files(tmp_path):
    with pytest.raises(EdgeRNNError, match="no such model file"):
        edgernn.load_model(tmp_path / "nope.keras")
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"x")
    with pytest.raises(EdgeRNNError, match="unknown model format"):
        edgernn.load_model(bad)
