"""Run crash-prone TensorFlow work (the converter, TFLM arena probes) in a child process.

The TFLite converter and the TFLM runtime can take the whole process down with a segfault;
running them in a child turns that into an ordinary error with a clear message.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def run_child(module: str, payload, *, timeout: float = 900) -> tuple[int, object, str]:
    """Run ``python -m module IN OUT`` with ``payload`` pickled to IN.

    Returns (returncode, unpickled result or None, stderr tail). A negative return code is
    the signal that killed the child.
    """
    with tempfile.TemporaryDirectory(prefix="edgernn-child-") as tmp:
        src, dst = Path(tmp, "in.pkl"), Path(tmp, "out.pkl")
        src.write_bytes(pickle.dumps(payload))
        proc = subprocess.run([sys.executable, "-m", module, str(src), str(dst)], capture_output=True,
                              text=True, timeout=timeout, env=_env())
        result = pickle.loads(dst.read_bytes()) if dst.exists() else None
        tail = "\n".join(l for l in proc.stderr.splitlines()[-20:])
        return proc.returncode, result, tail


def describe_returncode(rc: int) -> str:
    if rc < 0:
        try:
            return f"crashed with {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with status {rc}"


def child_main(fn):
    """Entry point for a child module: ``fn(payload) -> result``; errors go to stderr."""
    src, dst = sys.argv[1], sys.argv[2]
    payload = pickle.loads(Path(src).read_bytes())
    result = fn(payload)
    Path(dst).write_bytes(pickle.dumps(result))
