"""The simulator: an interpreter of int8 ``.tflite`` graphs over a batch of samples.

Its API mirrors TFLM's Python runtime (``from_file`` / ``from_bytes``), but ``run`` takes
N samples at once: the model's batch dimension is 1 and the simulator runs every sample
through each op in one vectorized call. Each run starts from the model's initial variable
tensors (zero LSTM states), i.e. like TFLM's ``reset()`` before every sample.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from .. import fixedpoint as fp
from .. import tflite_model
from ..errors import EdgeRNNError
from . import control, conv, elementwise, lstm, reduce, shape  # noqa: F401 - they register their kernels
from .ops import KERNELS, Val, _NP, scale_of, zp_of


_BLAS_CONTROLLER = None


def _one_blas_thread():
    """The simulator's matrix products are small: a multi-threaded BLAS mostly waits on its
    threads (several times slower on a busy machine), so run them on one thread when
    threadpoolctl is installed. The library scan is done once (it costs ~0.4 ms a call)."""
    global _BLAS_CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


#: what a kernel's preparation raises on an operator no TFLite writer makes (wrong tensor
#: types or counts, missing options, zero scales)
_DAMAGED = (IndexError, KeyError, TypeError, AttributeError, ValueError, ZeroDivisionError, OverflowError)


class _Graph:
    """One prepared subgraph: its kernels in execution order."""

    def __init__(self, sim: Simulator, index: int):
        self.index = index
        self.sg = sim.model.subgraphs[index]
        self.kernels = []
        for i, op in enumerate(self.sg.operators):
            cls = KERNELS.get(op.opcode)
            if cls is None:
                raise EdgeRNNError(
                    f"{sim.model.path}: op {op.opcode} (subgraph {index}) is not supported by the int8 simulator; "
                    f"supported: {', '.join(sorted(KERNELS))}")
            try:
                self.kernels.append(cls(sim, self.sg, op))
            except EdgeRNNError:
                raise
            except _DAMAGED as exc:  # an operator the reader accepted but no TFLite writer makes
                raise EdgeRNNError(f"{sim.model.path}: op {op.opcode} (subgraph {index}, operator {i}) cannot be "
                                   f"prepared ({type(exc).__name__}: {exc}); the file is damaged or was not "
                                   "written by a TFLite converter") from None
        for k in self.kernels:  # kernels that adapt to how their outputs are read
            if hasattr(k, "link"):
                k.link(self.kernels)


class Simulator:
    """Bit-exact int8 simulator of a TFLite Micro model.

    ``Simulator.from_file(path)`` / ``Simulator.from_bytes(data)``; ``run(x_int8)`` with x of
    shape (N, *input_shape[1:]) returns the int8 outputs (N, *output_shape[1:]) — or a list
    of them when the model has several outputs.
    """

    ENGINES = ("auto", "numpy", "numba")

    def __init__(self, model: tflite_model.TFLiteModel, engine: str = "auto"):
        from . import _fast

        if engine not in self.ENGINES:
            raise EdgeRNNError(f"engine '{engine}': choose one of {', '.join(self.ENGINES)}")
        if engine == "numba" and _fast.numba is None:
            raise EdgeRNNError("engine 'numba': numba is not installed (pip install numba) — use engine='numpy'")
        #: "numba" runs the recurrent loops and the heavy kernels compiled; "numpy" the reference
        #: numpy kernels. Same bits.
        self.engine = "numba" if engine == "numba" or (engine == "auto" and _fast.AVAILABLE) else "numpy"
        self.model = model
        self.path = model.path
        self.graphs = [_Graph(self, i) for i in range(len(model.subgraphs))]
        self._captured: dict[str, np.ndarray] | None = None
        self._capture_steps = 0  # run(capture_steps=True): N, to keep WHILE loop variables after every iteration
        self._state: dict[int, Val] = {}  # main-graph variable tensors kept by run(stateful=True)
        self._stateful = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_file(cls, path: str | os.PathLike, engine: str = "auto") -> Simulator:
        return cls(tflite_model.read(path), engine=engine)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>", engine: str = "auto") -> Simulator:
        return cls(tflite_model.parse(bytes(data), name), engine=engine)

    # ------------------------------------------------------------------ details (as TFLM's runtime)
    def _details(self, t) -> dict:
        return {"name": t.name, "dtype": _NP.get(t.dtype, t.dtype), "shape": np.array(t.shape, np.int32),
                "quantization_parameters": {
                    "scales": np.asarray(t.scale if t.scale is not None else [], np.float32),
                    "zero_points": np.asarray(t.zero_point if t.zero_point is not None else [], np.int32),
                    "quantized_dimension": t.quantized_dimension}}

    def get_input_details(self, i: int = 0) -> dict:
        return self._details(self.model.input(i))

    def get_output_details(self, i: int = 0) -> dict:
        return self._details(self.model.output(i))

    @property
    def num_inputs(self) -> int:
        return len(self.model.main.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.model.main.outputs)

    # ------------------------------------------------------------------ (de)quantization
    def quantize_input(self, x_float, i: int = 0) -> np.ndarray:
        """Float inputs -> int8 exactly as TFLM's QUANTIZE: ``round(x / scale) + zp``, clamped.

        ``x / scale`` is a float32 division (``val / static_cast<float>(scale)``), rounded half
        away from zero (``TfLiteRound``).
        """
        t = self.model.input(i)
        if t.dtype not in ("int8", "int16"):
            raise EdgeRNNError(f"{self.path}: input '{t.name}' is {t.dtype}, not a quantized integer tensor")
        q = fp.round_half_away(np.asarray(x_float, np.float32) / np.float32(scale_of(t))) + zp_of(t)
        lo, hi = (-128, 127) if t.dtype == "int8" else (-32768, 32767)
        return np.clip(q, lo, hi).astype(_NP[t.dtype])

    def dequantize_output(self, y, i: int = 0) -> np.ndarray:
        """Int8 outputs -> float32 as TFLM's DEQUANTIZE: ``float(double(scale) * (y - zp))``."""
        t = self.model.output(i)
        return (float(np.float32(scale_of(t))) * (np.asarray(y, np.int64) - zp_of(t))).astype(np.float32)

    # ------------------------------------------------------------------ running
    def reset(self) -> None:
        """Forget the state kept by ``run(stateful=True)`` / ``invoke()`` (TFLM's ``reset()``)."""
        self._state = {}

    # TFLM-runtime style calls, for code written against tflite_micro.runtime.Interpreter
    def set_input(self, x, i: int = 0) -> None:
        """Stage input ``i`` (N samples, as :meth:`run` takes them) for :meth:`invoke`."""
        if not hasattr(self, "_staged"):
            self._staged: dict[int, np.ndarray] = {}
        self._staged[i] = np.asarray(x)

    def invoke(self) -> None:
        """Run the staged inputs. Like TFLM, variable tensors persist between invokes until
        :meth:`reset` (call it before each new sequence of a whole-sequence model)."""
        staged = getattr(self, "_staged", {})
        missing = [i for i in range(self.num_inputs) if i not in staged]
        if missing:
            raise EdgeRNNError(f"{self.path}: set_input() was not called for input(s) {missing}")
        out = self.run(*(staged[i] for i in range(self.num_inputs)), stateful=True)
        self._outputs = out if isinstance(out, list) else [out]

    def get_output(self, i: int = 0) -> np.ndarray:
        """Output ``i`` of the last :meth:`invoke`, (N, *shape[1:])."""
        if not hasattr(self, "_outputs"):
            raise EdgeRNNError(f"{self.path}: call invoke() before get_output()")
        return self._outputs[i]

    def run(self, *inputs, capture: bool = False, stateful: bool = False, capture_steps: bool = False):
        """Run N samples. Each input: (N, *shape[1:]) (or the full (N, *shape) when shape[0] != 1).

        Returns the output array (N, *out_shape[1:]) — a list when the model has several outputs.
        With ``capture=True`` returns ``(outputs, tensors)`` where ``tensors`` maps every tensor
        name of the main graph (and each LSTM's final states, as ``'<state>:final'``) to its
        int8/int16/int32 values with a leading axis of N.

        By default every run starts from the initial variable tensors (a whole-sequence model
        needs nothing else). ``stateful=True`` keeps the variable tensors (the RNN state of a
        ``--streaming`` one-step model) from one call to the next, per sample, like TFLM's
        interpreter between two ``invoke()`` without ``reset()``; :meth:`reset` clears them.

        ``capture_steps=True`` (with ``capture``) also keeps every variable of each main-graph
        WHILE loop after every iteration, as ``'<loop output name>:steps'`` with shape
        (N, iterations, ...): a recurrent loop's hidden state at each time step. The loops then
        run op by op (same bits, slower).
        """
        if len(inputs) != self.num_inputs:
            raise EdgeRNNError(f"{self.path}: the model has {self.num_inputs} input(s), got {len(inputs)}")
        vals = []
        n = None
        for i, x in enumerate(inputs):
            t = self.model.input(i)
            x = np.asarray(x)
            want = tuple(t.shape[1:]) if t.shape and t.shape[0] == 1 else tuple(t.shape)
            if x.shape[1:] == want and t.shape and t.shape[0] == 1:
                x = x.reshape((x.shape[0], 1) + want)
            elif x.shape[1:] != tuple(t.shape):
                raise EdgeRNNError(f"{self.path}: input '{t.name}' has shape {x.shape}; "
                                   f"expected (N, {', '.join(map(str, want))})")
            if x.dtype != _NP.get(t.dtype):
                raise EdgeRNNError(f"{self.path}: input '{t.name}' must be {t.dtype} (got {x.dtype}); "
                                   "use quantize_input() on float data")
            if n is not None and x.shape[0] != n:
                raise EdgeRNNError(f"{self.path}: inputs disagree on the number of samples")
            n = x.shape[0]
            vals.append(Val(x, True))
        self._captured = {} if capture else None
        self._capture_steps = n if capture and capture_steps else 0  # the number of samples
        self._stateful = stateful
        if stateful and self._state and any(v.batched and v.a.shape[0] != n for v in self._state.values()):
            raise EdgeRNNError(f"{self.path}: the kept state is for another number of samples; call reset() first")
        try:
            with _one_blas_thread():
                outs = self.run_subgraph(0, vals)
        finally:
            self._stateful = False
            self._capture_steps = 0
        result = []
        for i, v in enumerate(outs):
            t = self.model.output(i)
            a = v.a if v.batched else np.broadcast_to(v.a, (n,) + v.a.shape)
            if t.shape and t.shape[0] == 1 and a.ndim >= 2:
                a = a.reshape((a.shape[0],) + a.shape[2:])
            result.append(np.ascontiguousarray(a))
        out = result[0] if len(result) == 1 else result
        if capture:
            cap = {k: (a if a.shape[:1] == (n,) else np.broadcast_to(a, (n,) + a.shape))
                   for k, a in self._captured.items()}
            self._captured = None
            return out, cap
        return out

    def run_subgraph(self, index: int, inputs: list[Val]) -> list[Val]:
        """Run subgraph ``index`` on ``inputs``; returns its outputs (used by WHILE too)."""
        g = self.graphs[index]
        sg = g.sg
        env: dict[int, Val] = {}
        for t in sg.tensors:
            if t.data is not None:
                env[t.index] = Val(t.data, False)
            elif t.is_variable:
                # TFLM's ResetVariableTensors: int8 variables start at their zero point, others at 0.
                fill = zp_of(t) if t.dtype == "int8" else 0
                env[t.index] = Val(np.full(t.shape, fill, _NP.get(t.dtype, np.int8)), False)
        if index == 0 and self._stateful:
            env.update(self._state)
        for idx, v in zip(sg.inputs, inputs):
            env[idx] = v
        capture = self._captured is not None and index == 0
        if capture:
            for idx, v in zip(sg.inputs, inputs):
                self._captured[sg.tensors[idx].name] = v.a
        for k in g.kernels:
            ins = []
            for i in k.op.inputs:
                if i < 0:
                    ins.append(None)
                elif i not in env:
                    raise EdgeRNNError(f"{self.path}: tensor '{sg.tensors[i].name}' is read before it is written")
                else:
                    ins.append(env[i])
            outs = k(ins)
            for i, v in zip(k.op.outputs, outs):
                env[i] = v
                if capture:
                    self._captured[sg.tensors[i].name] = v.a
            if getattr(k, "state_updates", None):  # kernels that write variable tensors in place (LSTM)
                env.update(k.state_updates)
            if capture and getattr(k, "captured", None):
                self._captured.update(k.captured)
        if index == 0 and self._stateful:
            self._state = {t.index: env[t.index] for t in sg.tensors if t.is_variable}
        return [env[i] for i in sg.outputs]


def simulate(model, x_int8, capture: bool = False):
    """One-call form: ``simulate('model.tflite', x_int8)`` -> int8 outputs."""
    sim = model if isinstance(model, Simulator) else (
        Simulator.from_bytes(model) if isinstance(model, (bytes, bytearray)) else Simulator.from_file(Path(model)))
    return sim.run(x_int8, capture=capture)
