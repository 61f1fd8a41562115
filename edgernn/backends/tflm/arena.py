"""The TFLM tensor arena: measured on this host, and sized for a device.

Two sources, checked against each other:

* :func:`min_arena_bytes`, the exact minimum on this host, by bisection with probes of
  ``tflite_micro.runtime`` in child processes (``Interpreter.from_bytes(b, arena_size=N)``
  fails when N is too small, sometimes by crashing the process: an LSTM at T=25 segfaults).
  64-bit pointers, reference kernels.
* :func:`size_arena`, what emitted firmware allocates: :func:`.allocator.replay` of TFLM's
  allocator for the kernel set (reference or CMSIS-NN) and a 32-bit Cortex-M ABI, and for a
  64-bit host build. Before it is trusted, the same replay in the runtime's own ABI must equal
  the head and tail the runtime records for this model (:func:`recorded_head_tail`); when it
  does not (an op the table lacks, a TFLM change), the host figure falls back to the bisected
  minimum and the margin grows (:data:`FALLBACK_MARGIN_FRACTION`).

The margin on top of the minimum is proportional (:func:`arena_margin`): 2 % and at least
128 bytes. It covers what differs between builds of the same TFLM: the arena's start address
(TFLM aligns it up to 16), ``USE_TFLM_COMPRESSION`` (+4 bytes a subgraph, +8 per FC or conv
OpData), and struct growth between TFLM releases (e.g. OpDataReduce 36 -> 44 bytes). The
enum size is not left to the margin: the device figure is the larger of the short-enum
(arm-none-eabi-gcc's default) and int-enum builds.
"""

from __future__ import annotations

import re
import subprocess
import warnings
from dataclasses import dataclass
import sys
import tempfile
from functools import lru_cache
from hashlib import sha256
from pathlib import Path

from ...errors import EdgeRNNError
from ...tflite_model import TFLiteModel
from .allocator import KERNELS, Arena, replay, up

MARGIN_FRACTION = 0.02
MARGIN_MIN_BYTES = 128
# When the replay could not be checked against the runtime (unknown op, TFLM drift).
FALLBACK_MARGIN_FRACTION = 0.10
FALLBACK_MARGIN_MIN_BYTES = 1024
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


@lru_cache(maxsize=64)
def _recorded_cached(digest: str, raw: bytes) -> tuple[int, int] | None:
    with tempfile.TemporaryDirectory(prefix="edgernn-arena-") as tmp:
        path = Path(tmp, "m.tflite")
        path.write_bytes(raw)
        ok, out = _probe(path, 4 * 1024 * 1024, report=True)
    head = re.search(r"Arena allocation head (\d+) bytes", out)
    tail = re.search(r"Arena allocation tail (\d+) bytes", out)
    return (int(head.group(1)), int(tail.group(1))) if ok and head and tail else None


def recorded_head_tail(tflite: bytes) -> tuple[int, int] | None:
    """(head, tail) bytes ``tflite_micro.runtime`` records after AllocateTensors (None if it fails)."""
    return _recorded_cached(sha256(tflite).hexdigest(), bytes(tflite))


def arena_margin(minimum: int, fraction: float = MARGIN_FRACTION, at_least: int = MARGIN_MIN_BYTES) -> int:
    return up(max(at_least, int(minimum * fraction + 0.999)), 16)


@dataclass
class ArenaSizing:
    """The arena emitted firmware allocates, for a 32-bit Cortex-M and for a 64-bit host build."""

    kernels: str
    core: str
    device: Arena  # Cortex-M, short enums (arm-none-eabi-gcc)
    device_int_enums: Arena  # Cortex-M built with -fno-short-enums
    host: Arena  # 64-bit, as tflite_micro.runtime (recording allocator, the largest host build)
    checked: bool  # the replay equals the runtime's own record for this model
    host_bisected: int | None = None  # measured minimum, used when not checked

    @property
    def device_minimum(self) -> int:
        return max(self.device.minimum, self.device_int_enums.minimum)

    @property
    def host_minimum(self) -> int:
        return self.host.minimum if self.checked else max(self.host.minimum, self.host_bisected or 0)

    def _margin(self, minimum: int) -> int:
        if self.checked:
            return arena_margin(minimum)
        return arena_margin(minimum, FALLBACK_MARGIN_FRACTION, FALLBACK_MARGIN_MIN_BYTES)

    @property
    def device_bytes(self) -> int:
        return self.device_minimum + self._margin(self.device_minimum)

    @property
    def host_bytes(self) -> int:
        return self.host_minimum + self._margin(self.host_minimum)


def size_arena(m: TFLiteModel, kernels: str = "reference", core: str = "cortex-m4") -> ArenaSizing:
    """The arena for ``m`` with TFLM's ``kernels`` on ``core`` (and on a 64-bit host), checked
    against the runtime; see the module docstring."""
    if kernels not in KERNELS:
        raise EdgeRNNError(f"--kernels {kernels!r}: use one of {', '.join(KERNELS)}")
    device = replay(m, "cortex-m", kernels, core)
    sizing = ArenaSizing(kernels=kernels, core=core, device=device,
                         device_int_enums=replay(m, "cortex-m-int-enums", kernels, core),
                         host=replay(m, "x86-64", kernels, "host"), checked=False)
    reference_host = sizing.host if kernels == "reference" else replay(m, "x86-64", "reference", "host")
    recorded = recorded_head_tail(m.raw) if device.exact else None
    sizing.checked = recorded == (reference_host.head, reference_host.tail)
    if not sizing.checked:
        why = (f"ops {', '.join(device.unknown_ops)} are not in edgernn's table of TFLM allocations"
               if device.unknown_ops else f"the runtime records head/tail {recorded}, the replay "
               f"{(reference_host.head, reference_host.tail)}")
        warnings.warn(f"{m.path}: TFLM arena not exactly known ({why}); sizing it with a "
                      f"{int(FALLBACK_MARGIN_FRACTION * 100)} % margin", stacklevel=2)
        sizing.host_bisected = min_arena_bytes(m.raw)
    return sizing
