"""Load a model file without running code from it: read the architecture, check it, then load.

A model file is untrusted input (``edgernn validate`` runs in CI on models from pull requests),
and Keras can run code while it loads one: tf_keras rebuilds a legacy ``.h5`` by calling every
layer, a Lambda's unmarshalled bytecode included; a SavedModel holds TensorFlow graphs that
loading restores (and may run: resource initializers); a ``TFOpLambda`` calls any ``tf.*``
function its config names; a custom class is imported from a module the config names.

So every path (``inspect``, ``convert``, ``validate``, ``emit --calib``, ``qat``, ``deploy``)
goes through :func:`load_keras_object`, which

1. reads the architecture as data, before any framework deserializes it: the ``model_config``
   attribute of an ``.h5`` (h5py), ``config.json`` inside a ``.keras`` zip (Keras 3 and tf_keras),
   the root object's Keras metadata of a SavedModel (``keras_metadata.pb``, or the object graph
   in ``saved_model.pb`` for SavedModels written before TF 2.5), parsed as protobuf;
2. refuses, with one line naming the layer, anything outside an allowlist (:func:`check_architecture`):
   the layer classes the frontend has handlers for (read live from its registry, so a new
   handler is allowed without a second list) plus the containers and InputLayer, the standard
   Keras initializers, regularizers, constraints, dtype policies and activation names; every
   serialized function (a Lambda, ``TFOpLambda``, an activation given as a Python function,
   Keras 3's ``__lambda__``), and every object whose ``module`` lies outside Keras or whose
   ``registered_name`` marks a custom object;
3. loads exactly the bytes it checked (a private copy, so the file cannot change in between)
   with ``compile=False`` (a loss or metric function in the training config is never
   deserialized) and ``safe_mode=True`` stated for Keras 3 and tf_keras ``.keras``. A SavedModel
   is never handed to TensorFlow's loader: the model is rebuilt from its checked Keras config and
   its weights are read from the ``variables/`` checkpoint (tensors only); ``saved_model.pb``,
   whose graphs could run ops such as file writes, is not executed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from .. import ir
from ..errors import EdgeRNNError, UnsafeModelError
from .keras import _HANDLERS, from_keras

# --- the allowlist ------------------------------------------------------------------------------

CONTAINERS = frozenset({"Sequential", "Functional", "Model"})
INPUT_LAYERS = frozenset({"InputLayer"})
# Classes whose config *is* code (bytecode, a function name looked up and called, a tf.* symbol).
CODE_CARRIERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda", "function", "__lambda__"})
# Standard Keras objects a built-in layer's config may nest (Keras 3 and tf_keras spellings).
STANDARD_OBJECTS = frozenset({
    # initializers
    "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
    "Orthogonal", "OrthogonalInitializer", "Identity", "IdentityInitializer", "GlorotNormal",
    "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform",
    # regularizers and constraints
    "L1", "L2", "L1L2", "OrthogonalRegularizer", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm",
    "RadialConstraint",
    # dtype policies (Keras 3, tf_keras mixed precision)
    "DTypePolicy", "FloatDTypePolicy", "Policy",
})
# Plain-data markers of the Keras JSON encoders (tuples, symbolic tensors, arrays, shapes).
DATA_MARKERS = frozenset({"__tuple__", "__keras_tensor__", "__numpy__", "__tensor__", "__bytes__", "TensorShape"})
ACTIVATION_NAMES = frozenset({
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "glu", "sigmoid", "hard_sigmoid",
    "log_sigmoid", "sparse_sigmoid", "tanh", "hard_tanh", "tanh_shrink", "softmax", "log_softmax", "softplus",
    "softsign", "exponential", "silu", "swish", "hard_silu", "hard_swish", "mish", "hard_shrink", "soft_shrink",
    "sparse_plus", "sparsemax", "squareplus", "threshold"})
INITIALIZER_NAMES = frozenset({
    "zeros", "zero", "ones", "one", "constant", "random_normal", "normal", "random_uniform", "uniform",
    "truncated_normal", "variance_scaling", "orthogonal", "identity", "glorot_normal", "glorot_uniform",
    "he_normal", "he_uniform", "lecun_normal", "lecun_uniform"})
REGULARIZER_NAMES = frozenset({"l1", "l2", "l1_l2", "l1l2", "orthogonal_regularizer"})
CONSTRAINT_NAMES = frozenset({"max_norm", "min_max_norm", "non_neg", "nonneg", "unit_norm", "radial_constraint"})
_NAMED_KEYS = (("_initializer", INITIALIZER_NAMES, "initializer"), ("_regularizer", REGULARIZER_NAMES, "regularizer"),
               ("_constraint", CONSTRAINT_NAMES, "constraint"))
# Keys of a saved model that Keras never deserializes with compile=False.
_SKIPPED_ROOT_KEYS = frozenset({"compile_config", "training_config"})
_MAX_CONFIG_BYTES = 64 << 20
# Keys under which a config nests whole layers (the rest nest initializers, policies, tensors...).
_LAYER_SLOTS = (None, "layers", "layer", "forward_layer", "backward_layer", "cell", "cells")


def allowed_layer_classes() -> frozenset[str]:
    """Layer classes a model file may hold: the frontend's handlers (live), containers, InputLayer."""
    return frozenset(_HANDLERS) | CONTAINERS | INPUT_LAYERS


def _supported() -> str:
    return ", ".join(sorted(_HANDLERS))


def _keras_module(module) -> bool:
    return module is None or (isinstance(module, str) and (
        module in ("keras", "tf_keras") or module.startswith(("keras.", "tf_keras."))))


class _Checker:
    def __init__(self, source: str):
        self.source = source
        self.layers = allowed_layer_classes()

    def fail(self, where: str, what: str) -> None:
        raise UnsafeModelError(f"{self.source}: {where}{what}; nothing was loaded")

    @staticmethod
    def where(layer) -> str:
        return "" if layer is None else f"layer '{layer[0]}' ({layer[1]}): "

    def object(self, obj: dict, layer, key: str | None) -> tuple | None:
        """Check one serialized object; return the layer it opens (or the enclosing one)."""
        cls = obj["class_name"]
        cfg = obj.get("config")
        name = cfg.get("name") if isinstance(cfg, dict) and isinstance(cfg.get("name"), str) else None
        if not isinstance(cls, str):
            self.fail(self.where(layer), f"a serialized object has class_name {cls!r}")
        what = f"{key} " if key not in _LAYER_SLOTS else ""
        if cls in CODE_CARRIERS:
            if cls in ("function", "__lambda__"):
                fn = cfg if isinstance(cfg, str) else "lambda"
                self.fail(self.where(layer), f"{what or 'an argument '}is a serialized Python function "
                          f"({fn!r}, module {obj.get('module')!r}): edgernn loads no code from a model file; "
                          "use a built-in Keras name such as 'tanh'")
            self.fail(f"layer '{name or '?'}' ({cls}) ", "holds Python or TensorFlow code to run, which edgernn "
                      "never loads from a model file; rebuild the model from built-in layers (supported layers: "
                      f"{_supported()})")
        is_layer = cls in self.layers
        if not (is_layer or cls in STANDARD_OBJECTS or cls in DATA_MARKERS):
            if key in _LAYER_SLOTS:
                self.fail(f"layer '{name or '?'}' ({cls}) ", "is not supported: edgernn loads only the built-in Keras "
                          "layers it converts from a model file, never custom objects; supported layers: "
                          f"{_supported()}")
            self.fail(self.where(layer), f"{what}is a custom or unsupported object {cls!r} (module "
                      f"{obj.get('module')!r}); edgernn loads only built-in Keras objects from a model file")
        here = (name or "?", cls) if is_layer else layer
        if not _keras_module(obj.get("module")):
            self.fail(self.where(here), f"{what}names module {obj.get('module')!r}, which is not Keras; "
                      "edgernn loads only built-in Keras classes from a model file")
        reg = obj.get("registered_name")
        if reg is not None and reg != cls:
            self.fail(self.where(here), f"{what}is the registered custom object {reg!r}; edgernn loads no "
                      "custom objects from a model file")
        return here

    def named(self, key: str, value, layer) -> None:
        """A key that names a function or object (activation, *_initializer, ...): a standard name or
        a serialized object (checked by :meth:`object`); anything else may carry bytecode."""
        if key == "activation" or key.endswith("_activation"):
            names, kind = ACTIVATION_NAMES, "activation"
        else:
            found = [(names, kind) for suffix, names, kind in _NAMED_KEYS if key.endswith(suffix)]
            if not found:
                return
            names, kind = found[0]
        if value is None or isinstance(value, dict) and "class_name" in value:
            return
        if isinstance(value, str):
            if value.lower() not in names:
                self.fail(self.where(layer), f"{key}={value!r} is not a standard Keras {kind}")
            return
        self.fail(self.where(layer), f"{key} is a serialized Python function or unknown object (no class_name): "
                  f"edgernn loads no code from a model file; use a built-in Keras {kind} name")

    def walk(self, obj, layer=None, key: str | None = None) -> None:
        if isinstance(obj, dict):
            if "class_name" in obj:
                layer = self.object(obj, layer, key)
            for k, v in obj.items():
                if isinstance(k, str):
                    self.named(k, v, layer)
                if isinstance(v, (dict, list)):
                    self.walk(v, layer, k)
        elif isinstance(obj, list):
            for v in obj:
                self.walk(v, layer, key)


def check_architecture(config: dict, source: str) -> None:
    """Refuse a model config that could run code or load custom objects (see the module doc)."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise EdgeRNNError(f"{source}: the model config has no class_name; not a Keras model file")
    root = config["class_name"]
    checker = _Checker(source)
    if root not in CONTAINERS:
        if root in checker.layers or root in CODE_CARRIERS:
            checker.walk(config)  # a bare layer: refuse a code carrier as such
            raise EdgeRNNError(f"{source}: the file holds a single {root} layer, not a model; "
                               "save a Sequential or functional model")
        raise UnsafeModelError(f"{source}: the model is a subclassed or custom {root} (module "
                               f"{config.get('module')!r}), whose code edgernn never loads from a file; "
                               "save a Sequential or functional model; nothing was loaded")
    try:
        checker.walk({k: v for k, v in config.items() if k not in _SKIPPED_ROOT_KEYS})
    except RecursionError:
        raise EdgeRNNError(f"{source}: the model config is nested too deeply to be a Keras model") from None


# --- reading the architecture as data -------------------------------------------------------------

def _json(raw, source: str, what: str) -> dict:
    try:
        cfg = json.loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise EdgeRNNError(f"{source}: {what} is not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise EdgeRNNError(f"{source}: {what} is not a JSON object; not a Keras model file")
    return cfg


def _h5_config(data: bytes, source: str) -> tuple[dict, str | None]:
    import h5py

    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
    except OSError as exc:
        raise EdgeRNNError(f"{source}: not a readable HDF5 file ({exc})") from None
    if raw is None:
        raise EdgeRNNError(f"{source}: no model_config in the HDF5 file (a weights-only .h5?); "
                           "save the whole model with model.save('model.keras')")
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    return _json(raw, source, "model_config"), None if version is None else str(version)


def _keras_zip_config(data: bytes, source: str) -> tuple[dict, str | None]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            if "config.json" not in names:
                raise EdgeRNNError(f"{source}: not a Keras archive (a .keras file is a zip with config.json)")
            for member in ("config.json", "metadata.json"):
                if member in names and z.getinfo(member).file_size > _MAX_CONFIG_BYTES:
                    raise EdgeRNNError(f"{source}: {member} is over {_MAX_CONFIG_BYTES >> 20} MiB; not a Keras model")
            raw = z.read("config.json")
            meta = _json(z.read("metadata.json"), source, "metadata.json") if "metadata.json" in names else {}
    except zipfile.BadZipFile:
        raise EdgeRNNError(f"{source}: not a Keras archive (a .keras file is a zip with config.json)") from None
    version = meta.get("keras_version")
    return _json(raw, source, "config.json"), None if version is None else str(version)


def _untuple(obj):
    """The tf_keras SavedModel encoder's ``{"class_name": "__tuple__", "items": [...]}`` as lists."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__tuple__" and set(obj) == {"class_name", "items"}:
            return [_untuple(v) for v in obj["items"]]
        return {k: _untuple(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_untuple(v) for v in obj]
    return obj


def _savedmodel_config(p: Path, source: str) -> dict:
    """The root model's config from the Keras metadata of a SavedModel (protobuf, read as data)."""
    meta_path = p / "keras_metadata.pb"
    metadata = None
    if meta_path.exists():
        from tf_keras.protobuf import saved_metadata_pb2

        md = saved_metadata_pb2.SavedMetadata()
        try:
            md.ParseFromString(meta_path.read_bytes())
        except Exception as exc:  # protobuf DecodeError
            raise EdgeRNNError(f"{source}: keras_metadata.pb is not readable ({exc})") from None
        root = [n for n in md.nodes if n.node_path == "root"]
        metadata = root[0].metadata if root else None
    else:  # SavedModels written before TF 2.5 keep it in the object graph of saved_model.pb
        from tensorflow.core.protobuf import saved_model_pb2

        sm = saved_model_pb2.SavedModel()
        try:
            sm.ParseFromString((p / "saved_model.pb").read_bytes())
            node = sm.meta_graphs[0].object_graph_def.nodes[0]
            if node.WhichOneof("kind") == "user_object" and node.user_object.identifier.startswith("_tf_keras"):
                metadata = node.user_object.metadata or None
        except Exception:  # protobuf DecodeError, no meta graph
            metadata = None
    if not metadata:
        raise EdgeRNNError(f"{source}: a SavedModel without Keras metadata (written by tf.saved_model.save or "
                           "Keras 3's model.export()); edgernn reads Keras models: save with model.save('model.keras')")
    meta = _json(metadata, source, "the SavedModel's Keras metadata")
    cfg = meta.get("model_config") or {"class_name": meta.get("class_name"), "config": meta.get("config")}
    if not isinstance(cfg, dict) or cfg.get("config") is None:
        raise EdgeRNNError(f"{source}: the SavedModel holds a subclassed {meta.get('class_name')} model without a "
                           "config, whose code edgernn never loads from a file; save a Sequential or functional model")
    return _untuple(cfg)


# --- loading what was checked ---------------------------------------------------------------------

def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _load_file(copy: Path, loaders: list[str], source: str):
    errors = []
    for which in loaders:
        try:
            if which == "keras3":
                import keras
                return keras.saving.load_model(copy, compile=False, safe_mode=True)
            import tf_keras
            return tf_keras.models.load_model(copy, compile=False, safe_mode=True)
        except Exception as exc:  # try the other Keras before giving up
            errors.append(f"{which}: {_first_line(exc)}")
    raise EdgeRNNError(f"{source}: could not load the model ({'; '.join(errors)})")


def _load_savedmodel(p: Path, config: dict, source: str):
    import tf_keras

    try:
        model = tf_keras.models.model_from_config(config)
    except Exception as exc:
        raise EdgeRNNError(f"{source}: could not rebuild the model from its Keras metadata ({_first_line(exc)})") from None
    prefix = p / "variables" / "variables"
    if not prefix.with_suffix(".index").exists():
        raise EdgeRNNError(f"{source}: no variables/variables.index in the SavedModel (its weights)")
    try:
        model.load_weights(str(prefix)).assert_existing_objects_matched()
    except Exception as exc:
        raise EdgeRNNError(f"{source}: the SavedModel's variables do not match its Keras metadata "
                           f"({_first_line(exc)})") from None
    return model


def load_keras_object(path):
    """A Keras (3 or tf_keras) model from a file, refused before loading when it could run code."""
    p = Path(path)
    source = str(path)
    if not p.exists():
        raise EdgeRNNError(f"{p}: no such model file (expected a .keras, .h5 or SavedModel directory)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if p.is_dir():
        if not (p / "saved_model.pb").exists():
            raise EdgeRNNError(f"{p}: a directory but not a SavedModel (no saved_model.pb)")
        config = _savedmodel_config(p, source)
        check_architecture(config, source)
        return _load_savedmodel(p, config, source)
    if p.suffix not in (".keras", ".h5", ".hdf5"):
        raise EdgeRNNError(f"{p}: unknown model format '{p.suffix}'; use a .keras, .h5 or SavedModel directory "
                           "(a .tflite file goes to `edgernn inspect`/`emit`)")
    data = p.read_bytes()  # checked and loaded from these bytes: the file cannot change in between
    if p.suffix == ".keras":
        config, version = _keras_zip_config(data, source)
        keras3 = version is None or version.startswith("3")
        loaders = ["keras3", "tf_keras"] if keras3 else ["tf_keras", "keras3"]
    else:
        config, version = _h5_config(data, source)
        loaders = ["tf_keras", "keras3"]
    check_architecture(config, source)
    tmp = Path(tempfile.mkdtemp(prefix="edgernn-model-"))
    try:
        copy = tmp / f"model{p.suffix}"
        copy.write_bytes(data)
        return _load_file(copy, loaders, source)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_model(model_or_path) -> ir.Model:
    """An IR model from a path, a Keras model object, or an IR model (returned as is)."""
    if isinstance(model_or_path, ir.Model):
        return model_or_path
    if isinstance(model_or_path, (str, os.PathLike)):
        obj = load_keras_object(model_or_path)
        return from_keras(obj, source=str(model_or_path))
    return from_keras(model_or_path, source=getattr(model_or_path, "name", "model"))
