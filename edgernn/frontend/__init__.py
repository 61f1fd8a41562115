"""Frontend: any supported Keras model file (or object) -> :class:`edgernn.ir.Model`; saving Keras models."""

from .keras import SUPPORTED_LAYERS, from_keras, load_keras_object, load_model, save_model

__all__ = ["SUPPORTED_LAYERS", "from_keras", "load_keras_object", "load_model", "save_model"]
