"""Native backend: the int8 .tflite compiled into plain C99 (no interpreter, no malloc).

* :func:`emit_native` writes ``NAME.h``/``NAME.c`` plus the kernels from
  ``firmware_templates/native/``;
* :func:`run_native` compiles them on the host and runs a batch of int8 inputs;
* :mod:`.lstm` (fused LSTM models) and :mod:`.loop` (WHILE-loop models) read the flatbuffer
  into the :mod:`.plan` the C is rendered from, every constant computed the way TFLM's
  Prepare does (:mod:`.prepare`);
* :mod:`.fastlstm` lays the LSTM weights out for the target's fast kernels (SMLAD row pairs on
  Cortex-M4/M7/M33, int8 rows for Helium and plain C) and :mod:`.tables` derives their
  activation tables, each checked at generation time;
* :mod:`.program` takes any other graph of supported ops (convolutions, pools, reductions,
  copies, elementwise ops around the recurrent layers): one time step per call when it can
  (:mod:`.stream`), whole tensors otherwise (:mod:`.graph`), each op by :mod:`.tensorops`.
"""

from .emit import emit_native
from .host import NativeBuild, run_native

__all__ = ["emit_native", "run_native", "NativeBuild"]
