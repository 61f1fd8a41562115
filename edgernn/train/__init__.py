"""``edgernn.train``: a Keras 3 SimpleRNN / LSTM / GRU model from an ``.npz`` dataset."""

from .trainer import TrainResult, build_model, train

__all__ = ["TrainResult", "build_model", "train"]
