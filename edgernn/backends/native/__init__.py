"""Native backend: the int8 .tflite compiled into plain C99 (no interpreter, no malloc).

* :func:`emit_native` writes ``NAME.h``/``NAME.c`` plus the kernels from
  ``firmware_templates/native/``;
* :func:`run_native` compiles them on the host and runs a batch of int8 inputs;
* :mod:`.plan` reads the flatbuffer and computes every constant the way TFLM's Prepare does.
"""

from .emit import emit_native
from .host import NativeBuild, run_native

__all__ = ["emit_native", "run_native", "NativeBuild"]
