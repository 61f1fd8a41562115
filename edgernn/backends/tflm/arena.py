"""The exact minimum TFLM tensor arena, found by bisection with probes in child processes.

``tflite_micro.runtime.Interpreter.from_bytes(b, arena_size=N)`` fails when N is too small,
sometimes by crashing the process (an LSTM at T=25 segfaults), so every probe runs in its own
child. The first probe, with a large arena, reads TFLM's own allocation total as the
starting upper bound.

The number is measured on this host (64-bit pointers); on a 32-bit microcontroller TFLM's
bookkeeping structs are smaller, so the host figure is an upper bound for the device.
``ARENA_MARGIN_BYTES`` is added on top when firmware is emitted.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from functools import lru_cache
from hashlib import sha256
from pathlib import Path

from ...errors import EdgeRNNError

# Emitted arenas are the measured minimum plus this margin: TFLM's allocator keeps a few
# alignment paddings that depend on the arena's start address, and a build of TFLM other than
# the Python runtime's may add persistent buffers (e.g. CMSIS-NN scratch). 1 KiB covers both.
ARENA_MARGIN_BYTES = 1024
_MAX_ARENA = 64 * 1024 * 1024

_PROBE = r"""
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], 'rb').read()
it = runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[2]))
d = it.get_input_details(0)
it.set_input(np.zeros(d['shape'], d['dtype']), 0)
it.invoke()
if sys.argv[3] == '1':
    it.print_allocations()
print('EDGERNN_PROBE_OK', flush=True)
"""


def _probe(path: Path, arena: int, report: bool = False) -> tuple[bool, str]:
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(arena), "1" if report else "0"],
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, ""
    return proc.returncode == 0 and "EDGERNN_PROBE_OK" in proc.stdout, proc.stdout + proc.stderr


@lru_cache(maxsize=64)
def _min_arena_cached(digest: str, raw: bytes) -> int:
    with tempfile.TemporaryDirectory(prefix="edgernn-arena-") as tmp:
        path = Path(tmp, "m.tflite")
        path.write_bytes(raw)
        hi = 256 * 1024
        while True:
            ok, out = _probe(path, hi, report=True)
            if ok:
                break
            hi *= 4
            if hi > _MAX_ARENA:
                raise EdgeRNNError(f"the model does not run in TFLM with a {_MAX_ARENA // 2**20} MiB arena: "
                                   f"{(out.strip().splitlines() or ['no output'])[-1]}")
        m = re.search(r"Arena allocation total (\d+) bytes", out)
        if m:
            hint = int(m.group(1))
            if _probe(path, hint)[0]:
                hi = hint
        lo = 0  # invariant: lo fails (or is 0), hi works
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _probe(path, mid)[0]:
                hi = mid
            else:
                lo = mid
        return hi


def min_arena_bytes(tflite: bytes) -> int:
    """The smallest arena (bytes) with which the model allocates and invokes in TFLM."""
    return _min_arena_cached(sha256(tflite).hexdigest(), bytes(tflite))
