"""Control flow: the WHILE kernel, mirroring TFLM's.

edgernn's recurrent loops run as one compiled kernel (:mod:`.loop`) with the "numba" engine;
any other loop, or the "numpy" engine, runs the cond and body subgraphs op by op.
"""

from __future__ import annotations

import numpy as np

from .loop import MAX_WHILE_ITERATIONS, CompiledLoop, Unsupported
from .ops import Kernel, Val, kernel


@kernel("WHILE")
class While(Kernel):
    """TFLM WHILE: run the cond subgraph on the loop variables, then the body, until cond is false.

    The condition must be the same for every sample of the batch (true for the RNN loops the
    converter emits: their trip count is the number of time steps).
    """

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        self.cond = int(self.opts.condSubgraphIndex)
        self.body = int(self.opts.bodySubgraphIndex)

    def __call__(self, ins):
        steps = [] if self.sim._capture_steps and self.sg is self.sim.model.main else None
        self.captured = None
        if self.sim.engine == "numba" and steps is None:  # edgernn's recurrent loops: one compiled kernel
            from . import _fast

            if not hasattr(self, "compiled"):
                self.compiled = CompiledLoop.build(self)
            if self.compiled is not None:
                try:
                    return self.compiled(ins)
                except Unsupported:
                    pass
                except Exception as exc:
                    _fast.fall_back(self.sim, "WHILE loop", exc)
        vals = list(ins)
        for _ in range(MAX_WHILE_ITERATIONS):
            c = self.sim.run_subgraph(self.cond, vals)[0]
            flag = np.asarray(c.a).reshape(c.a.shape[0], -1) if c.batched else np.asarray(c.a).reshape(1, -1)
            if not (flag == flag[:1]).all():
                self.fail("the loop condition differs between samples; simulate them one at a time")
            if not bool(flag.reshape(-1)[0]):
                if steps:
                    n = self.sim._capture_steps
                    self.captured = {f"{self.sg.tensors[o].name}:steps": self._stack(s, n) for o, s in
                                     zip(self.op.outputs, zip(*steps))}
                return vals
            new = self.sim.run_subgraph(self.body, vals)
            vals = [Val(np.asarray(v.a), v.batched) for v in new]
            if steps is not None:
                steps.append(vals)
        self.fail(f"more than {MAX_WHILE_ITERATIONS} iterations")

    @staticmethod
    def _stack(vals, n: int) -> np.ndarray:
        """One loop variable over the iterations: (N, iterations, ...)."""
        return np.stack([v.a if v.batched else np.broadcast_to(v.a, (n,) + v.a.shape) for v in vals], axis=1)
