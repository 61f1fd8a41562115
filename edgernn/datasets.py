"""Real sequence datasets that ship inside PyPI wheels, written as edgernn ``.npz`` files.

* ``digits``: scikit-learn's 8x8 handwritten digits, each image read as 8 time steps of 8
  features (rows scanned top to bottom), 10 classes. 1,797 samples.
* ``basic_motions``: aeon's BasicMotions, 6-axis accelerometer + gyroscope at 10 Hz,
  100 time steps x 6 features, 4 activities (standing, walking, running, badminton);
  40 training and 40 test recordings.

Nothing is downloaded: both come from the installed packages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import EdgeRNNError

DATASETS = ("digits", "basic_motions")


def _split(x, y, test_fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    te, tr = idx[:n_test], idx[n_test:]
    return (x[tr], y[tr]), (x[te], y[te])


def digits(seed: int = 0, test_fraction: float = 0.25):
    """((x_train, y_train), (x_test, y_test)); x scaled to [0, 1], shape (N, 8, 8)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    return _split(x, y, test_fraction, seed)


def basic_motions():
    """((x_train, y_train), (x_test, y_test)); x (N, 100, 6) standardised per channel."""
    from aeon.datasets import load_basic_motions

    xs, ys = [], []
    for split in ("train", "test"):
        x, y = load_basic_motions(split=split)
        xs.append(np.transpose(x, (0, 2, 1)).astype(np.float32))  # aeon: (N, C, T)
        ys.append(y)
    classes = sorted(set(ys[0]))
    mean = xs[0].mean(axis=(0, 1), keepdims=True)
    std = xs[0].std(axis=(0, 1), keepdims=True) + 1e-6
    out = []
    for x, y in zip(xs, ys):
        out.append((((x - mean) / std).astype(np.float32), np.array([classes.index(v) for v in y], np.int64)))
    return tuple(out)


def write(name: str, out_dir, **kwargs) -> tuple[Path, Path]:
    """Write ``<name>_train.npz`` and ``<name>_test.npz`` to ``out_dir``; return both paths."""
    if name not in DATASETS:
        raise EdgeRNNError(f"unknown dataset '{name}'; available: {', '.join(DATASETS)}")
    if out_dir is None or not str(out_dir):
        raise EdgeRNNError("dataset: give an output directory (-o DIR)")
    (xtr, ytr), (xte, yte) = digits(**kwargs) if name == "digits" else basic_motions()
    out = Path(out_dir)
    blocker = next((p for p in [out, *out.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise EdgeRNNError(f"-o {out}: {blocker} is a file, not a directory; give a directory for the .npz files")
    out.mkdir(parents=True, exist_ok=True)
    train, test = out / f"{name}_train.npz", out / f"{name}_test.npz"
    np.savez(train, x=xtr, y=ytr)
    np.savez(test, x=xte, y=yte)
    return train, test
