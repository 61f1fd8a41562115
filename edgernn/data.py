"""Datasets: ``.npz`` files with ``x`` float32 ``(N, T, F)`` (or images ``(N, T, F, C)``) and ``y``.

``y`` holds integer class ids ``(N,)`` for a classifier, or float targets ``(N, ...)`` for a
regressor. ``.npy`` (``x`` only, e.g. calibration data) is accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EdgeRNNError


@dataclass
class Dataset:
    path: str
    x: np.ndarray
    y: np.ndarray | None

    @property
    def is_classification(self) -> bool:
        return self.y is not None and self.y.ndim == 1 and np.issubdtype(self.y.dtype, np.integer)

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1 if self.is_classification else 0

    def __len__(self) -> int:
        return len(self.x)

    def take(self, n: int | None) -> "Dataset":
        if n is None or n >= len(self.x):
            return self
        return Dataset(self.path, self.x[:n], None if self.y is None else self.y[:n])


def check_x(x, source: str, *, features: int | None = None, timesteps: int | None = None) -> np.ndarray:
    """``x`` as float32 ``(N, T, F)``, or one clear line naming ``source`` and what is wrong.

    ``(N, T)`` is read as one feature, images ``(N, T, F, C)`` (a CRNN's input) as ``F * C``
    features per step (the same bytes); NaN/inf, the wrong feature count or time steps are refused.
    """
    x = np.asarray(x)
    if x.ndim == 2:  # univariate series (N, T) -> (N, T, 1)
        x = x[:, :, None]
    if x.ndim == 4:  # images (N, T, F, C) -> (N, T, F * C)
        x = x.reshape(x.shape[0], x.shape[1], -1)
    if x.ndim != 3:
        raise EdgeRNNError(f"{source}: 'x' has shape {x.shape}; expected (N, T, F) = (samples, time steps, features)")
    if not np.issubdtype(x.dtype, np.number):
        raise EdgeRNNError(f"{source}: 'x' has dtype {x.dtype}; expected float32 numbers")
    x = x.astype(np.float32, copy=False)
    if len(x) == 0:
        raise EdgeRNNError(f"{source}: 'x' holds no samples")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise EdgeRNNError(f"{source}: 'x' has shape {x.shape}: no time steps or no features; "
                           "expected (N, T, F) with T >= 1 and F >= 1")
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0][0])
        raise EdgeRNNError(f"{source}: 'x' contains {int(bad.sum())} NaN/inf values (first in sample {i}); "
                           "clean or impute the data first")
    if features is not None and x.shape[2] != features:
        raise EdgeRNNError(f"{source}: 'x' has {x.shape[2]} features per time step (shape {x.shape}); "
                           f"the model expects {features}")
    if timesteps is not None and x.shape[1] != timesteps:
        raise EdgeRNNError(f"{source}: 'x' has {x.shape[1]} time steps (shape {x.shape}); "
                           f"the model expects {timesteps}")
    return x


def load_dataset(path, *, require_y: bool = False, features: int | None = None,
                 timesteps: int | None = None) -> Dataset:
    """Read and check a dataset file; raise one clear line when it is not usable."""
    p = Path(path)
    if not p.exists():
        raise EdgeRNNError(f"{p}: no such data file (expected an .npz with 'x' (N, T, F) and 'y')")
    try:
        if p.suffix == ".npy":
            x, y = np.load(p, allow_pickle=False), None
        else:
            with np.load(p, allow_pickle=False) as z:
                if "x" not in z.files:
                    raise EdgeRNNError(
                        f"{p}: no array 'x' in the file (it has {sorted(z.files)}); "
                        "save it with np.savez(path, x=X, y=Y), X float32 of shape (N, T, F)")
                x = z["x"]
                y = z["y"] if "y" in z.files else None
    except EdgeRNNError:
        raise
    except Exception as exc:  # zip errors, pickled objects, truncated files
        raise EdgeRNNError(f"{p}: not a readable .npz/.npy file ({exc})") from None

    x = check_x(x, str(p), features=features, timesteps=timesteps)
    if y is not None:
        if len(y) != len(x):
            raise EdgeRNNError(f"{p}: 'y' has {len(y)} entries but 'x' has {len(x)} samples")
        if np.issubdtype(y.dtype, np.floating) and y.ndim == 1 and np.all(y == np.round(y)) and y.min() >= 0 \
                and y.max() < 1000 and len(np.unique(y)) < 100:
            y = y.astype(np.int64)  # class ids stored as floats
        if np.issubdtype(y.dtype, np.integer):
            y = y.astype(np.int64)
            if y.ndim != 1 or y.min() < 0:
                raise EdgeRNNError(f"{p}: integer 'y' must be class ids >= 0 of shape (N,); got shape {y.shape}")
        elif np.issubdtype(y.dtype, np.floating):
            y = y.astype(np.float32)
            if not np.isfinite(y).all():
                raise EdgeRNNError(f"{p}: 'y' contains NaN/inf values")
        else:
            raise EdgeRNNError(f"{p}: 'y' has dtype {y.dtype}; expected int class ids or float targets")
    elif require_y:
        raise EdgeRNNError(f"{p}: no array 'y' (labels or targets) in the file; it is needed here")
    return Dataset(str(p), x, y)


def read_toml(path, what: str = "config") -> dict:
    """A TOML file as a dict; one clear line when it is missing or malformed."""
    import tomllib

    p = Path(path)
    if not p.exists():
        raise EdgeRNNError(f"{p}: no such {what} file")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise EdgeRNNError(f"{p}: not valid TOML ({exc})") from None
