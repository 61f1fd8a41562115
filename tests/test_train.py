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
