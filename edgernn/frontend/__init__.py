"""Keras frontends: Keras 3 and tf_keras models -> edgernn IR; model files read without running their code."""

from .keras import SUPPORTED_LAYERS, from_keras, save_model
from .loader import allowed_layer_classes, check_architecture, load_keras_object, load_model

__all__ = ["SUPPORTED_LAYERS", "allowed_layer_classes", "check_architecture", "from_keras", "load_keras_object",
           "load_model", "save_model"]
