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

import os
import sys

from ._version import __version__
from .errors import EdgeRNNError


class _QuietTensorFlow:
    """A meta-path hook that imports TensorFlow (whenever something first imports it: Keras,
    tf_keras, an edgernn stage) with file descriptor 2 muted and probes its devices there, so
    its C++ start-up lines (oneDNN, CUDA probes, absl's pre-init notice) stay off stderr as in
    the CLI. Python exceptions are unaffected. With ``EDGERNN_VERBOSE=1`` in the environment
    when TensorFlow is imported (``edgernn -v`` sets it) the lines are kept."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or os.environ.get("EDGERNN_VERBOSE"):
            return None
        sys.meta_path.remove(self)  # once; the normal finders locate the package
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _MutedLoader(spec.loader)
        return spec


class _MutedLoader:
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        try:
            sys.stderr.flush()
            os.dup2(devnull, 2)
            self.loader.exec_module(module)
            try:
                module.config.list_physical_devices()  # the CUDA probe logs here
            except Exception:  # noqa: BLE001 - a probe failing is TensorFlow's to report later
                pass
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... as the real loader
        return getattr(self.loader, name)


def quiet_tensorflow() -> None:
    """Mute TensorFlow's C++ start-up lines when it is imported later (done at ``import
    edgernn``); TF's own C++ logging stays at errors only unless TF_CPP_MIN_LOG_LEVEL is set."""
    if not os.environ.get("EDGERNN_VERBOSE"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())


quiet_tensorflow()


# Each stage's module shares its function's name; importing the function here (after the
# module) makes ``edgernn.convert`` the function. TensorFlow is imported lazily inside them.
from .train import train  # noqa: E402
from .convert import convert  # noqa: E402
from .inspect import inspect  # noqa: E402
from .emit import emit  # noqa: E402
from .validate import validate  # noqa: E402
from .frontend import load_model  # noqa: E402
from .search import search  # noqa: E402

__all__ = ["EdgeRNNError", "quiet_tensorflow", "train", "convert", "inspect", "emit", "validate", "load_model",
           "search", "__version__"]
