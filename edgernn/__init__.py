"""edgernn: recurrent neural networks from Keras to microcontrollers.

The Python API mirrors the command line, one function per stage::

    import edgernn
    edgernn.train("train.npz", cell="lstm", units=32, output="model.keras")
    edgernn.convert("model.keras", calib="train.npz", output="model.tflite")
    edgernn.inspect("model.tflite")
    edgernn.emit("model.tflite", "firmware/", backend="tflm", test_data="test.npz")
    edgernn.validate("model.keras", "model.tflite", data="test.npz", max_accuracy_drop=0.02)
    edgernn.search("search.toml", "out/")   # the most accurate model that fits the budgets (Ray Tune)
"""

from __future__ import annotations

from ._version import __version__
from .errors import EdgeRNNError

# Each stage's module shares its function's name; importing the function here (after the
# module) makes ``edgernn.convert`` the function. TensorFlow is imported lazily inside them.
from .train import train  # noqa: E402
from .convert import convert  # noqa: E402
from .inspect import inspect  # noqa: E402
from .emit import emit  # noqa: E402
from .validate import validate  # noqa: E402
from .frontend import load_model  # noqa: E402
from .search import search  # noqa: E402

__all__ = ["EdgeRNNError", "train", "convert", "inspect", "emit", "validate", "load_model", "search", "__version__"]
