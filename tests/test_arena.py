"""The TFLM tensor arena: TFLM's allocator replayed (backends/tflm/allocator.py), checked against
the arenas measured on a Cortex-M4 and against what tflite_micro.runtime records and needs.

Measured on a Cortex-M4 with TFLM HEAD (arena_used_bytes() after AllocateTensors, LSTM on
BasicMotions 100 x 6, 4 classes): LSTM(32) reference kernels 5,908 B, CMSIS-NN 7,124 B;
LSTM(128) CMSIS-NN 20,660 B (the emitted arena was 18,592 B and AllocateTensors failed).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import edgernn
from edgernn import tflite_model
from edgernn.backends.tflm import allocator
from edgernn.backends.tflm.allocator import replay
from edgernn.backends.tflm.arena import _probe, min_arena_bytes, recorded_head_tail, size_arena
from edgernn.errors import EdgeRNNError

from conftest import load_npz


def _header_arena(fw) -> tuple[int, int, int, int]:
    """(host minimum, host arena, device minimum, device arena) from an emitted model_data.h."""
    h = (fw / "model_data.h").read_text()
    mins = [int(v) for v in re.findall(r"ArenaMinBytes = (\d+);", h)]
    sizes = [int(v) for v in re.findall(r"ArenaBytes = (\d+);", h)]
    return mins[0], sizes[0], mins[1], sizes[1]


def test_lstm32_arenas_equal_the_cortex_m4_measurements(lstm_tflite):
    m = tflite_model.read(lstm_tflite)
    ref, cmsis = replay(m, "cortex-m", "reference"), replay(m, "cortex-m", "cmsis-nn")
    assert (ref.head, ref.tail) == (4064, 1844) and ref.used == 5908
    assert (cmsis.head, cmsis.tail) == (4000, 3124) and cmsis.used == 7124
    # and the same model on the 64-bit runtime: its own record, and its bisected minimum
    host = replay(m, "x86-64", "reference")
    assert (host.head, host.tail) == recorded_head_tail(m.raw) == (4064, 2848)
    assert host.minimum >= min_arena_bytes(m.raw) >= host.used


@pytest.mark.slow
def test_lstm128_cmsis_nn_arena_equals_the_measurement_and_emit_covers_it(tmp_path, bm_data):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((100, 6)), keras.layers.LSTM(128), keras.layers.Dense(4, activation="softmax")])
    model.layers[-1].bias.assign(np.linspace(-0.1, 0.1, 4))  # a trained head has a bias (a zero one is dropped)
    model.save(tmp_path / "lstm128.keras")
    res = edgernn.convert(tmp_path / "lstm128.keras", calib=bm_data[0], output=tmp_path / "lstm128.tflite")
    m = tflite_model.read(res.path)
    cmsis = replay(m, "cortex-m", "cmsis-nn")
    assert (cmsis.head, cmsis.tail, cmsis.used) == (14176, 6484, 20660)
    assert replay(m, "cortex-m", "reference").used == 16564  # CMSIS-NN - reference = 30 x units + 256
    edgernn.emit(res.path, tmp_path / "fw", backend="tflm", kernels="cmsis-nn", samples=1)
    _, _, device_min, device = _header_arena(tmp_path / "fw")
    assert device_min >= 20660 and device >= device_min + 0.02 * device_min
    assert device < 20660 * 1.05  # proportional, not a fixed KiB


def test_emitted_arena_is_the_minimum_plus_a_proportional_margin(tmp_path, lstm_tflite):
    m = tflite_model.read(lstm_tflite)
    for kernels in ("reference", "cmsis-nn"):
        out = tmp_path / kernels
        edgernn.emit(lstm_tflite, out, backend="tflm", kernels=kernels, samples=1, name="motion")
        host_min, host, device_min, device = _header_arena(out)
        short, wide = replay(m, "cortex-m", kernels), replay(m, "cortex-m-int-enums", kernels)
        assert device_min == max(short.minimum, wide.minimum) >= short.used
        assert host_min == replay(m, "x86-64", kernels, "host").minimum
        for minimum, size in ((host_min, host), (device_min, device)):
            margin = size - minimum
            assert margin % 16 == 0 and max(128, 0.02 * minimum) <= margin < max(128, 0.02 * minimum) + 16
        text = (out / "model_data.h").read_text()
        assert f"TFLM with {kernels} kernels" in text and "#if UINTPTR_MAX > 0xFFFFFFFFu" in text
        assert "checked equal" in text
    _, _, ref_device_min, _ = _header_arena(tmp_path / "reference")
    _, _, cmsis_device_min, _ = _header_arena(tmp_path / "cmsis-nn")
    assert cmsis_device_min - ref_device_min == 30 * 32 + 256  # CMSIS-NN's LSTM kernel sums and OpData


def test_streaming_arena_is_the_minimum_not_head_plus_tail(tmp_path, bm_data):
    """A one-step GRU: AllocateTensors needs more than it keeps (Prepare's temporary tensors
    against an already built tail); the emitted arena is that minimum, and the runtime runs
    with exactly the replayed host minimum but not 64 bytes less."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((100, 6)), keras.layers.GRU(16), keras.layers.Dense(4, activation="softmax")])
    model.save(tmp_path / "gru.keras")
    res = edgernn.convert(tmp_path / "gru.keras", calib=bm_data[0], output=tmp_path / "s.tflite", streaming=True)
    m = tflite_model.read(res.path)
    host = replay(m, "x86-64")
    assert host.minimum > host.used and host.peak != "final"
    assert recorded_head_tail(m.raw) == (host.head, host.tail)
    assert _probe(res.path, host.minimum)[0] and not _probe(res.path, host.minimum - 64)[0]
    device = replay(m, "cortex-m")
    assert device.minimum > device.used
    edgernn.emit(res.path, tmp_path / "fw", backend="tflm", samples=1)
    assert _header_arena(tmp_path / "fw")[2] >= device.minimum


def test_an_op_outside_the_table_falls_back_to_bisection_and_a_larger_margin(lstm_tflite, monkeypatch):
    m = tflite_model.read(lstm_tflite)
    real = allocator.op_allocations

    def pretend_unknown(abi, kernels, core, sg, op):
        alloc = real(abi, kernels, core, sg, op)
        alloc.known = op.opcode != "SOFTMAX"
        return alloc

    monkeypatch.setattr(allocator, "op_allocations", pretend_unknown)
    with pytest.warns(UserWarning, match="SOFTMAX are not in edgernn's table"):
        sizing = size_arena(m, "reference")
    assert not sizing.checked and sizing.host_bisected == min_arena_bytes(m.raw)
    assert sizing.device_bytes - sizing.device_minimum >= max(1024, 0.1 * sizing.device_minimum)


def test_bad_kernels_choice_is_one_line(tmp_path, lstm_tflite):
    with pytest.raises(EdgeRNNError, match="--kernels 'arm'"):
        edgernn.emit(lstm_tflite, tmp_path / "fw", backend="tflm", kernels="arm")
    with pytest.raises(EdgeRNNError, match="--kernels cmsis-nn: applies to --backend tflm"):
        edgernn.emit(lstm_tflite, tmp_path / "fw", backend="native", kernels="cmsis-nn")
    assert not (tmp_path / "fw").exists()


def test_tflm_runner_arena_comes_from_the_replay(lstm_tflite, bm_data):
    """TFLMRunner sizes its arena from the replay (no bisection) and runs the model."""
    from edgernn.backends.tflm.runtime import TFLMRunner, host_arena_bytes

    raw = lstm_tflite.read_bytes()
    assert host_arena_bytes(raw) == replay(tflite_model.parse(raw), "x86-64").minimum
    x, _ = load_npz(bm_data[1])
    runner = TFLMRunner(raw)
    assert runner.run(runner.quantize_input(x[:2])).shape == (2, 4)
    assert np.isfinite(runner.dequantize_output(runner.run(runner.quantize_input(x[:1])))).all()
