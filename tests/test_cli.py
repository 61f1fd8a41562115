"""The edgernn console script end to end, as a user runs it, and its bad-input behaviour."""

import json
import os
import subprocess

import numpy as np
import pytest

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def run(*args, cwd=None):
    return subprocess.run(["edgernn", *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=600)


@pytest.mark.slow
def test_train_convert_inspect_emit_validate(tmp_path, digits_data):
    train, test = digits_data
    model = tmp_path / "m.keras"
    r = run("train", train, "--cell", "lstm", "--units", "16", "--epochs", "8", "--seed", "1", "--test", test,
            "-o", model, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout and model.exists()

    tfl = tmp_path / "m.tflite"
    r = run("convert", model, "--calib", train, "-o", tfl)
    assert r.returncode == 0, r.stderr
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM x1" in r.stdout and "TFLM arena (exact minimum)" in r.stdout

    r = run("inspect", tfl, "--json")
    info = json.loads(r.stdout)
    assert info["flatbuffer_bytes"] == tfl.stat().st_size and info["arena_bytes"] > 0

    r = run("emit", tfl, "-o", tmp_path / "fw", "--test-data", test, "--samples", "3")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "fw" / "model_data.cc").exists()

    r = run("validate", model, tfl, "--data", test, "--engine", "tflm", "--max-accuracy-drop", "0.02",
            "--min-agreement", "0.97", "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["top1_agreement"] >= 0.97


def _assert_one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_inputs_give_one_line_and_no_output(tmp_path, lstm_keras, bm_data):
    out = tmp_path / "out.tflite"
    _assert_one_line_error(run("convert", tmp_path / "missing.keras", "--calib", bm_data[0], "-o", out),
                           "missing.keras", "no such model file")
    nox = tmp_path / "nox.npz"
    np.savez(nox, data=np.zeros((2, 100, 6)))
    _assert_one_line_error(run("convert", lstm_keras, "--calib", nox, "-o", out), "nox.npz", "no array 'x'")
    wrongf = tmp_path / "wrongf.npz"
    np.savez(wrongf, x=np.zeros((2, 100, 4), np.float32))
    _assert_one_line_error(run("convert", lstm_keras, "--calib", wrongf, "-o", out), "4 features", "expects 6")
    nan = tmp_path / "nan.npz"
    x = np.zeros((2, 100, 6), np.float32)
    x[1, 1, 1] = np.inf
    np.savez(nan, x=x)
    _assert_one_line_error(run("convert", lstm_keras, "--calib", nan, "-o", out), "nan.npz", "NaN")
    _assert_one_line_error(run("emit", tmp_path / "nope.tflite", "-o", tmp_path / "fw"), "nope.tflite")
    assert not out.exists() and not (tmp_path / "fw").exists()


def test_unsupported_layer_refused(tmp_path, bm_data):
    # Conv1D is supported since issue 14; UpSampling1D is not (it has no TFLM op edgernn writes).
    import keras
    m = keras.Sequential([keras.Input((100, 6)), keras.layers.UpSampling1D(2, name="front_up"),
                          keras.layers.LSTM(4), keras.layers.Dense(4)])
    path = tmp_path / "up.keras"
    m.save(path)
    out = tmp_path / "up.tflite"
    _assert_one_line_error(run("convert", path, "--calib", bm_data[0], "-o", out), "front_up", "UpSampling1D",
                           "supported layers")
    assert not out.exists()


def test_help_has_examples():
    for cmd in ("train", "convert", "inspect", "emit", "validate"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "Example" in r.stdout, cmd


@pytest.mark.slow
def test_emit_native_and_firmware_run_in_qemu(tmp_path, lstm_tflite, bm_data):
    fw = tmp_path / "fw"
    r = run("emit", lstm_tflite, "-o", fw, "--backend", "native", "--target", "cortex-m4", "--test-data", bm_data[1],
            "--samples", "2", "--name", "motion")
    assert r.returncode == 0, r.stderr
    assert (fw / "model" / "motion.c").exists() and (fw / "mps2_an386.ld").exists()
    r = run("firmware", "run", fw, "--json", tmp_path / "fw.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "RESULT PASS 2/2 vectors" in r.stdout and "instructions per inference" in r.stdout
    res = json.loads((tmp_path / "fw.json").read_text())
    assert res["passed"] and res["sizes"]["flash"] > 0


def test_emit_budget_too_small_fails_with_both_numbers(tmp_path, lstm_tflite):
    fw = tmp_path / "fw"
    r = run("emit", lstm_tflite, "-o", fw, "--backend", "native", "--target", "host", "--max-flash", "1000")
    _assert_one_line_error(r, "--max-flash 1000", "flash")
    assert not fw.exists() and list(tmp_path.iterdir()) == []
