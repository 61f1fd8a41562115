"""edgernn: recurrent neural networks from Keras to microcontrollers.

The Python API mirrors the command line, one function per stage::

    import edgernn
    edgernn.train("train.npz", cell="lstm", units=32, output="model.keras")
    edgernn.convert("model.keras", calib="train.npz", output="model.tflite")
    edgernn.inspect("model.tflite")
    edgernn.emit("model.tflite", "firmware/", backend="tflm", test_data="test.npz")
    edgernn.validate("model.keras", "model.tflite", data="test.npz", max_accuracy_drop=0.02)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import EdgeRNNError  # noqa: E402


def train(*args, **kwargs):
    from .train import train as _train
    return _train(*args, **kwargs)


def convert(*args, **kwargs):
    from .convert import convert as _convert
    return _convert(*args, **kwargs)


def inspect(*args, **kwargs):
    from .inspect import inspect as _inspect
    return _inspect(*args, **kwargs)


def emit(*args, **kwargs):
    from .emit import emit as _emit
    return _emit(*args, **kwargs)


def validate(*args, **kwargs):
    from .validate import validate as _validate
    return _validate(*args, **kwargs)


def load_model(path_or_model):
    """Read a Keras model (path or object) into edgernn's model description (IR)."""
    from .frontend import load_model as _load
    return _load(path_or_model)


__all__ = ["EdgeRNNError", "train", "convert", "inspect", "emit", "validate", "load_model", "__version__"]
