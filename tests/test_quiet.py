"""``import edgernn`` keeps TensorFlow's C++ start-up lines (oneDNN, CUDA probes, absl's
pre-init notice) off stderr, as the CLI does, through the whole API; EDGERNN_VERBOSE=1 keeps them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, **env) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EDGERNN_VERBOSE")}
    e.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=600)


def test_api_is_quiet_unless_verbose(lstm_keras):
    code = ("import edgernn, keras\n"
            f"edgernn.load_model({str(lstm_keras)!r})\n"
            f"edgernn.inspect({str(lstm_keras)!r})\n"
            "print('ok')\n")
    quiet = _run(code)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "ok", quiet.stderr[-2000:]
    assert quiet.stderr == "", quiet.stderr[-2000:]
    loud = _run("import edgernn, keras", EDGERNN_VERBOSE="1")
    assert loud.returncode == 0
    assert "oneDNN" in loud.stderr or "cuda" in loud.stderr.lower(), loud.stderr[-2000:]
