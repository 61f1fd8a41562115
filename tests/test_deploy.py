"""deploy: the chain from one TOML file, with its gate."""

import pytest

from edgernn.deploy import deploy
from edgernn.errors import EdgeRNNError


def _write(tmp_path, body: str):
    p = tmp_path / "edgernn.toml"
    p.write_text(body)
    return p


def test_deploy_convert_emit_validate(tmp_path, lstm_keras, bm_data):
    cfg = _write(tmp_path, f"""
[model]
path = "{lstm_keras}"
[convert]
calib = "{bm_data[0]}"
output = "out/m.tflite"
[[emit]]
backend = "tflm"
output = "out/fw"
test_data = "{bm_data[1]}"
samples = 2
[validate]
data = "{bm_data[1]}"
engines = ["tflm"]
max_accuracy_drop = 0.02
junit = "out/j.xml"
""")
    res = deploy(cfg)
    assert res.passed
    assert (tmp_path / "out" / "m.tflite").exists() and (tmp_path / "out" / "fw" / "main.cc").exists()
    assert (tmp_path / "out" / "j.xml").exists()
    assert [c.name for c in res.validation.checks] == ["max_accuracy_drop"]
    html = (tmp_path / "out" / "m_report.html").read_text()  # deploy writes the HTML report by default
    assert 'id="fig-confusion"' in html and 'id="fig-time-error"' in html


def test_deploy_gate_fails(tmp_path, lstm_keras, lstm_tflite, bm_data):
    cfg = _write(tmp_path, f"""
[model]
path = "{lstm_keras}"
[convert]
calib = "{bm_data[0]}"
output = "m.tflite"
[validate]
data = "{bm_data[1]}"
engines = ["simulator", "tflm"]
max_engine_lsb = 0
min_cosine = 0.9
max_abs_error = 0.0
""")
    res = deploy(cfg)
    assert not res.passed
    checks = {c.name: c.passed for c in res.validation.checks}
    assert checks == {"simulator_vs_tflm_max_lsb": True, "min_cosine": True, "max_abs_error": False}


@pytest.mark.parametrize("body,pattern", [
    ("[bogus]\nx = 1\n", "unknown section"),
    ("[convert]\ncalib = 'a.npz'\noutput = 'm.tflite'\n", "needs a \\[train\\] or \\[model\\]"),
    ("[model\n", "not valid TOML"),
    ("[model]\npath = 'm.keras'\n[convert]\ncalib = 'a.npz'\noutput = 'm.tflite'\nspeed = 3\n", "\\[convert\\]"),
])
def test_bad_config(tmp_path, body, pattern):
    with pytest.raises(EdgeRNNError, match=pattern):
        deploy(_write(tmp_path, body))
