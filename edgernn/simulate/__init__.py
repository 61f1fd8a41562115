"""Bit-exact numpy simulator of int8 TFLite Micro models, vectorized over a batch of samples.

    from edgernn.simulate import Simulator
    sim = Simulator.from_file("model.tflite")           # or Simulator.from_bytes(data)
    y = sim.run(sim.quantize_input(x_float))            # (N, ...) int8, equal to TFLM's outputs
    probs = sim.dequantize_output(y)
    y, tensors = sim.run(x_int8, capture=True)          # every intermediate tensor by name
    sim.run(x_step, stateful=True); sim.reset()         # --streaming models: state across calls

Each ``run`` starts from the model's initial state, like TFLM after ``reset()``; the
TFLM-style ``set_input`` / ``invoke`` / ``get_output`` keep state until ``reset()`` as TFLM does.
``engine="numba"`` (the default when numba is installed) runs the LSTM time loop, edgernn's
WHILE loops (GRU, SimpleRNN, Bidirectional), FULLY_CONNECTED and the int8 binary ops as
compiled kernels (:mod:`._fast`, :mod:`.loop`); ``engine="numpy"`` runs the reference
kernels; both give the same bits.

The fixed-point arithmetic is :mod:`edgernn.fixedpoint` (shared with the native backend, whose
C kernels mirror it). :mod:`.ops` holds the kernel base and the FULLY_CONNECTED / SOFTMAX /
shape kernels, :mod:`.lstm` the fused LSTM, :mod:`.elementwise` the elementwise kernels,
:mod:`.conv` CONV_2D / DEPTHWISE_CONV_2D, :mod:`.reduce` the pools and reductions, :mod:`.shape`
PAD / TRANSPOSE / PACK and the other copies, :mod:`.control` WHILE (compiled by :mod:`.loop`). The per-layer float-vs-int8 report is
:mod:`edgernn.validate.diagnostics`.
"""

from .simulator import Simulator, simulate

__all__ = ["Simulator", "simulate"]
