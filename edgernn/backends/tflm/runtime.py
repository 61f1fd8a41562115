"""Run an int8 flatbuffer in the real TFLM interpreter (``tflite_micro.runtime``), sample by sample."""

from __future__ import annotations

import numpy as np

from ...fixedpoint import round_half_away
from .arena import min_arena_bytes


def host_arena_bytes(tflite: bytes) -> int:
    """The runtime's minimum arena: replayed (:mod:`.allocator`) when every op is in its table,
    otherwise measured by bisection (slower: one child process per probe)."""
    from ...tflite_model import parse
    from .allocator import replay

    try:
        arena = replay(parse(tflite), "x86-64")
    except Exception:  # noqa: BLE001 - any model the replay cannot read is measured instead
        return min_arena_bytes(tflite)
    return arena.minimum if arena.exact else min_arena_bytes(tflite)


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float -> int8 as TFLM's QUANTIZE and the generated C do it.

    ``q = round(x / scale) + zero_point`` in float32, rounding half away from zero
    (``std::round``/``lroundf``), clamped to [-128, 127].
    """
    r = round_half_away(np.asarray(x, np.float32) / np.float32(scale))
    return np.clip(r.astype(np.int64) + zero_point, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.int32) - zero_point) * np.float32(scale)).astype(np.float32)


class TFLMRunner:
    """A TFLM interpreter for a model, with an arena large enough for it."""

    def __init__(self, tflite: bytes, arena_size: int | None = None):
        from tflite_micro.python.tflite_micro import runtime

        self.raw = bytes(tflite)
        arena = arena_size or (host_arena_bytes(self.raw) * 2 + 4096)
        self.interpreter = runtime.Interpreter.from_bytes(self.raw, arena_size=arena)
        self.input_details = self.interpreter.get_input_details(0)
        self.output_details = self.interpreter.get_output_details(0)

    @property
    def input_quant(self) -> tuple[float, int]:
        q = self.input_details["quantization_parameters"]
        return float(q["scales"][0]), int(q["zero_points"][0])

    @property
    def output_quant(self) -> tuple[float, int]:
        q = self.output_details["quantization_parameters"]
        return float(q["scales"][0]), int(q["zero_points"][0])

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        return quantize(x, *self.input_quant)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        return dequantize(y, *self.output_quant)

    def run(self, x_int8: np.ndarray) -> np.ndarray:
        """int8 inputs (N, *input_shape[1:]) -> int8 outputs (N, *output_shape[1:]); state reset per sample."""
        shape = tuple(self.input_details["shape"])
        outs = []
        for sample in x_int8:
            self.interpreter.reset()
            self.interpreter.set_input(sample.reshape(shape).astype(np.int8), 0)
            self.interpreter.invoke()
            outs.append(np.array(self.interpreter.get_output(0))[0])
        return np.stack(outs) if outs else np.zeros((0,) + tuple(self.output_details["shape"][1:]), np.int8)


def tflm_outputs(tflite: bytes, x: np.ndarray, *, arena_size: int = 400_000) -> np.ndarray:
    """Run an int8 flatbuffer in the TFLM runtime on each sample of ``x``; dequantized outputs
    (N, outputs per sample). ``arena_size``: large enough for the bench models (no bisection)."""
    runner = TFLMRunner(tflite, arena_size=arena_size)
    out = runner.dequantize_output(runner.run(runner.quantize_input(np.asarray(x, np.float32))))
    return out.reshape(len(out), -1)
