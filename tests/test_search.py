"""edgernn search with Ray Tune on BasicMotions: the figures of every trial equal a standalone
emit + firmware run, a two-node loopback cluster runs trials on both nodes, an interrupted
search resumes without running a finished trial again, preflight refuses impossible budgets.

Kept small for CI (2 cores): GRU / SimpleRNN with 4-6 units, 1-2 epochs, 1 self-test vector.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _config(tmp_path, bm_data, space: str, budget: str = "", search: str = "") -> Path:
    p = tmp_path / "search.toml"
    p.write_text(f"[data]\ntrain = \"{bm_data[0]}\"\ntest = \"{bm_data[1]}\"\n\n[space]\n{space}\n"
                 f"[budget]\ntarget = \"cortex-m4\"\nmax_flash = 65536\nmax_ram = 65536\n{budget}\n"
                 f"[search]\nepochs = 1\nsamples = 1\npreflight = false\nbatch_size = 16\n{search}\n")
    return p


@pytest.fixture
def ray_tmp():
    """Ray's session directory for one test, short (Unix socket paths) and removed afterwards."""
    d = tempfile.mkdtemp(prefix="ert", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _standalone(row: dict, out: Path, work: Path) -> dict:
    """What `edgernn emit` + `edgernn firmware run` give for the trial's model alone."""
    from edgernn import emit
    from edgernn.firmware import run_project

    doc = json.loads((out / "trials.json").read_text())
    opts = dict(doc["trial_firmware"])
    fw = work / row["trial"]
    emit(out / "trials" / row["trial"] / "model.tflite", fw, backend=opts["backend"], target=opts["target"],
         test_data=opts["test_data"], samples=opts["samples"])
    res = run_project(fw)
    assert res.passed
    return dict(flash=res.sizes.flash, ram=res.sizes.ram, instructions=int(res.perf.per_inference))


def test_four_trials_report_the_figures_of_emit_and_firmware_run(tmp_path, bm_data, ray_tmp):
    from edgernn.search import search
    from edgernn.simulate import Simulator

    cfg = _config(tmp_path, bm_data, "cell = [\"gru\", \"rnn\"]\nunits = [4, 6]\n", search="trials = 4")
    out = tmp_path / "out"
    res = search(cfg, out, workers=2, progress=False, ray_temp_dir=ray_tmp)
    assert res.complete and res.concurrency == 2 and len(res.rows) == 4
    assert {(r["cell"], r["units"]) for r in res.rows} == {("gru", 4), ("gru", 6), ("rnn", 4), ("rnn", 6)}
    assert all(r["status"] == "ok" for r in res.rows), [r["reason"] for r in res.rows]

    # every reported figure equals a standalone emit + firmware run of that trial's model
    work = tmp_path / "standalone"
    with ThreadPoolExecutor(2) as pool:
        alone = list(pool.map(lambda r: _standalone(r, out, work), res.rows))
    for row, a in zip(res.rows, alone):
        assert (row["flash"], row["ram"], row["instructions"]) == (a["flash"], a["ram"], a["instructions"]), row
    with open(out / "trials.csv") as f:
        table = {r["trial"]: r for r in csv.DictReader(f)}
    for row in res.rows:
        t = table[row["trial"]]
        assert (int(t["flash"]), int(t["ram"]), int(t["instructions"])) == \
            (row["flash"], row["ram"], row["instructions"])
        assert float(t["accuracy"]) == row["accuracy"]

    # accuracy: the int8 model on the validation split; the best is the most accurate, scored on test too
    val = np.load(out / "data" / "val.npz")
    for row in res.rows:
        sim = Simulator.from_file(out / "trials" / row["trial"] / "model.tflite")
        pred = sim.run(sim.quantize_input(val["x"])).argmax(axis=1)
        assert row["accuracy"] == float(np.mean(pred == val["y"]))
    best = res.best
    assert best["accuracy"] == max(r["accuracy"] for r in res.rows)
    test = np.load(bm_data[1])
    sim = Simulator.from_file(out / "best" / "model.tflite")
    assert best["test_accuracy"] == float(np.mean(sim.run(sim.quantize_input(test["x"])).argmax(axis=1) == test["y"]))
    assert (out / "best" / "model.tflite").read_bytes() == (out / "trials" / best["trial"] / "model.tflite").read_bytes()
    assert (out / "best" / "model.keras").is_file() and (out / "best" / "firmware" / "edgernn_project.json").is_file()
    doc = json.loads((out / "trials.json").read_text())
    assert len(doc["trials"]) == 4 and doc["best"]["trial"] == best["trial"]
    assert (out / "pareto.png").stat().st_size > 10_000 and "<svg" in (out / "pareto.svg").read_text()
    assert any(r["pareto"] for r in res.rows)


def test_preflight_refuses_budgets_the_smallest_model_breaks(tmp_path, bm_data):
    from edgernn import EdgeRNNError
    from edgernn.search import search

    cfg = _config(tmp_path, bm_data, "cell = \"gru\"\nunits = [4, 8]\n", search="preflight = true")
    cfg.write_text(cfg.read_text().replace("preflight = false\n", "").replace("max_flash = 65536", "max_flash = 4096"))
    with pytest.raises(EdgeRNNError, match=r"cannot be met: the smallest gru model \(4 units, 1 layer\(s\)\) needs "
                                           r"flash [\d,]+ > max_flash 4,096"):
        search(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search.toml"]


def _events(out: Path) -> list[dict]:
    p = out / "events.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def test_interrupted_search_resumes_without_rerunning_finished_trials(tmp_path, bm_data):
    cfg = _config(tmp_path, bm_data, "cell = \"gru\"\nunits = [4, 5, 6]\n", search="trials = 3")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "edgernn.cli", "search"]
    err = open(tmp_path / "run.err", "w")
    p = subprocess.Popen(cmd + [str(cfg), "-o", str(out), "--workers", "2", "--no-progress"], env=env,
                         stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not any(e["event"] == "end" for e in _events(out)):
            assert p.poll() is None and time.time() < deadline, (tmp_path / "run.err").read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(1.0)
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: Tune stops cleanly and saves the experiment
        stdout, _ = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        err.close()
    assert p.returncode == 130, stdout + (tmp_path / "run.err").read_text()[-3000:]
    assert "--resume" in (tmp_path / "run.err").read_text()
    first = json.loads((out / "trials.json").read_text())["trials"]
    finished = {t["trial"] for t in first if t["status"] != "unfinished"}
    assert finished and len(finished) < 3, first
    n_events = len(_events(out))

    r = subprocess.run(cmd + ["--resume", str(out), "--no-progress"], env=env, capture_output=True, text=True,
                       timeout=900, start_new_session=True)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    restarted = {e["trial"] for e in _events(out)[n_events:] if e["event"] == "start"}
    assert restarted and not restarted & finished
    final = json.loads((out / "trials.json").read_text())["trials"]
    assert len(final) == 3 and all(t["status"] == "ok" for t in final)
    assert {t["units"] for t in final} == {4, 5, 6}
    for t in final:  # the finished trials kept their results
        if t["trial"] in finished:
            before = next(b for b in first if b["trial"] == t["trial"])
            assert (t["accuracy"], t["flash"], t["instructions"]) == \
                (before["accuracy"], before["flash"], before["instructions"])


@pytest.fixture
def two_nodes(monkeypatch):
    from ray_cluster import LoopbackCluster

    c = LoopbackCluster()
    try:
        c.start_head(num_cpus=1)
        c.add_node("127.0.0.3", num_cpus=1)
        for k, v in c.env.items():
            monkeypatch.setenv(k, v)
        yield c
    finally:
        c.stop()
        assert c.pids() == []


def test_two_node_cluster_runs_trials_on_both_nodes(tmp_path, bm_data, two_nodes):
    import ray

    from edgernn.search import search

    cfg = _config(tmp_path, bm_data, "cell = \"gru\"\nunits = [4, 5]\n", search="trials = 2")
    res = search(cfg, tmp_path / "out", address=two_nodes.address, progress=False)
    assert not ray.is_initialized()
    assert res.complete and res.concurrency == 2
    assert all(r["status"] == "ok" for r in res.rows), [r["reason"] for r in res.rows]
    assert {r["node"] for r in res.rows} == {"127.0.0.2", "127.0.0.3"}
    starts = [e for e in _events(tmp_path / "out") if e["event"] == "start"]
    assert {e["node"] for e in starts} == {"127.0.0.2", "127.0.0.3"}
    # the workers ran the driver's edgernn, uploaded to the cluster (templates included), not a local checkout
    assert all(Path(e["code"]) != ROOT / "edgernn" and "runtime_resources" in e["code"] for e in starts), starts
