"""validate --html: the self-contained HTML report, rendered for a sequence classifier and a
per-step regression model and opened in a real headless Chromium (one launch for both)."""

import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgernn
from edgernn.cli import main

from browser import Browser, find_chromium
from conftest import Spec, load_npz

CLASSIFIER_FIGURES = ["fig-confusion", "fig-per-class", "fig-error-hist", "fig-time-error", "fig-per-layer",
                      "fig-firmware"]
PER_STEP_FIGURES = ["fig-scatter", "fig-error-hist", "fig-time-error"]
GRU = Spec(cell="gru", dataset="digits", units=16, epochs=20)


@pytest.fixture(scope="module")
def per_step_model(tmp_path_factory):
    """A per-step regression model: GRU(6, sequences) -> Dense(1) on 20 x 2 inputs, whose target
    is the running mean of the first feature; (keras path, tflite path, test npz path)."""
    import keras

    root = tmp_path_factory.mktemp("per_step")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 20, 2)).astype(np.float32)
    y = (np.cumsum(x[..., :1], axis=1) / np.arange(1, 21)[None, :, None]).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20, 2)), keras.layers.GRU(6, return_sequences=True),
                              keras.layers.Dense(1)], name="running_mean")
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    model.fit(x[:120], y[:120], epochs=8, batch_size=32, verbose=0)
    k, t = root / "per_step.keras", root / "per_step.tflite"
    model.save(k)
    np.savez(root / "train.npz", x=x[:120], y=y[:120])
    np.savez(root / "test.npz", x=x[120:], y=y[120:])
    edgernn.convert(k, calib=root / "train.npz", output=t)
    return k, t, root / "test.npz"


@pytest.fixture(scope="module")
def firmware_result(zoo, tmp_path_factory):
    """The GRU classifier's native C built and run on the host: a real firmware result."""
    from edgernn.firmware import run_project

    out = tmp_path_factory.mktemp("fw") / "native"
    edgernn.emit(zoo.tflite(GRU), out, backend="native", target="host", test_data=zoo.data("digits")[1], samples=2)
    res = run_project(out, timeout=120)
    assert res.passed
    return res


@pytest.fixture(scope="module")
def reports(zoo, per_step_model, firmware_result, tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    cls = edgernn.validate(zoo.keras(GRU), zoo.tflite(GRU), zoo.data("digits")[1], engines=["simulator", "tflm"],
                           per_layer=True, html=root / "classifier.html", firmware=[firmware_result],
                           max_accuracy_drop=0.05, min_agreement=0.9)
    k, t, test = per_step_model
    reg = edgernn.validate(k, t, test, engines=["simulator", "tflm"], html=root / "per_step.html", max_abs_error=5.0)
    return {"classifier": (cls, root / "classifier.html"), "per_step": (reg, root / "per_step.html")}


def test_timelines(reports):
    """Sequence classifier: the GRU's hidden state after each WHILE iteration against the float
    GRU's sequence; per-step model: the outputs' error at each step, as computed by hand."""
    cls, _ = reports["classifier"]
    tl = cls.timeline
    assert tl["kind"] == "hidden" and tl["steps"] == 8 and tl["tensor"].endswith(":steps")
    assert tl["cosine"] > 0.99 and len(tl["mean"]) == len(tl["p95"]) == 8
    assert all(0 < m <= p for m, p in zip(tl["mean"], tl["p95"]))
    reg, _ = reports["per_step"]
    tl = reg.timeline
    a = reg.arrays
    err = np.abs(a["y_int8"].astype(np.float64) - a["y_float"]).reshape(len(a["y_float"]), 20)
    assert tl["kind"] == "output" and tl["steps"] == 20
    np.testing.assert_allclose(tl["mean"], err.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(tl["p95"], np.percentile(err, 95, axis=0), rtol=1e-9)
    assert reg.task == "regression" and "rmse_increase" in reg.metrics


def test_html_is_self_contained(reports, zoo):
    for name, (rep, path) in reports.items():
        html = path.read_text()
        assert not re.search(r"(https?|ftp|wss?):|//[a-z0-9.-]+\.[a-z]{2,}/|url\(|@import|<script|<link|<iframe",
                             html, re.I), name
        srcs = re.findall(r'\ssrc="([^"]*)"', html)
        assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
        assert f"edgernn {edgernn.__version__}" in html
        for c in rep.checks:
            assert f"<td>{c.name}</td>" in html
    cls, path = reports["classifier"]
    html = path.read_text()
    assert hashlib.sha256(zoo.tflite(GRU).read_bytes()).hexdigest() in html
    assert hashlib.sha256(zoo.keras(GRU).read_bytes()).hexdigest() in html
    fw = cls.firmware[0]
    assert f"{fw['sizes']['flash']}" in html and "native/host" in html  # the firmware table
    from edgernn.validate.reports import to_json

    d = json.loads(to_json(cls))  # the JSON report carries the same figures' data, not the arrays
    assert "arrays" not in d and d["timeline"]["steps"] == 8 and d["firmware"][0]["sizes"] == fw["sizes"]
    assert d["provenance"]["versions"]["edgernn"] == edgernn.__version__


def _not_blank(png: bytes) -> tuple[float, int]:
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    ink = float(np.mean(img.sum(axis=2) < 600))  # share of pixels that are not (near) white
    colors = len(np.unique(img.reshape(-1, 3)[::7], axis=0))
    return ink, colors


@pytest.mark.slow
def test_report_in_headless_chromium(reports, tmp_path):
    """Chromium loads each report with no console error and no request leaving the file; every
    figure is there, decoded and laid out with a non-zero size; the screenshot is not blank."""
    exe = find_chromium()
    assert exe, "chromium is not installed: run scripts/setup.sh (apt-get install chromium)"
    browser = Browser(exe)
    try:
        for name, want in (("classifier", CLASSIFIER_FIGURES), ("per_step", PER_STEP_FIGURES)):
            _, path = reports[name]
            browser.open(path)
            assert browser.errors() == [], name
            outside = [u for u in browser.requests() if not u.startswith(("data:", path.resolve().as_uri()))]
            assert outside == [], name
            figs = browser.evaluate("""Array.from(document.querySelectorAll('figure.edgernn-figure')).map(f => {
                const img = f.querySelector('img'); const r = img ? img.getBoundingClientRect() : {width: 0, height: 0};
                return {id: f.id, complete: !!img && img.complete, w: img ? img.naturalWidth : 0,
                        h: img ? img.naturalHeight : 0, shownW: r.width, shownH: r.height}; })""")
            assert [f["id"] for f in figs] == want, name
            for f in figs:
                assert f["complete"] and f["w"] > 100 and f["h"] > 100 and f["shownW"] > 100 and f["shownH"] > 50, f
            rows = browser.evaluate("document.querySelectorAll('#thresholds ~ table tr').length")
            assert rows >= 2
            png = browser.screenshot()
            (tmp_path / f"{name}.png").write_bytes(png)
            if os.environ.get("EDGERNN_KEEP_SCREENSHOTS"):
                (Path(os.environ["EDGERNN_KEEP_SCREENSHOTS"]) / f"{name}.png").write_bytes(png)
            ink, colors = _not_blank(png)
            assert ink > 0.02 and colors > 30, (name, ink, colors)
    finally:
        browser.close()
    assert browser.proc.returncode is not None


def test_cli_html_and_bad_firmware_result(zoo, tmp_path):
    runner = CliRunner()
    base = ["validate", str(zoo.keras(GRU)), str(zoo.tflite(GRU)), "--data", str(zoo.data("digits")[1]),
            "--engine", "tflm", "--samples", "40"]
    out = tmp_path / "r.html"
    ok = runner.invoke(main, base + ["--html", str(out)])
    assert ok.exit_code == 0, ok.output
    assert f"wrote {out}" in ok.output and 'id="fig-confusion"' in out.read_text()
    bad = tmp_path / "fw.json"
    bad.write_text('{"hello": 1}')
    out2 = tmp_path / "r2.html"
    r = runner.invoke(main, base + ["--html", str(out2), "--firmware", str(bad)])
    assert r.exit_code == 2 and "not a firmware result" in r.output and not out2.exists()


def test_capture_steps_ends_at_the_loop_outputs(zoo):
    """Simulator.run(capture_steps=True): each WHILE loop variable after every iteration, whose
    last iteration is the loop's output bit for bit; the outputs themselves are unchanged."""
    from edgernn.simulate import Simulator

    sim = Simulator.from_file(zoo.tflite(GRU))
    x, _ = load_npz(zoo.data("digits")[1])
    xq = sim.quantize_input(x[:6])
    y, cap = sim.run(xq, capture=True, capture_steps=True)
    steps = {k[:-len(":steps")]: v for k, v in cap.items() if k.endswith(":steps")}
    assert steps and all(v.shape[:2] == (6, 8) for v in steps.values())
    for name, v in steps.items():
        np.testing.assert_array_equal(v[:, -1].reshape(cap[name].shape), cap[name])
    np.testing.assert_array_equal(y, sim.run(xq))
