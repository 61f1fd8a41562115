"""validate: metrics, thresholds, exit codes, JSON / JUnit / Markdown reports."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

import edgernn
from edgernn.cli import main
from edgernn.validate import metrics as M


def test_metrics_on_known_arrays():
    y = np.array([0, 1, 1, 2])
    f = np.eye(3)[[0, 1, 2, 2]]  # 3/4 right
    q = np.eye(3)[[0, 1, 1, 0]]  # 3/4 right, agrees with f on 2/4
    c = M.classification(y, f, q)
    assert c["accuracy_float"] == 0.75 and c["accuracy_int8"] == 0.75 and c["top1_agreement"] == 0.5
    e = M.output_agreement(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
    assert e["max_abs_error"] == 0.5 and e["snr_db"] == pytest.approx(10 * np.log10(5 / 0.25))


def test_report_json_metrics(tmp_path, lstm_keras, lstm_tflite, bm_data):
    r = tmp_path / "r.json"
    rep = edgernn.validate(lstm_keras, lstm_tflite, bm_data[1], engines=["tflm"], report=r, max_accuracy_drop=0.5)
    data = json.loads(r.read_text())
    for key in ("accuracy_float", "accuracy_int8", "accuracy_drop", "top1_agreement", "max_abs_error", "cosine"):
        assert key in data["metrics"]
    assert data["passed"] is True and rep.passed
    assert data["metrics"]["accuracy_drop"] == pytest.approx(data["metrics"]["accuracy_float"]
                                                             - data["metrics"]["accuracy_int8"], abs=1e-6)


def test_cli_exit_codes_and_junit(tmp_path, lstm_keras, lstm_tflite, bm_data):
    runner = CliRunner()
    base = ["validate", str(lstm_keras), str(lstm_tflite), "--data", str(bm_data[1]), "--engine", "tflm"]
    ok = runner.invoke(main, base + ["--max-accuracy-drop", "0.5"])
    assert ok.exit_code == 0, ok.output
    junit = tmp_path / "j.xml"
    md = tmp_path / "r.md"
    bad = runner.invoke(main, base + ["--min-accuracy", "1.01", "--min-snr-db", "1000", "--max-accuracy-drop", "0.5",
                                      "--junit", str(junit), "--markdown", str(md)])
    assert bad.exit_code == 1
    assert "2 threshold(s) broken" in bad.output
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 3
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert sorted(failed) == ["min_accuracy", "min_snr_db"]
    assert "| min_accuracy |" in md.read_text() and "FAIL" in md.read_text()
    usage = runner.invoke(main, base[:-2] + ["--engine", "tflm", "--data", str(tmp_path / "none.npz")])
    assert usage.exit_code == 2 and "no such data file" in usage.output


def test_qat_model_shown_beside_ptq(lstm_keras, lstm_tflite, zoo, bm_data):
    """--qat runs a second flatbuffer through TFLM and reports its accuracy beside PTQ's."""
    from conftest import Spec
    other = zoo.tflite(Spec(layers=2, units=16))  # any other int8 model of the same input
    rep = edgernn.validate(lstm_keras, lstm_tflite, bm_data[1], engines=["tflm"], qat_quant=other)
    m = rep.metrics
    same = edgernn.validate(zoo.keras(Spec(layers=2, units=16)), other, bm_data[1], engines=["tflm"])
    assert m["accuracy_int8_qat"] == same.metrics["accuracy_int8"]
    assert m["accuracy_drop_qat"] == pytest.approx(m["accuracy_float"] - m["accuracy_int8_qat"])


def test_thresholds_from_toml(tmp_path, lstm_keras, lstm_tflite, bm_data):
    cfg = tmp_path / "gate.toml"
    cfg.write_text("[validate]\nmax_accuracy_drop = 0.02\nmin_accuracy = 1.01\n")
    runner = CliRunner()
    base = ["validate", str(lstm_keras), str(lstm_tflite), "--data", str(bm_data[1]), "--engine", "tflm",
            "--config", str(cfg), "--report", str(tmp_path / "r.json")]
    r = runner.invoke(main, base)
    assert r.exit_code == 1 and "min_accuracy" in r.output
    names = [c["name"] for c in json.loads((tmp_path / "r.json").read_text())["checks"]]
    assert sorted(names) == ["max_accuracy_drop", "min_accuracy"]
    ok = runner.invoke(main, base + ["--min-accuracy", "0.5"])  # the command line wins
    assert ok.exit_code == 0, ok.output
    cfg.write_text("max_acuracy_drop = 0.02\n")
    bad = runner.invoke(main, base)
    assert bad.exit_code == 2 and "max_acuracy_drop" in bad.output


@pytest.mark.slow
def test_all_engines_side_by_side(lstm_keras, lstm_tflite, bm_data):
    """--engine all: simulator, TFLM and the gcc-compiled native C agree to the bit."""
    r = CliRunner().invoke(main, ["validate", str(lstm_keras), str(lstm_tflite), "--data", str(bm_data[1]),
                                  "--engine", "all"])
    assert r.exit_code == 0, r.output
    for engine in ("simulator", "tflm", "native"):
        assert f"engine {engine}" in r.output
    assert "native_vs_tflm_max_lsb     0" in r.output and "simulator_vs_tflm_max_lsb  0" in r.output
