"""The README's main command: the quickstart runs end to end and prints its summary."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quickstart(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), "--out", str(tmp_path),
                        "--epochs", "40"], capture_output=True, text=True, timeout=1200,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for needle in ("float accuracy", "int8 accuracy", "top-1 agreement", "flatbuffer", "TFLM arena (exact)",
                   "native C vs TFLM 0 LSB", "Cortex-M4 (QEMU)      PASS", "thresholds            PASS"):
        assert needle in r.stdout, needle
    assert (tmp_path / "firmware_tflm" / "model_data.cc").exists()
    assert (tmp_path / "validate.json").exists()
