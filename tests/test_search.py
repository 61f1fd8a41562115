"""edgernn search with Ray Tune on BasicMotions, end to end, in one shared run (CI has 2 cores):

a 4-trial search starts on a local Ray with 2 workers, is stopped with Ctrl-C once a trial has
finished, and is resumed on a two-node Ray cluster on loopback that the test starts and stops.
The tests then check that no finished trial ran again, that the resumed trials ran on both
nodes with the driver's edgernn, that every reported flash, RAM and instruction figure equals
a standalone emit + firmware run of that trial's model, and the outputs (tables, plot, best/).
Preflight refusing impossible budgets runs without Ray.

Kept small: GRU / SimpleRNN with 4-6 units, 1 epoch, 1 self-test vector.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
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


def _events(out: Path) -> list[dict]:
    p = out / "events.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def _ray_dirs(pid: int) -> list[str]:
    """The local Ray session directories the search driver ``pid`` made and left behind."""
    return [p.name for p in Path("/tmp").glob(f"edgernn-ray-{pid}-*")]


@pytest.fixture(scope="module")
def run(tmp_path_factory, bm_data):
    """The shared search: local start, Ctrl-C after the first finished trial, resume on two nodes."""
    from ray_cluster import LoopbackCluster, session_pids, stop_sessions

    tmp = tmp_path_factory.mktemp("search")
    cfg = _config(tmp, bm_data, "cell = [\"gru\", \"rnn\"]\nunits = [4, 6]\n", search="trials = 4")
    out = tmp / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "edgernn.cli", "search"]
    sids: list[int] = []
    cluster = LoopbackCluster()
    pool = ThreadPoolExecutor(1)
    try:
        err = open(tmp / "first.err", "w")
        p = subprocess.Popen(cmd + [str(cfg), "-o", str(out), "--workers", "2", "--no-progress"], env=env,
                             stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True, cwd=tmp)
        sids.append(p.pid)
        # the cluster for the resume starts meanwhile (its `ray start`s mostly wait on process startup)
        started = pool.submit(lambda: (cluster.start_head(num_cpus=1), cluster.add_node("127.0.0.3", num_cpus=1)))
        deadline = time.time() + 900
        while not any(e["event"] == "end" for e in _events(out)):
            assert p.poll() is None and time.time() < deadline, (tmp / "first.err").read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(1.0)
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: Tune stops cleanly and saves the experiment
        first_stdout, _ = p.communicate(timeout=300)
        err.close()
        first_err = (tmp / "first.err").read_text()
        first_rc = p.returncode
        first_trials = json.loads((out / "trials.json").read_text())["trials"] if (out / "trials.json").exists() \
            else []
        n_events = len(_events(out))

        started.result(timeout=600)
        r = subprocess.Popen(cmd + ["--resume", str(out), "--address", cluster.address, "--no-progress"],
                             env={**env, **cluster.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, cwd=tmp)  # not the checkout: Ray adds the cwd to workers' path
        sids.append(r.pid)
        second_stdout, second_err = r.communicate(timeout=1200)
        cluster.stop()
        left = cluster.pids()
        cluster = None
    finally:
        for sid in sids:
            if session_pids(sid):
                stop_sessions([sid])
        pool.shutdown(wait=True)  # a cluster still starting finishes starting, then stops
        if cluster is not None:
            cluster.stop()
    yield dict(out=out, tmp=tmp, first_rc=first_rc, first_stdout=first_stdout, first_err=first_err,
               first_trials=first_trials, n_events=n_events, second_rc=r.returncode, second_stdout=second_stdout,
               second_err=second_err, cluster_left=left, leaked_ray_dirs=_ray_dirs(p.pid) + _ray_dirs(r.pid),
               trials=json.loads((out / "trials.json").read_text()) if (out / "trials.json").exists() else {})


def test_interrupted_search_resumes_on_two_nodes_without_rerunning_finished_trials(run):
    out = run["out"]
    assert run["first_rc"] == 130, run["first_stdout"] + run["first_err"][-3000:]
    assert "--resume" in run["first_err"]
    finished = {t["trial"] for t in run["first_trials"] if t["status"] != "unfinished"}
    assert finished and len(finished) < 4, run["first_trials"]
    assert run["second_rc"] == 0, run["second_stdout"] + run["second_err"][-3000:]
    later = _events(out)[run["n_events"]:]
    restarted = {e["trial"] for e in later if e["event"] == "start"}
    assert restarted and not restarted & finished, later
    final = run["trials"]["trials"]
    assert len(final) == 4 and all(t["status"] == "ok" for t in final), [t["reason"] for t in final]
    assert {(t["cell"], t["units"]) for t in final} == {("gru", 4), ("gru", 6), ("rnn", 4), ("rnn", 6)}
    for t in final:  # the finished trials kept their results
        if t["trial"] in finished:
            before = next(b for b in run["first_trials"] if b["trial"] == t["trial"])
            assert (t["accuracy"], t["flash"], t["instructions"]) == \
                (before["accuracy"], before["flash"], before["instructions"])
    # the resumed trials ran on both nodes of the cluster, with the driver's edgernn uploaded there
    starts = [e for e in later if e["event"] == "start"]
    assert {e["node"] for e in starts} == {"127.0.0.2", "127.0.0.3"}, starts
    assert {t["node"] for t in final if t["trial"] in restarted} <= {"127.0.0.2", "127.0.0.3"}
    assert all(Path(e["code"]) != ROOT / "edgernn" and "runtime_resources" in e["code"] for e in starts), starts
    # nothing left running or lying around: the cluster's processes, the local Ray's session dir
    assert run["cluster_left"] == [] and run["leaked_ray_dirs"] == []


def _standalone(row: dict, out: Path, work: Path, opts: dict) -> dict:
    """What `edgernn emit` + `edgernn firmware run` give for the trial's model alone."""
    from edgernn import emit
    from edgernn.firmware import run_project

    fw = work / row["trial"]
    emit(out / "trials" / row["trial"] / "model.tflite", fw, backend=opts["backend"], target=opts["target"],
         test_data=opts["test_data"], samples=opts["samples"])
    res = run_project(fw)
    assert res.passed
    return dict(flash=res.sizes.flash, ram=res.sizes.ram, instructions=int(res.perf.per_inference))


def test_every_figure_equals_a_standalone_emit_and_firmware_run(run, tmp_path):
    out, doc = run["out"], run["trials"]
    rows = doc["trials"]
    assert len(rows) == 4 and all(r["flash"] and r["ram"] and r["instructions"] for r in rows), rows
    with ThreadPoolExecutor(2) as pool:
        alone = list(pool.map(lambda r: _standalone(r, out, tmp_path, doc["trial_firmware"]), rows))
    for row, a in zip(rows, alone):
        assert (row["flash"], row["ram"], row["instructions"]) == (a["flash"], a["ram"], a["instructions"]), row
    with open(out / "trials.csv") as f:
        table = {r["trial"]: r for r in csv.DictReader(f)}
    assert set(table) == {r["trial"] for r in rows}
    for row in rows:
        t = table[row["trial"]]
        assert (int(t["flash"]), int(t["ram"]), int(t["instructions"])) == \
            (row["flash"], row["ram"], row["instructions"])
        assert float(t["accuracy"]) == row["accuracy"]


def test_accuracy_best_model_and_outputs(run, bm_data):
    from edgernn.simulate import Simulator

    out, doc = run["out"], run["trials"]
    rows = doc["trials"]
    # accuracy: the int8 model on the validation split; the best is the most accurate, scored on test too
    val = np.load(out / "data" / "val.npz")
    for row in rows:
        sim = Simulator.from_file(out / "trials" / row["trial"] / "model.tflite")
        pred = sim.run(sim.quantize_input(val["x"])).argmax(axis=1)
        assert row["accuracy"] == float(np.mean(pred == val["y"]))
    best = doc["best"]
    assert best["accuracy"] == max(r["accuracy"] for r in rows)
    test = np.load(bm_data[1])
    sim = Simulator.from_file(out / "best" / "model.tflite")
    assert best["test_accuracy"] == float(np.mean(sim.run(sim.quantize_input(test["x"])).argmax(axis=1) == test["y"]))
    assert (out / "best" / "model.tflite").read_bytes() == (out / "trials" / best["trial"] / "model.tflite").read_bytes()
    assert (out / "best" / "model.keras").is_file() and (out / "best" / "firmware" / "edgernn_project.json").is_file()
    assert (out / "pareto.png").stat().st_size > 10_000 and "<svg" in (out / "pareto.svg").read_text()
    assert any(r["pareto"] for r in rows)
    # the CLI's summary names the best trial and its figures
    assert f"best: trial {best['trial']}" in run["second_stdout"] and f"flash {best['flash']:,} B" in run["second_stdout"]


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
