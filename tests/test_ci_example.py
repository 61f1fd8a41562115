"""The GitHub Actions example runs as written: every `edgernn` line of the workflow."""

import json
import os
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "edgernn-gate.yml"


def _edgernn_lines() -> list[str]:
    return [l.strip() for l in WORKFLOW.read_text().splitlines() if re.match(r"\s+edgernn ", l)]


@pytest.mark.slow
def test_workflow_commands_pass_and_write_reports(tmp_path):
    lines = _edgernn_lines()
    assert [l.split()[1] for l in lines] == ["dataset", "convert", "validate"]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for line in lines:
        r = subprocess.run(shlex.split(line), cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, (line, r.stdout, r.stderr)
    out = tmp_path / "ci-out"
    metrics = json.loads((out / "validate.json").read_text())["metrics"]
    assert metrics["simulator_vs_tflm_max_lsb"] == 0
    cases = ET.parse(out / "validate.xml").getroot().findall(".//testcase")
    assert {c.get("name") for c in cases} == {"max_accuracy_drop", "min_agreement"}
    assert "top1_agreement" in (out / "validate.md").read_text()
    html = (out / "report.html").read_text()
    assert 'id="fig-confusion"' in html and 'id="fig-time-error"' in html
    text = WORKFLOW.read_text()
    # the HTML is its own artifact; the Markdown summary goes into the job summary
    assert re.search(r"upload-artifact@v\d+\n\s+with:\n\s+name: edgernn-report-html\n\s+path: ci-out/report.html", text)
    assert 'cat ci-out/validate.md >> "$GITHUB_STEP_SUMMARY"' in text
