"""QAT on hybrid models: conv kernels on the converter's per-channel grid, the QAT model's ranges
equal to the scales convert writes, the fine-tuned weights written back into the user's model."""

import numpy as np
import pytest

import edgernn
from conftest import load_npz
from edgernn import qat
from test_hybrid import _build, _x, cnn_bigru, crnn, deep_conv


def _front(L, inp):
    h = L.Conv1D(6, 3, padding="causal", activation="relu", name="c1")(inp)
    h = L.BatchNormalization(name="bn")(h)  # unfolded: MUL + ADD
    h = L.Conv1D(6, 3, padding="causal", activation="tanh", name="c2")(h)
    h = L.DepthwiseConv1D(3, depth_multiplier=2, name="dw")(h)
    h = L.GRU(8, return_sequences=True, name="gru")(h)
    h = L.GlobalAveragePooling1D(name="gap")(h)
    return L.Dense(3, activation="softmax", name="d")(h)


def test_conv_kernels_snap_to_the_converters_per_channel_grid():
    from edgernn.quantize.params import quantize_weights

    rng = np.random.default_rng(0)
    k = rng.normal(size=(3, 4, 5)).astype(np.float32) * np.linspace(0.01, 2, 5, dtype=np.float32)
    snapped = qat.snap_weight(k, None)
    w = np.transpose(snapped, (2, 0, 1))[:, None]  # CONV_2D's (O, 1, k, C), per channel on axis 0
    q, s = quantize_weights(w, 0)
    np.testing.assert_array_equal(q * s[:, None, None, None], w)
    dw = qat.snap_weight(k, None, depthwise=True)  # (k, C, m): one scale per output channel c*m + j
    q, s = quantize_weights(dw.reshape(1, 1, 3, 20), 3)
    np.testing.assert_array_equal((q * s).reshape(dw.shape), dw)
    assert not np.array_equal(dw, snapped)


def test_hybrid_ranges_are_the_ones_convert_writes():
    """Conv outputs (after a fused relu, before a tanh), an unfolded BatchNorm's ADD and a MEAN:
    the QAT model calibrates each on the range the WHILE graph gets."""
    import keras

    from edgernn.backends.tflm.recurrent import calibrate

    k = _build(keras, _front)
    m = edgernn.load_model(k)
    x = _x(100)
    ranges = qat.calibrate(qat.build_qat_model(m, x.shape[1]), x, float_weights=True)
    _, quant = calibrate(m, x)
    pairs = {"input_quant/output": "input", "c1/post_activation": "c1/conv", "bn/output": "bn/out",
             "c2/pre_activation": "c2/conv", "dw/post_activation": "dw/conv", "gap/output": "gap/avg",
             "d/pre_activation": "d/dense"}
    for key, name in pairs.items():
        lo, hi = ranges[f"quant_{key}"]
        assert quant[name].scale[0] == pytest.approx((hi - lo) / 255.0, rel=1e-5), key


@pytest.mark.parametrize("body,flavour", [(lambda L, i: deep_conv(L, i, "GRU"), "keras"), (cnn_bigru, "tf_keras"),
                                          (lambda L, i: crnn(L, i, "LSTM"), "keras")],
                         ids=["deep_conv_gru-keras", "cnn_bigru-tf_keras", "crnn_lstm-keras"])
def test_snapped_weights_written_back_into_the_users_model(body, flavour):
    """Folded BatchNorms become the identity, SeparableConv1D gets both halves back: the
    written model computes exactly what the snapped IR does."""
    from edgernn.backends.tflm.keras_build import build_tf_keras
    from edgernn.qat.weights import write_back

    K = __import__(flavour)
    k = _build(K, body)
    snapped = qat.snap_model(edgernn.load_model(k))
    x = _x(8)
    written = write_back(k, snapped)
    np.testing.assert_allclose(np.asarray(written(x)), np.asarray(build_tf_keras(snapped, batch_size=None)(x)),
                               atol=1e-6)
    assert not np.allclose(np.asarray(written(x)), np.asarray(k(x)), atol=1e-6)  # the weights did change


@pytest.mark.slow
def test_train_qat_on_a_causal_conv_gru(zoo, tmp_path):
    """``train --conv 8:3 --causal --qat`` on digits: QAT fine-tunes the hybrid (the selection
    scores every epoch's int8 model), the kept model converts, its conv kernel is on its int8
    grid when a fine-tuned epoch was kept, and its int8 accuracy in TFLM stays high."""
    from edgernn.backends.tflm.runtime import tflm_outputs

    train, test = zoo.data("digits")
    out = tmp_path / "m.keras"
    r = edgernn.train(train, cell="gru", units=16, conv=["8:3"], causal=True, epochs=8, output=out, progress=False,
                      qat=True, qat_epochs=1)
    assert len(r.qat.selection_scores) == 2 and r.qat.kept_score == max(r.qat.selection_scores)
    saved = edgernn.load_model(out)
    assert [l.kind for l in saved.layers] == ["conv1d", "recurrent", "dense"]
    if r.qat.kept_epoch > 0:
        np.testing.assert_array_equal(qat.snap_weight(saved.layers[0].kernel, None), saved.layers[0].kernel)
    x, y = load_npz(test)
    acc = float(np.mean(np.argmax(tflm_outputs(edgernn.convert(out, calib=train).tflite, x), -1) == y))
    assert acc >= 0.8, acc
