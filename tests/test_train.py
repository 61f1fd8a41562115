"""train: deterministic with a seed, clipping on, progress, clear errors."""

import numpy as np
import pytest

import edgernn
from edgernn.errors import EdgeRNNError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, digits_data):
    """A 300-sample slice of digits keeps these trainings to seconds."""
    from conftest import load_npz
    x, y = load_npz(digits_data[0])
    p = tmp_path_factory.mktemp("tiny") / "tiny.npz"
    np.savez(p, x=x[:300], y=y[:300])
    return p


def test_seed_makes_training_deterministic(tmp_path, tiny):
    a = edgernn.train(tiny, cell="lstm", units=8, epochs=3, seed=7, output=tmp_path / "a.keras", progress=False)
    b = edgernn.train(tiny, cell="lstm", units=8, epochs=3, seed=7, output=tmp_path / "b.keras", progress=False)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert (tmp_path / "a.keras").exists()


def test_clipping_is_on_by_default(tmp_path, tiny):
    res = edgernn.train(tiny, cell="gru", units=4, epochs=1, progress=False)
    assert res.model.optimizer.clipnorm == 1.0
    assert res.model.layers[1].__class__.__name__ == "GRU"


def test_test_metrics_and_stacking(tmp_path, tiny, digits_data):
    res = edgernn.train(tiny, cell="rnn", units=8, layers=2, epochs=2, test=digits_data[1], progress=False)
    assert set(res.test_metrics) >= {"accuracy", "loss"}
    ir = edgernn.load_model(res.model)
    assert [l.cell for l in ir.recurrent_layers] == ["rnn", "rnn"]


def test_bad_options(tmp_path, tiny):
    with pytest.raises(EdgeRNNError, match="--layers 5"):
        edgernn.train(tiny, layers=5, epochs=1, progress=False)
    with pytest.raises(EdgeRNNError, match="must end in .keras"):
        edgernn.train(tiny, epochs=1, output=tmp_path / "m.tflite", progress=False)
    nolabels = tmp_path / "nolabels.npz"
    np.savez(nolabels, x=np.zeros((4, 3, 2), np.float32))
    with pytest.raises(EdgeRNNError, match="no array 'y'"):
        edgernn.train(nolabels, epochs=1, progress=False)


def test_conv_front_end_options_build_a_hybrid(tmp_path, tiny):
    res = edgernn.train(tiny, cell="gru", units=8, conv=["8:3", (8, 3, 2)], causal=True, pool=2, head="gap",
                        epochs=2, progress=False, output=tmp_path / "cnn_gru.keras")
    k = res.model
    conv = [l for l in k.layers if type(l).__name__ == "Conv1D"]
    assert [(c.filters, c.kernel_size[0], c.dilation_rate[0], c.padding) for c in conv] == \
        [(8, 3, 1, "causal"), (8, 3, 2, "causal")]
    m = edgernn.load_model(tmp_path / "cnn_gru.keras")
    # each block's BatchNormalization folds into its conv, the ReLU becomes the conv's activation
    assert [l.kind for l in m.layers] == ["conv1d", "conv1d", "pool", "recurrent", "global_pool", "dense"]
    assert m.folded_batchnorm == {"bn_0": "conv_0", "bn_1": "conv_1"}
    assert all(l.activation == "relu" for l in m.layers[:2])
    assert m.layers[3].return_sequences and [o for _, o in m.shapes()][2] == (4, 8)


@pytest.mark.parametrize("kw,err", [
    (dict(conv=["8x3"]), "--conv '8x3': use FILTERS:KERNEL"),
    (dict(head="mean"), "--head 'mean'"),
    (dict(pool=0), "--pool 0"),
    (dict(pool=9), "--pool 9: longer than the 8 time steps"),
])
def test_bad_conv_options(tiny, kw, err):
    with pytest.raises(EdgeRNNError, match=err):
        edgernn.train(tiny, epochs=1, progress=False, **kw)


def test_cli_conv_options(tmp_path, tiny):
    from click.testing import CliRunner

    from edgernn.cli import main

    out = tmp_path / "m.keras"
    r = CliRunner().invoke(main, ["train", str(tiny), "--conv", "4:3", "--head", "flatten", "--units", "4",
                                  "--epochs", "1", "--no-progress", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert [l.kind for l in edgernn.load_model(out).layers] == ["conv1d", "recurrent", "reshape", "dense"]
    r = CliRunner().invoke(main, ["train", str(tiny), "--conv", "4", "-o", str(out)])
    assert r.exit_code == 2 and "--conv '4'" in r.output


def test_validation_data_and_callbacks(tmp_path, tiny):
    """An explicit validation set replaces the split (all of data is trained on), and extra
    Keras callbacks see every epoch's validation metrics (what a search reports per epoch)."""
    import keras
    from conftest import load_npz

    x, y = load_npz(tiny)
    val = tmp_path / "val.npz"
    np.savez(val, x=x[:50], y=y[:50])
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, logs["val_accuracy"]))

        def on_train_batch_end(self, batch, logs=None):
            self.batches = batch + 1

    rec = Record()
    res = edgernn.train(tiny, cell="gru", units=4, epochs=2, batch_size=100, validation=val, callbacks=[rec],
                        progress=False)
    assert [e for e, _ in seen] == [0, 1]
    assert rec.batches == 3  # 300 training samples, none held out, in batches of 100
    expect = res.model.evaluate(x[:50], y[:50], verbose=0, return_dict=True)["accuracy"]
    assert abs(seen[-1][1] - expect) < 1e-6
    with pytest.raises(EdgeRNNError, match="features per time step"):
        bad = tmp_path / "bad.npz"
        np.savez(bad, x=np.zeros((4, 8, 3), np.float32), y=np.zeros(4, np.int64))
        edgernn.train(tiny, epochs=1, validation=bad, progress=False)
