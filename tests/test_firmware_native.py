"""Firmware around the native backend's C for real trained models, on the host and in QEMU.

The models come from the session's zoo (trained on BasicMotions, converted with
``edgernn convert``); the expected outputs are the TFLM runtime's (which the simulator equals
bit for bit), so a PASS on the device means bit-exact with TFLM.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import edgernn
from edgernn.backends.native import emit_native
from edgernn.backends.tflm.runtime import TFLMRunner
from edgernn.firmware import measure_project, run_project, write_project

from conftest import Spec, load_npz

K = 4  # self-test vectors per project

# The same zoo models as test_native*.py, so the session trains each once.
MODELS = [pytest.param(Spec(), id="lstm32"),
          pytest.param(Spec(layers=2, units=16), id="lstm16x2"),
          pytest.param(Spec(cell="gru", dataset="digits", units=16, epochs=20), id="gru16"),
          pytest.param(Spec(cell="gru", layers=2), id="gru32x2")]


def native_project(zoo, spec: Spec, target: str, out, k: int = K):
    tflite = zoo.tflite(spec)
    sources = emit_native(tflite, out / "native", "motion")
    runner = TFLMRunner(tflite.read_bytes())
    x, _ = load_npz(zoo.data(spec.dataset)[1])
    xq = runner.quantize_input(x[:k])
    y = runner.run(xq)
    return write_project(out / target, target=target, name="motion", vectors_x_int8=xq, vectors_y_int8=y,
                         model_sources=sources, source=tflite.name), y


@pytest.mark.slow
@pytest.mark.parametrize("spec", MODELS)
@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_native_model_matches_simulator_on_every_vector(zoo, tmp_path, spec, target):
    project, y = native_project(zoo, spec, target, tmp_path)
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    assert len(r.vectors) == K and all(v.matches for v in r.vectors)
    assert np.array_equal(r.outputs, y.reshape(K, -1))
    if target == "cortex-m4":
        macs = edgernn.load_model(zoo.keras(spec)).macs()
        perf = r.perf
        assert perf.unit == "instructions"
        # int8 multiply-accumulates on a Cortex-M4 (SMLAD: two per instruction, plus the loads
        # and unpacking): at least one instruction per two MACs, and not absurdly many per MAC.
        assert macs / 2 < perf.per_inference < 40 * macs
        # A streaming step does one step of recurrent work plus the head (dense + softmax), which
        # NAME_run does once per sequence: T steps cost at least one inference, and one step less
        # than a whole one (with the fast kernels the head can cost as much as a recurrent step,
        # so T steps may reach twice an inference at small T).
        timesteps = project.manifest["timesteps"]
        assert 0.95 * perf.per_inference < perf.per_step * timesteps
        assert perf.per_step < perf.per_inference


@pytest.mark.slow
def test_native_size_report_splits_weights_and_agrees_with_arm_size(zoo, tmp_path):
    spec = Spec()
    project, _ = native_project(zoo, spec, "cortex-m4", tmp_path, k=2)
    r = run_project(project.dir, timeout=300)
    s = r.sizes
    out = subprocess.run(["arm-none-eabi-size", str(s.elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    assert (s.text, s.data, s.bss) == (text, data, bss) and s.flash == text + data
    # RAM used: data + bss without the stack/heap reserves + what the device measured of them
    assert s.measured and s.ram == data + bss - 8192 - 4096 + s.stack_peak + s.heap_used
    assert 0 < s.stack_peak < 8192 and 0 < s.heap_used <= 4096
    params = edgernn.load_model(zoo.keras(spec)).param_count
    # int8 weights (1 byte) and int32 biases (4 bytes) per parameter, plus folded constants.
    assert params <= s.flash_parts["weights"] <= 4 * params + 4096
    assert s.flash_parts["kernels"] > 0
    # The recurrent state (int8 hidden + int16 cell) lives in the kernels' RAM.
    header = (project.dir / "model" / "motion.h").read_text()
    state = int(header.split("#define MOTION_STATE_BYTES")[1].split()[0])
    assert s.ram_parts["kernels"] >= state
    with pytest.raises(edgernn.EdgeRNNError, match=rf"flash {s.flash} bytes > --max-flash {s.flash_parts['weights']}"):
        s.check_budget(max_flash=s.flash_parts["weights"])


@pytest.mark.slow
@pytest.mark.parametrize("target", ["arduino", "zephyr"])
def test_native_arduino_and_zephyr_projects_build_for_cortex_m4(zoo, tmp_path, target):
    project, _ = native_project(zoo, Spec(), target, tmp_path, k=2)
    model_dir = project.dir / ("src" if target == "arduino" else "model")
    assert {"motion.h", "motion.c", "edgernn_kernels.c", "edgernn_kernels.h"} <= {p.name for p in model_dir.iterdir()}
    sizes = measure_project(project.dir)  # the same sources, built with arm-none-eabi-gcc for a Cortex-M4F
    assert sizes.flash_parts["weights"] >= edgernn.load_model(zoo.keras(Spec())).param_count
    with pytest.raises(edgernn.EdgeRNNError, match=r"over budget: flash \d+ bytes > --max-flash 4096 bytes"):
        measure_project(project.dir, max_flash=4096)


@pytest.mark.slow
def test_bidirectional_native_model_runs_its_selftest(zoo, tmp_path):
    """A bidirectional model has no streaming form; its self-test checks NAME_run only."""
    spec = Spec(cell="gru", units=12, bidirectional=True, epochs=40)  # shared with test_native.py
    project, y = native_project(zoo, spec, "host", tmp_path, k=2)
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    assert np.array_equal(r.outputs, y.reshape(2, -1))


@pytest.mark.slow
def test_long_per_step_output_fits_the_selftest_stack(tmp_path):
    """A per-step head over 100 steps has 800 outputs; the self-test's report line (~12 bytes
    per output, twice) once lived on the stack and overflowed the firmware's 8 KB there."""
    import keras

    T, F, C = 100, 3, 8
    inp = keras.Input((T, F))
    h = keras.layers.SimpleRNN(8, return_sequences=True)(inp)
    model = keras.Model(inp, keras.layers.Dense(C, activation="softmax")(h))
    rng = np.random.default_rng(3)
    model.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in model.get_weights()])
    calib = rng.standard_normal((32, T, F)).astype(np.float32)
    tflite = tmp_path / "per_step.tflite"
    edgernn.convert(model, calib=calib, output=tflite)
    runner = TFLMRunner(tflite.read_bytes())
    xq = runner.quantize_input(calib[:2])
    y = runner.run(xq)
    sources = emit_native(tflite, tmp_path / "native", "motion", target="cortex-m4")
    project = write_project(tmp_path / "fw", target="cortex-m4", name="motion", vectors_x_int8=xq,
                            vectors_y_int8=y, model_sources=sources, source=tflite.name)
    r = run_project(project.dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    assert np.array_equal(r.outputs, y.reshape(2, -1)) and r.outputs.shape[1] == T * C
