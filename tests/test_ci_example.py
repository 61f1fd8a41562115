"""The GitHub Actions example runs as written: every `edgernn` line of the workflow, and its
gate really fails on a one-LSB difference between the simulator and TFLM."""

import json
import os
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "edgernn-gate.yml"


def _edgernn_lines() -> list[str]:
    return [l.strip() for l in WORKFLOW.read_text().splitlines() if re.match(r"\s+edgernn ", l)]


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    """Run the workflow's edgernn lines in a fresh directory; return it."""
    tmp = tmp_path_factory.mktemp("ci")
    lines = _edgernn_lines()
    assert [l.split()[1] for l in lines] == ["dataset", "convert", "validate"]
    (tmp / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for line in lines:
        r = subprocess.run(shlex.split(line), cwd=tmp, capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, (line, r.stdout, r.stderr)
    return tmp


@pytest.mark.slow
def test_workflow_commands_pass_and_write_reports(workflow_run):
    out = workflow_run / "ci-out"
    report = json.loads((out / "validate.json").read_text())
    assert report["metrics"]["simulator_vs_tflm_max_lsb"] == 0 and report["warnings"] == []
    cases = ET.parse(out / "validate.xml").getroot().findall(".//testcase")
    assert [c.get("name") for c in cases] == ["simulator_vs_tflm_max_lsb", "max_accuracy_drop", "min_agreement"]
    assert all(c.find("failure") is None for c in cases)
    assert "top1_agreement" in (out / "validate.md").read_text()
    html = (out / "report.html").read_text()
    assert 'id="fig-confusion"' in html and 'id="fig-time-error"' in html
    text = WORKFLOW.read_text()
    # the HTML is its own artifact; the Markdown summary goes into the job summary
    assert re.search(r"upload-artifact@v\d+\n\s+with:\n\s+name: edgernn-report-html\n\s+path: ci-out/report.html", text)
    assert 'cat ci-out/validate.md >> "$GITHUB_STEP_SUMMARY"' in text


@pytest.mark.slow
def test_workflow_gate_fails_on_one_lsb(workflow_run, monkeypatch):
    """The workflow's validate line, with one simulator output one LSB off: exit 1."""
    from click.testing import CliRunner

    from edgernn.cli import main
    from edgernn.validate import validator

    real = validator._run_engine

    def tampered(engine, m, xq):
        out = np.array(real(engine, m, xq))
        if engine == "simulator":
            i = len(out) // 2
            out[i].flat[0] = out[i].flat[0] - 1 if out[i].flat[0] > -128 else out[i].flat[0] + 1
        return out

    monkeypatch.setattr(validator, "_run_engine", tampered)
    monkeypatch.chdir(workflow_run)
    line = next(l for l in _edgernn_lines() if l.split()[1] == "validate")
    args = [a.replace("ci-out/validate", "ci-out/tampered").replace("ci-out/report", "ci-out/tampered")
            for a in shlex.split(line)[1:]]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    assert "1 threshold(s) broken: simulator_vs_tflm_max_lsb = 1 (limit <= 0)" in r.output
    cases = ET.parse(workflow_run / "ci-out" / "tampered.xml").getroot().findall(".//testcase")
    assert [c.get("name") for c in cases if c.find("failure") is not None] == ["simulator_vs_tflm_max_lsb"]
