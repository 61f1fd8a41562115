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
    bad = runner.invoke(main, base + ["--max-abs-error", "0", "--min-snr-db", "1000", "--max-accuracy-drop", "0.5",
                                      "--junit", str(junit), "--markdown", str(md)])
    assert bad.exit_code == 1
    assert "2 threshold(s) broken" in bad.output
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 3
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert sorted(failed) == ["max_abs_error", "min_snr_db"]
    assert "| max_abs_error |" in md.read_text() and "FAIL" in md.read_text()
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
    cfg.write_text("[validate]\nmax_accuracy_drop = 0.02\nmax_abs_error = 0.0\n")
    runner = CliRunner()
    base = ["validate", str(lstm_keras), str(lstm_tflite), "--data", str(bm_data[1]), "--engine", "tflm",
            "--config", str(cfg), "--report", str(tmp_path / "r.json")]
    r = runner.invoke(main, base)
    assert r.exit_code == 1 and "max_abs_error" in r.output
    names = [c["name"] for c in json.loads((tmp_path / "r.json").read_text())["checks"]]
    assert sorted(names) == ["max_abs_error", "max_accuracy_drop"]
    ok = runner.invoke(main, base + ["--max-abs-error", "0.5"])  # the command line wins
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


# --- the gate: engine agreement, threshold ranges, the source fingerprint (issue 13 §1) -------

def test_gate_logic_one_lsb_fails():
    """A single int8 output one LSB off in one engine breaks the default bit-for-bit gate."""
    from edgernn.validate.gates import build_checks, engine_agreement, engine_pairs

    assert engine_pairs(["simulator", "tflm", "native"]) == [("simulator", "tflm"), ("native", "tflm")]
    assert engine_pairs(["native", "simulator"]) == [("simulator", "native")]
    assert engine_pairs(["tflm"]) == []
    tflm = np.random.default_rng(0).integers(-128, 128, (20, 4)).astype(np.int8)
    sim = tflm.copy()
    sim[7, 2] += 1 if sim[7, 2] < 127 else -1
    m = engine_agreement({"simulator": sim, "tflm": tflm, "native": tflm.copy()})
    assert m == {"simulator_vs_tflm_max_lsb": 1, "native_vs_tflm_max_lsb": 0, "engines_max_lsb": 1}
    checks = build_checks(m, {}, ["simulator", "tflm", "native"], "classification")
    assert [(c.name, c.limit, c.passed) for c in checks] == [("simulator_vs_tflm_max_lsb", 0, False),
                                                            ("native_vs_tflm_max_lsb", 0, True)]
    assert all(c.passed for c in build_checks(m, {"max_engine_lsb": 1}, ["simulator", "tflm", "native"], "x"))


def test_one_lsb_engine_mismatch_fails_validate(tmp_path, monkeypatch, lstm_keras, lstm_tflite, bm_data):
    """End to end: the simulator's result mutated by one LSB -> exit 1, a failed JUnit testcase."""
    from edgernn.validate import validator

    real = validator._run_engine

    def tampered(engine, m, xq):
        out = np.array(real(engine, m, xq))
        if engine == "simulator":
            out.flat[0] = out.flat[0] + 1 if out.flat[0] < 127 else out.flat[0] - 1
        return out

    monkeypatch.setattr(validator, "_run_engine", tampered)
    junit = tmp_path / "j.xml"
    r = CliRunner().invoke(main, ["validate", str(lstm_keras), str(lstm_tflite), "--data", str(bm_data[1]),
                                  "--engine", "both", "--samples", "8", "--junit", str(junit)])
    assert r.exit_code == 1, r.output
    assert "simulator_vs_tflm_max_lsb = 1 (limit <= 0)" in r.output
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert [(c.get("name"), c.find("failure") is not None) for c in cases] == [("simulator_vs_tflm_max_lsb", True)]
    rep = edgernn.validate(lstm_keras, lstm_tflite, bm_data[1], engines=["simulator", "tflm"], samples=8,
                           max_engine_lsb=1)
    assert rep.passed and rep.metrics["simulator_vs_tflm_max_lsb"] == 1


def test_junit_has_engine_pairs_without_thresholds(tmp_path, lstm_keras, lstm_tflite, bm_data):
    junit = tmp_path / "j.xml"
    rep = edgernn.validate(lstm_keras, lstm_tflite, bm_data[1], engines=["simulator", "tflm"], junit=junit,
                           min_cosine=0.9, min_snr_db=10)
    assert rep.passed, [c.describe() for c in rep.checks]
    names = [c.get("name") for c in ET.parse(junit).getroot().findall(".//testcase")]
    assert names == ["simulator_vs_tflm_max_lsb", "min_cosine", "min_snr_db"]
    assert rep.metrics["cosine"] >= 0.9
    failing = edgernn.validate(lstm_keras, lstm_tflite, bm_data[1], engines=["tflm"], min_cosine=1.0)
    assert not failing.passed and failing.failed_checks[0].metric == "cosine"


@pytest.mark.parametrize("args,needle", [
    (["--max-accuracy-drop", "-1"], "--max-accuracy-drop -1"),
    (["--min-agreement", "2"], "--min-agreement 2"),
    (["--min-accuracy", "1.5"], "--min-accuracy 1.5"),
    (["--min-cosine", "1.01"], "--min-cosine 1.01"),
    (["--max-abs-error", "-0.5"], "--max-abs-error -0.5"),
    (["--min-snr-db", "nan"], "--min-snr-db nan"),
    (["--max-engine-lsb", "-1"], "--max-engine-lsb -1"),
    (["--engine", "tflm", "--max-engine-lsb", "0"], "two or more engines"),
    (["--samples", "0"], "--samples 0"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_impossible_thresholds_exit_2(tmp_path, lstm_keras, lstm_tflite, bm_data, args, needle):
    report = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["validate", str(lstm_keras), str(lstm_tflite), "--data", str(bm_data[1]),
                                  "--report", str(report)] + args)
    assert r.exit_code == 2, r.output
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.output
    assert not report.exists()


def test_impossible_thresholds_from_toml_and_api(tmp_path, lstm_keras, lstm_tflite, bm_data):
    from edgernn.errors import EdgeRNNError
    from edgernn.validate import load_thresholds

    cfg = tmp_path / "gate.toml"
    cfg.write_text("[validate]\nmin_agreement = 2\n")
    with pytest.raises(EdgeRNNError, match=r"gate.toml: min_agreement = 2: impossible"):
        load_thresholds(cfg)
    cfg.write_text("[validate]\nmax_engine_lsb = 0.5\n")
    with pytest.raises(EdgeRNNError, match="max_engine_lsb = 0.5"):
        load_thresholds(cfg)
    cfg.write_text("[validate]\nmax_engine_lsb = 1\nmin_cosine = 0.99\nmin_snr_db = 20\n")
    assert load_thresholds(cfg) == {"max_engine_lsb": 1, "min_cosine": 0.99, "min_snr_db": 20.0}
    with pytest.raises(EdgeRNNError, match="--max-accuracy-drop -1"):
        edgernn.validate(lstm_keras, lstm_tflite, bm_data[1], max_accuracy_drop=-1)
    with pytest.raises(EdgeRNNError, match="--min-agreement '0.9'"):
        edgernn.validate(lstm_keras, lstm_tflite, bm_data[1], min_agreement="0.9")


def test_engine_gate_from_toml(tmp_path, lstm_keras, lstm_tflite, bm_data):
    """--config: max_engine_lsb / min_cosine from the TOML file reach the gate."""
    cfg = tmp_path / "gate.toml"
    cfg.write_text("[validate]\nmax_engine_lsb = 3\nmin_cosine = 0.999999\n")
    rep = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["validate", str(lstm_keras), str(lstm_tflite), "--data", str(bm_data[1]),
                                  "--engine", "both", "--config", str(cfg), "--report", str(rep)])
    checks = {c["name"]: c for c in json.loads(rep.read_text())["checks"]}
    assert checks["simulator_vs_tflm_max_lsb"]["limit"] == 3 and checks["simulator_vs_tflm_max_lsb"]["passed"]
    assert checks["min_cosine"]["metric"] == "cosine"
    assert r.exit_code == (0 if checks["min_cosine"]["passed"] else 1), r.output


def test_fingerprint_refuses_other_model(tmp_path, zoo, lstm_tflite, bm_data):
    """A GRU .keras checked against an LSTM's .tflite: exit 2, naming both files."""
    from conftest import Spec
    from edgernn import tflite_model
    from edgernn.backends.tflm.convert import weights_fingerprint
    from edgernn.frontend import load_model

    gru = zoo.keras(Spec(cell="gru", layers=2))
    r = CliRunner().invoke(main, ["validate", str(gru), str(lstm_tflite), "--data", str(bm_data[1])])
    assert r.exit_code == 2, r.output
    assert "converted from a different model" in r.output and gru.name in r.output
    assert lstm_tflite.name in r.output
    # the stored fingerprint is the IR's, whatever the file format of the model
    stored = tflite_model.read(lstm_tflite).source_fingerprint
    assert stored == weights_fingerprint(load_model(zoo.keras(Spec()))) and len(stored) == 64
    # ... and the while-graph route (and its streaming form) stores one too
    gru_tfl = zoo.tflite(Spec(cell="gru", layers=2))
    assert tflite_model.read(gru_tfl).source_fingerprint == weights_fingerprint(load_model(gru))


def test_fingerprint_missing_warns(tmp_path, lstm_keras, lstm_tflite, bm_data):
    from tensorflow.lite.python import schema_py_generated as s
    import flatbuffers

    m = s.ModelT.InitFromPackedBuf(bytearray(lstm_tflite.read_bytes()), 0)
    m.metadata = [md for md in m.metadata if md.name != b"edgernn_source_sha256"]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(bytes(b.Output()))
    with pytest.warns(UserWarning, match="no fingerprint"):
        rep = edgernn.validate(lstm_keras, foreign, bm_data[1], engines=["tflm"], samples=4)
    assert rep.warnings and "foreign.tflite" in rep.warnings[0]
    r = CliRunner().invoke(main, ["validate", str(lstm_keras), str(foreign), "--data",
                                                  str(bm_data[1]), "--engine", "tflm", "--samples", "4"])
    assert r.exit_code == 0 and r.stderr.startswith("warning: ") and "no fingerprint" in r.stderr
