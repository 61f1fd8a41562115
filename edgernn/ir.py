"""The model description (IR) that every stage passes along.

A small, explicit picture of a recurrent model: the input spec, an ordered list of layers
with their float weights in Keras' own layout, and where the model came from. Frontends
build it, the TFLM backend rebuilds an equivalent ``tf_keras`` model from it, the trainer and
the validator read it. Each layer kind is a dataclass that checks its weights when built.

Weight layouts (Keras' own, gate order included):

* LSTM  ``kernel (F, 4U)``, ``recurrent_kernel (U, 4U)``, ``bias (4U,)``, gates i, f, c, o.
* GRU   ``kernel (F, 3U)``, ``recurrent_kernel (U, 3U)``, gates z, r, h; ``bias (3U,)`` or
  ``(2, 3U)`` (input and recurrent bias) when ``reset_after`` is true.
* SimpleRNN ``kernel (F, U)``, ``recurrent_kernel (U, U)``, ``bias (U,)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

import numpy as np

from .errors import EdgeRNNError

Cell = Literal["lstm", "gru", "rnn"]
CELLS: tuple[str, ...] = ("lstm", "gru", "rnn")
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")


def _check_shape(layer: str, what: str, arr: np.ndarray, shape: tuple) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float32)
    if arr.shape != shape:
        raise EdgeRNNError(f"layer '{layer}': {what} has shape {arr.shape}, expected {shape}")
    return arr


@dataclass
class InputSpec:
    timesteps: int | None  # None: any length (the converter then needs a fixed T)
    features: int


@dataclass
class Recurrent:
    """One SimpleRNN / LSTM / GRU layer."""

    name: str
    cell: Cell
    units: int
    input_dim: int
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    return_sequences: bool = False
    go_backwards: bool = False
    reset_after: bool = True  # GRU only
    kind: str = field(default="recurrent", init=False)

    def __post_init__(self):
        if self.cell not in CELLS:
            raise EdgeRNNError(f"layer '{self.name}': cell '{self.cell}' is not one of {CELLS}")
        g = GATES[self.cell] * self.units
        self.kernel = _check_shape(self.name, "kernel", self.kernel, (self.input_dim, g))
        self.recurrent_kernel = _check_shape(self.name, "recurrent_kernel", self.recurrent_kernel,
                                             (self.units, g))
        bias_shape = (2, g) if self.cell == "gru" and self.reset_after else (g,)
        self.bias = _check_shape(self.name, "bias", self.bias, bias_shape)

    @property
    def param_count(self) -> int:
        return int(self.kernel.size + self.recurrent_kernel.size + self.bias.size)

    def macs_per_step(self) -> int:
        return int(self.kernel.size + self.recurrent_kernel.size)


@dataclass
class Bidirectional:
    name: str
    forward: Recurrent
    backward: Recurrent
    merge_mode: Literal["concat", "sum"] = "concat"
    kind: str = field(default="bidirectional", init=False)

    @property
    def units(self) -> int:
        return self.forward.units * (2 if self.merge_mode == "concat" else 1)

    @property
    def return_sequences(self) -> bool:
        return self.forward.return_sequences

    @property
    def param_count(self) -> int:
        return self.forward.param_count + self.backward.param_count

    def macs_per_step(self) -> int:
        return self.forward.macs_per_step() + self.backward.macs_per_step()


@dataclass
class Dense:
    name: str
    kernel: np.ndarray  # (in, out)
    bias: np.ndarray  # (out,)
    activation: str = "linear"
    kind: str = field(default="dense", init=False)

    def __post_init__(self):
        self.kernel = np.asarray(self.kernel, dtype=np.float32)
        if self.kernel.ndim != 2:
            raise EdgeRNNError(f"layer '{self.name}': Dense kernel must be 2-D, got {self.kernel.shape}")
        self.bias = _check_shape(self.name, "bias", self.bias, (self.kernel.shape[1],))
        if self.activation not in ACTIVATIONS:
            raise EdgeRNNError(f"layer '{self.name}': activation '{self.activation}' is not supported; "
                               f"use one of {ACTIVATIONS}")

    @property
    def units(self) -> int:
        return int(self.kernel.shape[1])

    @property
    def param_count(self) -> int:
        return int(self.kernel.size + self.bias.size)

    def macs_per_step(self) -> int:
        return int(self.kernel.size)


@dataclass
class Activation:
    name: str
    activation: str
    kind: str = field(default="activation", init=False)

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise EdgeRNNError(f"layer '{self.name}': activation '{self.activation}' is not supported; "
                               f"use one of {ACTIVATIONS}")

    param_count = 0

    def macs_per_step(self) -> int:
        return 0


Layer = Union[Recurrent, Bidirectional, Dense, Activation]


@dataclass
class Model:
    """A recurrent model: input spec, ordered layers, provenance."""

    name: str
    input: InputSpec
    layers: list[Layer]
    source: str = ""  # file it was read from

    @property
    def recurrent_layers(self) -> list[Layer]:
        return [l for l in self.layers if l.kind in ("recurrent", "bidirectional")]

    @property
    def cells(self) -> list[str]:
        out = []
        for l in self.recurrent_layers:
            out.append(l.cell if l.kind == "recurrent" else l.forward.cell)
        return out

    @property
    def per_step_output(self) -> bool:
        """True when the model gives one output per time step."""
        rec = self.recurrent_layers
        return bool(rec) and rec[-1].return_sequences

    @property
    def is_bidirectional(self) -> bool:
        return any(l.kind == "bidirectional" for l in self.layers)

    @property
    def output_activation(self) -> str:
        for l in reversed(self.layers):
            act = getattr(l, "activation", "linear")
            if l.kind in ("dense", "activation"):
                if act != "linear" or l.kind == "dense":
                    return act
        return "linear"

    @property
    def output_units(self) -> int:
        for l in reversed(self.layers):
            if l.kind != "activation":
                return l.units
        raise EdgeRNNError(f"model '{self.name}' has no layer with outputs")

    @property
    def param_count(self) -> int:
        return sum(l.param_count for l in self.layers)

    def macs(self, timesteps: int | None = None) -> int:
        """Multiply-accumulates per inference over ``timesteps`` steps."""
        t = timesteps or self.input.timesteps or 1
        total, per_step = 0, True
        for l in self.layers:
            if l.kind in ("recurrent", "bidirectional"):
                total += l.macs_per_step() * t
                per_step = l.return_sequences
            else:
                total += l.macs_per_step() * (t if per_step else 1)
        return total

    def summary_rows(self, timesteps: int | None = None) -> list[dict]:
        t = timesteps or self.input.timesteps or 1
        rows, per_step = [], True
        for l in self.layers:
            steps = t if (l.kind in ("recurrent", "bidirectional") or per_step) else 1
            cell = l.cell if l.kind == "recurrent" else (l.forward.cell if l.kind == "bidirectional" else "")
            rows.append({"name": l.name, "kind": l.kind, "cell": cell,
                         "units": getattr(l, "units", 0), "params": l.param_count,
                         "macs": l.macs_per_step() * steps})
            if l.kind in ("recurrent", "bidirectional"):
                per_step = l.return_sequences
        return rows
