"""The benchmark models, trained and converted once and shared by every script in ``bench/``.

Each benchmark measures a small recurrent classifier trained with ``edgernn.train`` on a bundled
real dataset and converted with ``edgernn.convert`` (PTQ, calibrated on its training split). The
headline model is LSTM(32) on BasicMotions (100 steps x 6 features, 4 classes), 40 epochs, seed 0.
:func:`tflite` / :func:`keras_model` train and convert a model the first time it is asked for
and keep it in a cache directory, so ``bench_native.py``, ``bench_firmware.py`` and
``bench_simulator.py`` run one after another train the headline model once. The cache is
``$EDGERNN_BENCH_CACHE`` (default ``~/.cache/edgernn/bench``); a model's file name holds
everything it was trained with, and the edgernn version; a converted model's also a hash of
edgernn's sources (a converter change converts again). Delete the directory to retrain.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

HEADLINE = dict(dataset="basic_motions", cell="lstm", units=32, layers=1, epochs=40, activation="tanh", seed=0)


def cache_dir(cache: Path | None = None) -> Path:
    d = Path(cache or os.environ.get("EDGERNN_BENCH_CACHE") or Path.home() / ".cache" / "edgernn" / "bench")
    d.mkdir(parents=True, exist_ok=True)
    return d


def data(name: str = "basic_motions", cache: Path | None = None) -> tuple[Path, Path]:
    """(train.npz, test.npz) of a bundled dataset: ``basic_motions``, ``digits`` (8 steps x 8
    pixels), or ``digits64`` (the digits read pixel by pixel: 64 steps x 1 feature)."""
    from edgernn import datasets

    d = cache_dir(cache) / "data"
    if name != "digits64":
        paths = tuple(d / f"{name}_{split}.npz" for split in ("train", "test"))
        return paths if all(p.exists() for p in paths) else datasets.write(name, d)
    import numpy as np

    out = []
    for path in data("digits", cache):
        p = path.with_name(path.name.replace("digits", "digits64"))
        if not p.exists():
            with np.load(path, allow_pickle=False) as z:
                x, y = z["x"], z["y"]
            np.savez(p, x=x.reshape(len(x), 64, 1), y=y)
        out.append(p)
    return tuple(out)


def _stem(dataset: str, cell: str, units: int, layers: int, epochs: int, activation: str, seed: int) -> str:
    from edgernn import __version__

    return f"{dataset}-{cell}{units}x{layers}-{activation}-e{epochs}-s{seed}-v{__version__}"


def keras_model(*, cache: Path | None = None, **spec) -> Path:
    """The trained ``.keras`` model of ``spec`` (keys of :data:`HEADLINE`; missing ones from it)."""
    import edgernn

    s = {**HEADLINE, **spec}
    path = cache_dir(cache) / f"{_stem(**s)}.keras"
    if not path.exists():
        train, _ = data(s["dataset"], cache)
        edgernn.train(train, cell=s["cell"], units=s["units"], layers=s["layers"], epochs=s["epochs"],
                      activation=s["activation"], seed=s["seed"], output=path, progress=False)  # saved atomically
    return path


def _converter_fingerprint() -> str:
    """8 hex digits of a hash over edgernn's Python sources: a converted model is cached per
    converter, so a change to the converter (same version number) converts again; the trained
    Keras models stay cached."""
    import hashlib

    import edgernn

    h = hashlib.sha256()
    root = Path(edgernn.__file__).parent
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:8]


def tflite(*, cache: Path | None = None, state: str | None = None, **spec) -> Path:
    """The int8 flatbuffer ``edgernn convert`` makes of :func:`keras_model` (``spec``); ``state``:
    ``convert --state`` of the WHILE-loop cells (GRU, SimpleRNN; None: convert's default), in the
    file name of those (the fused LSTM has no such option)."""
    import inspect

    import edgernn

    s = {**HEADLINE, **spec}
    if state is None:
        state = inspect.signature(edgernn.convert).parameters["state"].default
    tag = "" if s["cell"] == "lstm" else f"-state{state}"
    path = cache_dir(cache) / f"{_stem(**s)}{tag}-c{_converter_fingerprint()}.tflite"
    if not path.exists():
        train, _ = data(s["dataset"], cache)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tflite")
        edgernn.convert(keras_model(cache=cache, **s), calib=train, output=tmp, state=state)
        os.replace(tmp, path)  # atomically: other benchmark runs share the cache
    return path
