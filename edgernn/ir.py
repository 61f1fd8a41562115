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
* Conv1D ``kernel (k, C_in, C_out)``; DepthwiseConv1D ``kernel (k, C_in, multiplier)``, output
  channel ``c * multiplier + m`` reading input channel ``c``; Conv2D ``kernel (k_t, k_f, C_in,
  C_out)`` over a ``(T, F, C)`` input, time on the first axis.

Shapes (batch left out): a sequence is ``(T, C)``, an image ``(T, F, C)`` (a CRNN's input to
Conv2D), a vector ``(D,)``. :meth:`Model.shapes` walks them layer by layer; a layer refuses an
input shape it cannot take with one line naming it. BatchNormalization is folded into the
layer before (or after) it by the frontend; what cannot be folded stays a per-channel
:class:`BatchNorm` (``y = x * scale + offset``).
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

    @property
    def shape(self) -> tuple:
        return (self.timesteps, self.features)


Shape = tuple  # a layer's input or output shape without the batch axis; the time axis may be None


def _seq_len(layer, t: int | None, k: int, s: int, d: int, padding: str) -> int | None:
    """Output length of a 1-D window (size k, stride s, dilation d) over t steps, as Keras computes it."""
    if t is None:
        return None
    if padding in ("same", "causal"):
        return -(-t // s)
    n = (t - (k - 1) * d - 1) // s + 1
    if n < 1:
        raise EdgeRNNError(f"layer '{layer.name}': a window of {(k - 1) * d + 1} steps does not fit in {t} steps "
                           "(padding 'valid'); use padding='same' or a longer input")
    return n


def _need_rank(layer, in_shape: Shape, ranks: tuple[int, ...], what: str) -> None:
    if len(in_shape) not in ranks:
        raise EdgeRNNError(f"layer '{layer.name}' ({type(layer).__name__}) takes {what}; its input has shape "
                           f"{tuple(in_shape)}")


def _check_activation(name: str, act: str) -> None:
    if act not in ACTIVATIONS:
        raise EdgeRNNError(f"layer '{name}': activation '{act}' is not supported; use one of {ACTIVATIONS}")


def _pair(v, n: int | None = None) -> tuple[int, ...]:
    """An int or a tuple as a tuple of ints (an int repeated ``n`` times when ``n`` is given)."""
    out = tuple(int(a) for a in np.atleast_1d(v))
    return out * n if n is not None and len(out) == 1 else out


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

    def out_shape(self, in_shape: Shape) -> Shape:
        _recurrent_input(self, in_shape, self.input_dim)
        return (in_shape[0], self.units) if self.return_sequences else (self.units,)

    def macs(self, in_shape: Shape) -> int:
        return self.macs_per_step() * (in_shape[0] or 1)


def _recurrent_input(layer, in_shape: Shape, width: int) -> None:
    if len(in_shape) == 1:
        raise EdgeRNNError(f"layer '{layer.name}' follows a layer that dropped the time axis")
    if len(in_shape) != 2:
        raise EdgeRNNError(f"layer '{layer.name}' takes a sequence (T, features); its input has shape "
                           f"{tuple(in_shape)}: add a Reshape to (T, features) before it")
    if in_shape[1] != width:
        raise EdgeRNNError(f"layer '{layer.name}': input width {in_shape[1]} != {width}")


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

    def out_shape(self, in_shape: Shape) -> Shape:
        _recurrent_input(self, in_shape, self.forward.input_dim)
        return (in_shape[0], self.units) if self.return_sequences else (self.units,)

    def macs(self, in_shape: Shape) -> int:
        return self.macs_per_step() * (in_shape[0] or 1)


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

    def out_shape(self, in_shape: Shape) -> Shape:
        """Applied to the last axis: per step on a sequence, per pixel on an image."""
        if in_shape[-1] != self.kernel.shape[0]:
            raise EdgeRNNError(f"layer '{self.name}': Dense kernel {self.kernel.shape} does not take an input of "
                               f"shape {tuple(in_shape)}")
        return tuple(in_shape[:-1]) + (self.units,)

    def macs(self, in_shape: Shape) -> int:
        return self.macs_per_step() * int(np.prod([d or 1 for d in in_shape[:-1]]))


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

    def out_shape(self, in_shape: Shape) -> Shape:
        return tuple(in_shape)

    def macs(self, in_shape: Shape) -> int:
        return 0


# --- convolutional front-ends, pooling, shape layers -------------------------------------------

CONV_PADDINGS = ("valid", "same", "causal")


@dataclass
class Conv1D:
    """A 1-D convolution over time; ``causal`` pads ``(k - 1) * dilation`` steps before the sequence."""

    name: str
    kernel: np.ndarray  # (k, C_in, C_out)
    bias: np.ndarray  # (C_out,)
    strides: int = 1
    dilation: int = 1
    padding: str = "valid"
    activation: str = "linear"
    kind: str = field(default="conv1d", init=False)

    def __post_init__(self):
        self.kernel = np.asarray(self.kernel, dtype=np.float32)
        if self.kernel.ndim != 3:
            raise EdgeRNNError(f"layer '{self.name}': Conv1D kernel must be (k, C_in, C_out), got {self.kernel.shape}")
        self.bias = _check_shape(self.name, "bias", self.bias, (self.kernel.shape[2],))
        _check_window(self, self.padding, CONV_PADDINGS)
        _check_activation(self.name, self.activation)

    @property
    def units(self) -> int:
        return int(self.kernel.shape[2])

    @property
    def in_channels(self) -> int:
        return int(self.kernel.shape[1])

    @property
    def kernel_size(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def history(self) -> int:
        """Past steps one output reads beyond the current one: ``(k - 1) * dilation``."""
        return (self.kernel_size - 1) * self.dilation

    @property
    def param_count(self) -> int:
        return int(self.kernel.size + self.bias.size)

    def out_shape(self, in_shape: Shape) -> Shape:
        _need_rank(self, in_shape, (2,), "a sequence (T, channels)")
        if in_shape[1] != self.in_channels:
            raise EdgeRNNError(f"layer '{self.name}': kernel {self.kernel.shape} takes {self.in_channels} channels, "
                               f"its input has {in_shape[1]}")
        return (_seq_len(self, in_shape[0], self.kernel_size, self.strides, self.dilation, self.padding), self.units)

    def macs(self, in_shape: Shape) -> int:
        return int((self.out_shape(in_shape)[0] or 1) * self.kernel.size)


@dataclass
class DepthwiseConv1D(Conv1D):
    """Each input channel convolved on its own with ``multiplier`` filters (no mixing)."""

    kind: str = field(default="depthwise_conv1d", init=False)

    def __post_init__(self):
        self.kernel = np.asarray(self.kernel, dtype=np.float32)
        if self.kernel.ndim != 3:
            raise EdgeRNNError(f"layer '{self.name}': DepthwiseConv1D kernel must be (k, C_in, multiplier), "
                               f"got {self.kernel.shape}")
        self.bias = _check_shape(self.name, "bias", self.bias, (self.kernel.shape[1] * self.kernel.shape[2],))
        _check_window(self, self.padding, CONV_PADDINGS)
        _check_activation(self.name, self.activation)

    @property
    def multiplier(self) -> int:
        return int(self.kernel.shape[2])

    @property
    def units(self) -> int:
        return int(self.kernel.shape[1] * self.kernel.shape[2])


@dataclass
class Conv2D:
    """A 2-D convolution over an image ``(T, F, C)``: time on the first axis, e.g. a CRNN's
    spectrogram front-end; a Reshape to ``(T', F' * C')`` makes a sequence again."""

    name: str
    kernel: np.ndarray  # (k_t, k_f, C_in, C_out)
    bias: np.ndarray
    strides: tuple = (1, 1)
    dilation: tuple = (1, 1)
    padding: str = "valid"
    activation: str = "linear"
    kind: str = field(default="conv2d", init=False)

    def __post_init__(self):
        self.kernel = np.asarray(self.kernel, dtype=np.float32)
        if self.kernel.ndim != 4:
            raise EdgeRNNError(f"layer '{self.name}': Conv2D kernel must be (k_t, k_f, C_in, C_out), "
                               f"got {self.kernel.shape}")
        self.bias = _check_shape(self.name, "bias", self.bias, (self.kernel.shape[3],))
        self.strides, self.dilation = _pair(self.strides, 2), _pair(self.dilation, 2)
        _check_window(self, self.padding, ("valid", "same"))
        _check_activation(self.name, self.activation)

    @property
    def units(self) -> int:
        return int(self.kernel.shape[3])

    @property
    def param_count(self) -> int:
        return int(self.kernel.size + self.bias.size)

    def out_shape(self, in_shape: Shape) -> Shape:
        _need_rank(self, in_shape, (3,), "an image (T, F, channels)")
        if in_shape[2] != self.kernel.shape[2]:
            raise EdgeRNNError(f"layer '{self.name}': kernel {self.kernel.shape} takes {self.kernel.shape[2]} "
                               f"channels, its input has {in_shape[2]}")
        t = _seq_len(self, in_shape[0], self.kernel.shape[0], self.strides[0], self.dilation[0], self.padding)
        f = _seq_len(self, in_shape[1], self.kernel.shape[1], self.strides[1], self.dilation[1], self.padding)
        return (t, f, self.units)

    def macs(self, in_shape: Shape) -> int:
        t, f, _ = self.out_shape(in_shape)
        return int((t or 1) * f * self.kernel.size)


def _check_window(layer, padding: str, allowed: tuple) -> None:
    if padding not in allowed:
        raise EdgeRNNError(f"layer '{layer.name}': padding '{padding}' is not supported; use one of {allowed}")


@dataclass
class Pool:
    """MaxPooling1D / AveragePooling1D (``pool`` of one size) or 2-D over an image (two sizes)."""

    name: str
    op: Literal["max", "avg"]
    pool: tuple
    strides: tuple
    padding: str = "valid"
    kind: str = field(default="pool", init=False)

    def __post_init__(self):
        self.pool, self.strides = _pair(self.pool), _pair(self.strides)
        if self.op not in ("max", "avg") or len(self.pool) not in (1, 2) or len(self.strides) != len(self.pool):
            raise EdgeRNNError(f"layer '{self.name}': pool {self.op} {self.pool} strides {self.strides} is not a "
                               "1-D or 2-D max/average pooling")
        _check_window(self, self.padding, ("valid", "same"))

    param_count = 0

    def out_shape(self, in_shape: Shape) -> Shape:
        n = len(self.pool)
        _need_rank(self, in_shape, (n + 1,), "a sequence (T, channels)" if n == 1 else "an image (T, F, channels)")
        return tuple(_seq_len(self, d, p, s, 1, self.padding)
                     for d, p, s in zip(in_shape[:n], self.pool, self.strides)) + (in_shape[-1],)

    def macs(self, in_shape: Shape) -> int:
        return 0


@dataclass
class GlobalPool:
    """GlobalAveragePooling1D / GlobalMaxPooling1D (or 2-D): one value per channel, no time axis."""

    name: str
    op: Literal["max", "avg"]
    kind: str = field(default="global_pool", init=False)

    param_count = 0

    def out_shape(self, in_shape: Shape) -> Shape:
        _need_rank(self, in_shape, (2, 3), "a sequence (T, channels) or an image")
        return (in_shape[-1],)

    def macs(self, in_shape: Shape) -> int:
        return 0


@dataclass
class Reshape:
    """Keras' Reshape (``target_shape`` may hold one -1) and Flatten (``target_shape=(-1,)``)."""

    name: str
    target_shape: tuple
    kind: str = field(default="reshape", init=False)

    def __post_init__(self):
        self.target_shape = tuple(int(d) for d in self.target_shape)
        if sum(d == -1 for d in self.target_shape) > 1 or any(d == 0 or d < -1 for d in self.target_shape) \
                or not 1 <= len(self.target_shape) <= 3:
            raise EdgeRNNError(f"layer '{self.name}': target shape {self.target_shape} is not supported; use 1 to 3 "
                               "positive sizes, at most one -1")

    param_count = 0

    def out_shape(self, in_shape: Shape) -> Shape:
        if in_shape[0] is None:  # any length: only a reshape of each step keeps it
            step = int(np.prod(in_shape[1:]))
            if self.target_shape[0] == -1 and -1 not in self.target_shape[1:] \
                    and int(np.prod(self.target_shape[1:])) == step:
                return (None,) + self.target_shape[1:]
            raise EdgeRNNError(f"layer '{self.name}' (Reshape) needs a fixed number of time steps; give the model "
                               "input a fixed length")
        n = int(np.prod(in_shape))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        out = tuple(n // known if d == -1 else d for d in self.target_shape)
        if int(np.prod(out)) != n:
            raise EdgeRNNError(f"layer '{self.name}': cannot reshape {tuple(in_shape)} ({n} values) to "
                               f"{self.target_shape}")
        return out

    def macs(self, in_shape: Shape) -> int:
        return 0


@dataclass
class Permute:
    """Keras' Permute: ``dims`` 1-based over the non-batch axes (``(2, 1)`` swaps time and channels)."""

    name: str
    dims: tuple
    kind: str = field(default="permute", init=False)

    def __post_init__(self):
        self.dims = tuple(int(d) for d in self.dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise EdgeRNNError(f"layer '{self.name}': dims {self.dims} is not a permutation of 1..{len(self.dims)}")

    param_count = 0

    def out_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) != len(self.dims):
            raise EdgeRNNError(f"layer '{self.name}': dims {self.dims} do not fit an input of shape {tuple(in_shape)}")
        return tuple(in_shape[d - 1] for d in self.dims)

    def macs(self, in_shape: Shape) -> int:
        return 0


@dataclass
class BatchNorm:
    """A BatchNormalization the frontend could not fold into a neighbour: ``x * scale + offset``
    per channel (last axis), what TFLite writes as MUL + ADD."""

    name: str
    scale: np.ndarray
    offset: np.ndarray
    kind: str = field(default="batchnorm", init=False)

    def __post_init__(self):
        self.scale = np.asarray(self.scale, np.float32).reshape(-1)
        self.offset = _check_shape(self.name, "offset", self.offset, self.scale.shape)

    @property
    def units(self) -> int:
        return int(self.scale.size)

    @property
    def param_count(self) -> int:
        return int(2 * self.scale.size)

    def out_shape(self, in_shape: Shape) -> Shape:
        if in_shape[-1] != self.units:
            raise EdgeRNNError(f"layer '{self.name}': {self.units} channels, its input has shape {tuple(in_shape)}")
        return tuple(in_shape)

    def macs(self, in_shape: Shape) -> int:
        return int(np.prod([d or 1 for d in in_shape]))


Layer = Union[Recurrent, Bidirectional, Dense, Activation, Conv1D, DepthwiseConv1D, Conv2D, Pool, GlobalPool,
              Reshape, Permute, BatchNorm]
RECURRENT_KINDS = ("recurrent", "bidirectional")


@dataclass
class Model:
    """A recurrent model: input spec, ordered layers, provenance."""

    name: str
    input: InputSpec
    layers: list[Layer]
    source: str = ""  # file it was read from
    folded_batchnorm: dict[str, str] = field(default_factory=dict)  # BatchNormalization -> layer it went into

    @property
    def recurrent_layers(self) -> list[Layer]:
        return [l for l in self.layers if l.kind in RECURRENT_KINDS]

    @property
    def cells(self) -> list[str]:
        out = []
        for l in self.recurrent_layers:
            out.append(l.cell if l.kind == "recurrent" else l.forward.cell)
        return out

    def shapes(self, timesteps: int | None = None) -> list[tuple[Shape, Shape]]:
        """(input shape, output shape) of every layer, batch axis left out, for ``timesteps``
        steps (default: the model's own, which may be None)."""
        shape: Shape = (timesteps or self.input.timesteps, self.input.features)
        out = []
        for l in self.layers:
            nxt = tuple(l.out_shape(shape))
            out.append((shape, nxt))
            shape = nxt
        return out

    def output_shape(self, timesteps: int | None = None) -> Shape:
        s = self.shapes(timesteps)
        return s[-1][1] if s else (timesteps or self.input.timesteps, self.input.features)

    @property
    def per_step_output(self) -> bool:
        """True when the model gives one output per time step (its output keeps the time axis)."""
        return len(self.output_shape()) == 2

    @property
    def is_bidirectional(self) -> bool:
        return any(l.kind == "bidirectional" for l in self.layers)

    @property
    def output_activation(self) -> str:
        for l in reversed(self.layers):
            act = getattr(l, "activation", "linear")
            if l.kind in ("dense", "activation", "conv1d", "depthwise_conv1d", "conv2d"):
                if act != "linear" or l.kind != "activation":
                    return act
            elif l.kind in RECURRENT_KINDS:
                break
        return "linear"

    @property
    def output_units(self) -> int:
        return int(self.output_shape()[-1])

    @property
    def param_count(self) -> int:
        return sum(l.param_count for l in self.layers)

    def macs(self, timesteps: int | None = None) -> int:
        """Multiply-accumulates per inference over ``timesteps`` steps."""
        t = timesteps or self.input.timesteps or 1
        return sum(l.macs(i) for l, (i, _) in zip(self.layers, self.shapes(t)))

    def summary_rows(self, timesteps: int | None = None) -> list[dict]:
        t = timesteps or self.input.timesteps or 1
        rows = []
        for l, (i, o) in zip(self.layers, self.shapes(t)):
            cell = l.cell if l.kind == "recurrent" else (l.forward.cell if l.kind == "bidirectional" else "")
            rows.append({"name": l.name, "kind": l.kind, "cell": cell,
                         "units": int(o[-1]) if l.kind != "activation" else getattr(l, "units", 0),
                         "params": l.param_count, "macs": l.macs(i), "output_shape": list(o)})
        return rows
