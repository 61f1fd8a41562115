"""convert: int8 flatbuffers that run in TFLM; Keras 3 and tf_keras alike; clean failures."""


import numpy as np
import pytest

import edgernn
from edgernn import tflite_model
from edgernn.backends.tflm import subprocess_util
from edgernn.backends.tflm.runtime import TFLMRunner
from edgernn.errors import ConversionError, EdgeRNNError

from conftest import load_npz


def test_lstm_fuses_to_one_int8_op(lstm_tflite):
    m = tflite_model.read(lstm_tflite)
    assert m.op_counts.get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 1
    assert "WHILE" not in m.op_counts
    assert m.input().dtype == "int8" and m.output().dtype == "int8"
    assert m.input().shape == (1, 100, 6)


def test_headline_accuracy_bar(lstm_keras, lstm_tflite, bm_data):
    """The int8 model in the real TFLM runtime loses <= 2 points and agrees >= 97% top-1."""
    rep = edgernn.validate(lstm_keras, lstm_tflite, bm_data[1], engines=["tflm"])
    assert rep.metrics["accuracy_float"] >= 0.8
    assert rep.metrics["accuracy_drop"] <= 0.02
    assert rep.metrics["top1_agreement"] >= 0.97


def test_keras3_model_trained_outside_edgernn(tmp_path, bm_data):
    """A Keras 3 stacked LSTM built and trained by hand converts and validates."""
    import keras
    keras.utils.set_random_seed(3)
    x, y = load_npz(bm_data[0])
    model = keras.Sequential([keras.Input((100, 6)), keras.layers.LSTM(16, return_sequences=True),
                              keras.layers.LSTM(16), keras.layers.Dense(4, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=40, batch_size=8, verbose=0)
    path = tmp_path / "hand.keras"
    model.save(path)
    out = tmp_path / "hand.tflite"
    res = edgernn.convert(path, bm_data[0], out)
    assert res.float_check_max_diff is not None and res.float_check_max_diff <= 1e-5
    assert tflite_model.read(out).op_counts["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2
    rep = edgernn.validate(path, out, bm_data[1], engines=["tflm"])
    assert rep.metrics["top1_agreement"] >= 0.97


def test_tf_keras_h5_converts(tmp_path, bm_data):
    import tf_keras
    tf_keras.utils.set_random_seed(0)
    m = tf_keras.Sequential([tf_keras.Input((100, 6)), tf_keras.layers.LSTM(8),
                             tf_keras.layers.Dense(4, activation="softmax")])
    path = tmp_path / "m.h5"
    m.save(path)
    out = tmp_path / "m.tflite"
    edgernn.convert(path, bm_data[0], out)
    x, _ = load_npz(bm_data[1])
    runner = TFLMRunner(out.read_bytes())
    y = runner.dequantize_output(runner.run(runner.quantize_input(x[:5])))
    np.testing.assert_allclose(y, m.predict(x[:5], verbose=0), atol=0.05)


def test_nan_calibration_leaves_nothing(tmp_path, lstm_keras):
    bad = tmp_path / "nan.npz"
    x = np.zeros((4, 100, 6), np.float32)
    x[2, 5, 1] = np.nan
    np.savez(bad, x=x)
    out = tmp_path / "never.tflite"
    with pytest.raises(EdgeRNNError, match="NaN"):
        edgernn.convert(lstm_keras, bad, out)
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_wrong_feature_count(tmp_path, lstm_keras):
    bad = tmp_path / "f5.npz"
    np.savez(bad, x=np.zeros((4, 100, 5), np.float32))
    with pytest.raises(EdgeRNNError, match="5 features per time step.*expects 6"):
        edgernn.convert(lstm_keras, bad, tmp_path / "x.tflite")


def test_converter_crash_becomes_one_line(tmp_path, monkeypatch):
    """A child that dies of SIGSEGV is reported by signal name, not by a dead parent."""
    mod = tmp_path / "crashing_child.py"
    mod.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    rc, result, _ = subprocess_util.run_child("crashing_child", {"x": 1})
    assert rc < 0 and result is None
    assert subprocess_util.describe_returncode(rc) == "crashed with SIGSEGV"

    from edgernn.backends.tflm import convert as conv
    monkeypatch.setattr(conv, "run_child", lambda *a, **k: (rc, None, "Fatal Python error: Segmentation fault"))
    model = edgernn.load_model(_tiny_lstm())
    with pytest.raises(ConversionError, match="crashed with SIGSEGV") as e:
        conv.convert_ir(model, np.zeros((2, 10, 3), np.float32))
    assert "\n" not in str(e.value)


def _tiny_lstm():
    import keras
    return keras.Sequential([keras.Input((10, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)])


def test_output_suffix_checked(tmp_path, lstm_keras, bm_data):
    with pytest.raises(EdgeRNNError, match="must end in .tflite"):
        edgernn.convert(lstm_keras, bm_data[0], tmp_path / "model.bin")
