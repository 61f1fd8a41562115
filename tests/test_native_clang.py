"""The native backend's C built with clang (Debian's clang-14, installed by scripts/setup.sh).

Many firmware teams build with clang or Arm's armclang (Keil MDK, clang-based), not gcc:

* on the host, the emitted model and harness compile under ``-Wall -Wextra -Werror -pedantic``
  with clang and equal TFLM bit for bit (an LSTM, a stacked int16-state GRU, an int8-state
  SimpleRNN, a DeepConvLSTM hybrid);
* for the Cortex-M55 (Helium), every emitted source compiles warnings-free with clang. The
  Helium kernels take chunk widths and shift counts as immediates that only gcc's constant
  propagation provides, so clang gets the C twin there (``edgernn_rows.h`` EDGERNN_USE_MVE;
  clang's own auto-vectorizer may still use Helium on it).
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import edgernn
from edgernn.backends.native import emit_native
from edgernn.backends.native.host import C_FLAGS, NativeBuild, compile_c
from edgernn.backends.tflm.runtime import TFLMRunner

from conftest import Spec, load_npz

CLANG = "clang-14"
M55_FLAGS = ("--target=arm-none-eabi", "-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard",
             "-isystem", "/usr/lib/arm-none-eabi/include")

# (spec, convert's --state): the same zoo models as other test files, so the session trains each once
MODELS = {
    "lstm32": (Spec(), "int16"),
    "gru32x2": (Spec(cell="gru", layers=2), "int16"),
    "rnn16-int8": (Spec(cell="rnn", dataset="digits", units=16, epochs=20), "int8"),
    "deepconvlstm": (Spec(cell="lstm", units=32, conv=("16:5", "16:5"), pool=4, epochs=30, seed=1), "int16"),
}


@pytest.fixture(scope="module")
def flatbuffers(zoo, tmp_path_factory):
    out = tmp_path_factory.mktemp("clang")
    paths = {}
    for key, (spec, state) in MODELS.items():
        if state == "int16":
            paths[key] = zoo.tflite(spec)
        else:
            paths[key] = out / f"{key}.tflite"
            edgernn.convert(zoo.keras(spec), calib=zoo.data(spec.dataset)[0], output=paths[key], state=state)
    return paths


@pytest.mark.parametrize("key", list(MODELS))
def test_clang_build_on_the_host_equals_tflm(zoo, flatbuffers, tmp_path, key):
    spec, _ = MODELS[key]
    path = flatbuffers[key]
    runner = TFLMRunner(path.read_bytes())
    x, _ = load_npz(zoo.data(spec.dataset)[1])
    xq = runner.quantize_input(x[:8])
    want = runner.run(xq)
    got = NativeBuild.create(path, tmp_path, "motion", cc=CLANG).run(xq)
    assert np.array_equal(got.reshape(want.shape), want)


@pytest.mark.parametrize("key", list(MODELS))
def test_clang_compiles_the_cortex_m55_emission_warnings_free(flatbuffers, tmp_path, key):
    files = emit_native(flatbuffers[key], tmp_path, "motion", target="cortex-m55")
    objects = []
    for source in (f for f in files if f.suffix == ".c"):
        obj = tmp_path / (source.stem + ".o")
        compile_c(CLANG, [source], obj, (*C_FLAGS, *M55_FLAGS), compile_only=True)
        objects.append(obj)
    code = subprocess.run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", *map(str, objects)],
                          capture_output=True, text=True, check=True).stdout
    assert "<motion_run>:" in code and "<motion_step>:" in code  # the model's own entry points were compiled
