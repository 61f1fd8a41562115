"""Bit-exact numpy simulator of int8 TFLite Micro models, vectorized over a batch of samples.

    from edgernn.simulate import Simulator
    sim = Simulator.from_file("model.tflite")
    y = sim.run(sim.quantize_input(x_float))            # (N, ...) int8, equal to TFLM's outputs
    probs = sim.dequantize_output(y)
    y, tensors = sim.run(x_int8, capture=True)          # every intermediate tensor by name

:mod:`.fixedpoint` holds the shared fixed-point helpers (the C twins mirror them) and
:mod:`.diagnostics` the per-layer float-vs-int8 report.
"""

from .simulator import Simulator, simulate

__all__ = ["Simulator", "simulate"]
