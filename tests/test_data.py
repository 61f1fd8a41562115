"""Dataset files: what is accepted and the one-line errors for what is not."""

import numpy as np
import pytest

from edgernn.data import load_dataset
from edgernn.errors import EdgeRNNError


def test_reads_npz_and_univariate(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((5, 7), np.float64), y=np.array([0, 1, 2, 1, 0]))
    ds = load_dataset(p)
    assert ds.x.shape == (5, 7, 1) and ds.x.dtype == np.float32
    assert ds.is_classification and ds.num_classes == 3


@pytest.mark.parametrize("case,arrays,kwargs,pattern", [
    ("no x", {"data": np.zeros((2, 3, 4))}, {}, "no array 'x'.*\\['data'\\]"),
    ("5-D", {"x": np.zeros((2, 3, 4, 5, 6))}, {}, "shape \\(2, 3, 4, 5, 6\\); expected \\(N, T, F\\)"),  # 4-D = images
    ("features", {"x": np.zeros((2, 3, 4))}, {"features": 6}, "4 features per time step.*expects 6"),
    ("timesteps", {"x": np.zeros((2, 3, 4))}, {"timesteps": 5}, "3 time steps.*expects 5"),
    ("nan", {"x": np.array([[[0.0], [np.nan]]])}, {}, "NaN/inf.*sample 0"),
    ("y length", {"x": np.zeros((2, 3, 4)), "y": np.zeros(3, np.int64)}, {}, "'y' has 3 entries"),
])
def test_bad_data_one_line(tmp_path, case, arrays, kwargs, pattern):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(EdgeRNNError, match=pattern) as e:
        load_dataset(p, **kwargs)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(EdgeRNNError, match="no such data file"):
        load_dataset(tmp_path / "missing.npz")
    p = tmp_path / "corrupt.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(EdgeRNNError, match="not a readable"):
        load_dataset(p)
