"""Validation reports: JSON, JUnit XML (one testcase per threshold) and Markdown."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path


def _num(v):
    if isinstance(v, float):
        if math.isinf(v) or math.isnan(v):
            return str(v)
        return round(v, 6)
    return v


def to_json(report) -> str:
    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return _num(o)
    return json.dumps(clean(report.to_dict()), indent=2)


def to_junit(report) -> str:
    suite = ET.Element("testsuite", name="edgernn.validate", tests=str(len(report.checks)),
                       failures=str(sum(not c.passed for c in report.checks)), errors="0")
    for c in report.checks:
        case = ET.SubElement(suite, "testcase", classname=f"edgernn.validate.{report.model_name}", name=c.name)
        if not c.passed:
            f = ET.SubElement(case, "failure", message=c.describe(), type="ThresholdBroken")
            f.text = c.describe()
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def to_markdown(report) -> str:
    lines = [f"### edgernn validate: `{report.model_name}` — {'✅ pass' if report.passed else '❌ FAIL'}", "",
             f"{report.n_samples} samples from `{report.data_path}`; engines: {', '.join(report.engines)}", "",
             "| metric | value |", "| --- | --- |"]
    for k, v in report.metrics.items():
        if isinstance(v, (int, float)):
            lines.append(f"| {k} | {_num(v)} |")
    if report.checks:
        lines += ["", "| threshold | limit | value | result |", "| --- | --- | --- | --- |"]
        for c in report.checks:
            lines.append(f"| {c.name} | {c.op} {c.limit} | {_num(c.value)} | {'pass' if c.passed else '**FAIL**'} |")
    return "\n".join(lines) + "\n"


def write_reports(report, *, json_path=None, junit_path=None, markdown_path=None) -> None:
    for path, text in ((json_path, to_json), (junit_path, to_junit), (markdown_path, to_markdown)):
        if path is not None:
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text(report))
