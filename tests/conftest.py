"""Shared, session-cached fixtures: real datasets, trained models, converted flatbuffers.

Training and conversion are the slow parts of the suite, so every model is built once per
session through :class:`ModelZoo` and reused by every test that asks for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def pytest_addoption(parser):
    parser.addoption("--record-golden", action="store_true",
                     help="rewrite tests/golden_hashes.json from this run (see tests/test_golden.py)")


@dataclass(frozen=True)
class Spec:
    """A model to train: cell, size, topology and dataset."""

    cell: str = "lstm"
    units: int = 32
    layers: int = 1
    bidirectional: bool = False
    dataset: str = "basic_motions"  # or "digits"
    epochs: int = 60
    seed: int = 0
    activation: str = "tanh"  # SimpleRNN only: "tanh" or "relu"
    conv: tuple = ()  # conv front-end blocks "FILTERS:KERNEL[:DILATION]" (edgernn.train's conv=)
    causal: bool = False
    pool: int = 1
    head: str = "last"

    @property
    def key(self) -> str:
        bi = "bi" if self.bidirectional else ""
        act = "" if self.activation == "tanh" else f"-{self.activation}"
        front = ""
        if self.conv or self.pool > 1 or self.head != "last":
            front = "conv" + "_".join(c.replace(":", "k", 1).replace(":", "d") for c in self.conv)
            front += f"{'-causal' if self.causal else ''}-p{self.pool}-{self.head}-"
        return f"{front}{bi}{self.cell}{self.units}x{self.layers}{act}-{self.dataset}-e{self.epochs}-s{self.seed}"


class ModelZoo:
    def __init__(self, root: Path):
        self.root = root
        self._data: dict[str, tuple[Path, Path]] = {}
        self._models: dict[str, Path] = {}
        self._tflite: dict[str, Path] = {}

    def data(self, name: str) -> tuple[Path, Path]:
        """(train.npz, test.npz) of a bundled real dataset."""
        if name not in self._data:
            from edgernn import datasets
            self._data[name] = datasets.write(name, self.root / "data")
        return self._data[name]

    def keras(self, spec: Spec = Spec()) -> Path:
        """A trained Keras 3 .keras model for ``spec``."""
        if spec.key not in self._models:
            import edgernn
            train, test = self.data(spec.dataset)
            out = self.root / "models" / f"{spec.key}.keras"
            edgernn.train(train, cell=spec.cell, units=spec.units, layers=spec.layers,
                          bidirectional=spec.bidirectional, epochs=spec.epochs, seed=spec.seed,
                          activation=spec.activation, output=out, progress=False, conv=list(spec.conv),
                          causal=spec.causal, pool=spec.pool, head=spec.head)
            self._models[spec.key] = out
        return self._models[spec.key]

    def tflite(self, spec: Spec = Spec()) -> Path:
        """The int8 flatbuffer ``edgernn convert`` makes of ``keras(spec)``."""
        if spec.key not in self._tflite:
            import edgernn
            train, _ = self.data(spec.dataset)
            out = self.root / "tflite" / f"{spec.key}.tflite"
            edgernn.convert(self.keras(spec), calib=train, output=out)
            self._tflite[spec.key] = out
        return self._tflite[spec.key]


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> ModelZoo:
    return ModelZoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def bm_data(zoo):
    """BasicMotions (aeon): 100 x 6 accelerometer/gyro, 4 classes; (train, test) .npz paths."""
    return zoo.data("basic_motions")


@pytest.fixture(scope="session")
def digits_data(zoo):
    """scikit-learn digits as 8 steps x 8 features, 10 classes; (train, test) .npz paths."""
    return zoo.data("digits")


@pytest.fixture(scope="session")
def lstm_keras(zoo) -> Path:
    """LSTM(32) on BasicMotions (100 x 6, 4 classes): the headline model."""
    return zoo.keras(Spec())


@pytest.fixture(scope="session")
def lstm_tflite(zoo) -> Path:
    return zoo.tflite(Spec())


def load_npz(path):
    with np.load(path) as z:
        return z["x"], z["y"]
