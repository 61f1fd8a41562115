"""edgernn search without Ray: search.toml checks (bad input -> one line, exit 2, nothing written),
parameter counts, budgets, the Pareto front, the table and the plot."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from edgernn.cli import main
from edgernn.search import Budget, count_params, load_config
from edgernn.search.config import Floors, grid_points
from edgernn.search.results import front_2d, mark_pareto, ranked
from edgernn.search.trial import over_budget, refusal

ISSUE_CONFIG = """\
[data]
train = "train.npz"
test = "test.npz"        # optional; otherwise a split of train

[space]
cell = ["gru", "lstm"]
units = [8, 16]

[budget]
target = "cortex-m4"
max_flash = 65536
max_ram = 16384

[search]
trials = 4
epochs = 10
"""


@pytest.fixture
def workdir(tmp_path, bm_data):
    """A directory with BasicMotions as train.npz / test.npz, as the issue's config names them."""
    import shutil
    shutil.copy(bm_data[0], tmp_path / "train.npz")
    shutil.copy(bm_data[1], tmp_path / "test.npz")
    return tmp_path


def test_issue_minimal_config_reads_as_is(workdir):
    (workdir / "search.toml").write_text(ISSUE_CONFIG)
    cfg = load_config(workdir / "search.toml")
    assert cfg.space["cell"] == ["gru", "lstm"] and cfg.space["units"] == [8, 16]
    assert cfg.space["epochs"] == [10] and cfg.budget.max_ram == 16384 and cfg.budget.target == "cortex-m4"
    assert (cfg.features, cfg.timesteps, cfg.classes) == (6, 100, 4)
    # 4 trials over 4 combinations: every one runs once rather than Optuna drawing repeats
    assert cfg.settings["algorithm"] == "grid" and cfg.n_trials() == 4 and cfg.notes
    assert cfg.test == (workdir / "test.npz").resolve()


def test_param_count_equals_keras():
    from edgernn.train import build_model

    for cell in ("rnn", "lstm", "gru"):
        for bi in (False, True):
            for layers in (1, 2):
                m = build_model(20, 3, 5, cell=cell, units=7, layers=layers, bidirectional=bi)
                assert count_params(cell, 7, layers, bi, 3, 5) == m.count_params(), (cell, bi, layers)


BAD = [
    ("unknown key", "[space]\nunits = [4, 8]\nunitz = [1]\n", "[space] unitz: unknown key"),
    ("unknown table", "[space]\nunits = [4, 8]\n[budgets]\nmax_flash = 1\n", "[top level] budgets: unknown key"),
    ("empty space", "[space]\n", "[space] is empty"),
    ("no space", "", "[space] is empty"),
    ("empty list", "[space]\nunits = []\ncell = [\"gru\", \"lstm\"]\n", "[space] units: an empty list"),
    ("nothing to search", "[space]\nunits = [8]\n", "nothing to search"),
    ("string for int", "[space]\nunits = [\"eight\", 16]\n", "[space] units: 'eight' is not an integer"),
    ("bool for int", "[space]\nunits = [true, 16]\n", "[space] units: True is not an integer"),
    ("bad cell", "[space]\ncell = [\"lstm\", \"transformer\"]\n", "[space] cell: 'transformer' is not one of"),
    ("int for bool", "[space]\nbidirectional = [0, 1]\n", "[space] bidirectional: 0 is not true or false"),
    ("bad range", "[space]\nlr = {min = 0.1, max = 0.01}\n", "[space] lr: a range needs 0 < min < max"),
    ("range in grid", "[space]\nlr = {min = 1e-3, max = 1e-2}\n[search]\nalgorithm = \"grid\"\n",
     "a range cannot be a grid"),
    ("duplicate", "[space]\nunits = [8, 8]\n", "lists a choice twice"),
    ("conv not yet", "[space]\nunits = [4, 8]\nconv = [0, 8]\n", "[space] conv: a convolutional front-end"),
    ("state not yet", "[space]\nunits = [4, 8]\nstate = [\"int8\", \"int16\"]\n", "[space] state: the state width"),
    ("impossible flash", "[space]\nunits = [16, 32]\ncell = [\"lstm\"]\n[budget]\nmax_flash = 1000\n",
     "[budget] max_flash 1000: no model in [space] fits"),
    ("negative budget", "[space]\nunits = [4, 8]\n[budget]\nmax_ram = -5\n", "[budget] max_ram: -5 is not"),
    ("float budget", "[space]\nunits = [4, 8]\n[budget]\nmax_flash = 6.5e4\n", "[budget] max_flash: 65000.0 is not"),
    ("latency without clock", "[space]\nunits = [4, 8]\n[budget]\nmax_latency_ms = 5\n",
     "[budget] max_latency_ms: needs cpu_hz"),
    ("latency below one instruction", "[space]\nunits = [4, 8]\n[budget]\nmax_latency_ms = 1e-9\ncpu_hz = 1000\n",
     "less than one instruction"),
    ("instructions on host", "[space]\nunits = [4, 8]\n[budget]\ntarget = \"host\"\nmax_instructions = 5\n",
     "[budget] max_instructions: the host target"),
    ("unknown target", "[space]\nunits = [4, 8]\n[budget]\ntarget = \"esp32\"\n", "[budget] target: 'esp32'"),
    ("accuracy above 1", "[space]\nunits = [4, 8]\n[budget]\nmin_accuracy = 90\n", "[budget] min_accuracy: 90"),
    ("trials as string", "[space]\nunits = [4, 8]\n[search]\ntrials = \"4\"\n", "[search] trials: '4'"),
    ("bad algorithm", "[space]\nunits = [4, 8]\n[search]\nalgorithm = \"bayes\"\n", "[search] algorithm: 'bayes'"),
    ("epochs twice", "[space]\nepochs = [2, 4]\n[search]\nepochs = 3\n", "[space] epochs: also given in [search]"),
    ("bad toml", "[space\n", "not valid TOML"),
]


@pytest.mark.parametrize("name,body,message", BAD, ids=[b[0] for b in BAD])
def test_bad_config_one_line_exit_2_nothing_written(workdir, name, body, message):
    head = "" if name == "bad toml" else "[data]\ntrain = \"train.npz\"\n"
    (workdir / "search.toml").write_text(head + body)
    out = workdir / "out"
    r = CliRunner().invoke(main, ["search", str(workdir / "search.toml"), "-o", str(out)])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output
    assert "search.toml" in lines[0]  # names the file
    assert not out.exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["search.toml", "test.npz", "train.npz"]


def test_bad_data_and_directories(workdir):
    run = CliRunner().invoke
    (workdir / "search.toml").write_text("[data]\ntrain = \"missing.npz\"\n[space]\nunits = [4, 8]\n")
    r = run(main, ["search", str(workdir / "search.toml"), "-o", str(workdir / "out")])
    assert r.exit_code == 2 and "missing.npz: no such data file" in r.output
    reg = workdir / "reg.npz"
    np.savez(reg, x=np.zeros((20, 5, 2), np.float32), y=np.linspace(0, 1, 20).astype(np.float32))
    (workdir / "search.toml").write_text("[data]\ntrain = \"reg.npz\"\n[space]\nunits = [4, 8]\n")
    r = run(main, ["search", str(workdir / "search.toml"), "-o", str(workdir / "out")])
    assert r.exit_code == 2 and "ranks models by accuracy" in r.output
    (workdir / "search.toml").write_text("[data]\ntrain = \"train.npz\"\n[space]\nunits = [4, 8]\n")
    busy = workdir / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    r = run(main, ["search", str(workdir / "search.toml"), "-o", str(busy)])
    assert r.exit_code == 2 and "exists and is not empty" in r.output and (busy / "mine.txt").read_text() == "keep"
    r = run(main, ["search", "--resume", str(busy)])
    assert r.exit_code == 2 and "not a search directory" in r.output
    r = run(main, ["search", str(workdir / "search.toml")])
    assert r.exit_code == 2 and "give CONFIG and -o OUT" in r.output
    assert sorted(p.name for p in workdir.iterdir()) == ["busy", "reg.npz", "search.toml", "test.npz", "train.npz"]


def test_over_budget_and_refusal():
    b = Budget(target="cortex-m4", max_flash=30000, max_ram=20000, max_latency_ms=5.0, cpu_hz=80_000_000)
    assert b.instruction_limit == 400_000
    reasons, worst = over_budget(dict(flash=31000, ram=10000, instructions=500_000, latency_ms=6.25), b)
    assert reasons == ["flash 31,000 > max_flash 30,000", "latency ms 6.25 > max_latency_ms 5.0"]
    assert math.isclose(worst, 0.25)
    assert over_budget(dict(flash=30000, ram=20000, instructions=400_000, latency_ms=5.0), b) == ([], 0.0)
    settings = dict(features=6, classes=4, floors={})
    big = dict(cell="lstm", units=64, layers=1, bidirectional=False)  # 4*64*(6+64+1) + 64*4 + 4 = 18,436
    assert refusal(big, settings, Budget(max_flash=10000))[0].startswith("18,436 int8 parameters")
    assert refusal(big, settings, b) is None
    floors = {"gru": dict(flash=21000, ram=17000, instructions=10, config=dict(units=8, layers=1,
                                                                             bidirectional=False))}
    why, score = refusal(dict(cell="gru", units=16, layers=1, bidirectional=False), dict(settings, floors=floors),
                         Budget(max_flash=20000))
    assert "smallest gru model" in why and "flash 21,000 > max_flash 20,000" in why and score < 0
    assert Floors(floors).broken("gru", Budget(max_flash=21000)) is None


def _row(trial, acc, flash, ram, instr, status="ok"):
    return dict(trial=trial, accuracy=acc, flash=flash, ram=ram, instructions=instr, latency_ms=None,
                status=status, cell="gru", units=8, layers=1, bidirectional=False, qat=False, pareto=False)


def test_pareto_front_and_ranking():
    rows = [_row("a", 0.9, 30000, 9000, 500), _row("b", 0.8, 20000, 9000, 400),
            _row("c", 0.8, 25000, 9500, 450),  # dominated by b
            _row("d", 0.95, 60000, 9000, 900, status="over budget"),
            _row("e", 0.7, 20000, 9000, 400)]  # dominated by b
    mark_pareto(rows)
    assert [r["trial"] for r in rows if r["pareto"]] == ["a", "b", "d"]
    assert [r["trial"] for r in front_2d(rows, "flash")] == ["b", "a", "d"]
    assert [r["trial"] for r in ranked(rows)] == ["a", "b", "c", "e"]


def test_plot_writes_png_and_svg(tmp_path):
    from edgernn.search.plot import plot

    rows = [_row("a", 0.9, 30000, 9000, 500_000), _row("b", 0.8, 20000, 9000, 400_000),
            _row("d", 0.95, 70000, 9000, 900_000, status="over budget")]
    mark_pareto(rows)
    b = Budget(max_flash=65536, max_ram=16384, max_instructions=800_000, min_accuracy=0.5)
    paths = plot(rows, b, tmp_path / "pareto", rows[0], "test")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths[1].read_text()
    assert "<svg" in svg and "max_flash" in svg and "instructions per inference" in svg


def test_grid_points():
    pts = grid_points({"cell": ["gru", "lstm"], "units": [4, 8, 16]})
    assert len(pts) == 6 and {"cell": "lstm", "units": 16} in pts
    json.dumps(pts)


def test_trial_status_from_its_last_result():
    from edgernn.search.results import _status

    assert _status(dict(phase="done", fits=True), "TERMINATED", None) == ("ok", "")
    assert _status(dict(phase="done", fits=False, reason="flash 70,000 > max_flash 65,536"), "TERMINATED",
                   None)[0] == "over budget"
    assert _status(dict(phase="done", fits=False, reason="accuracy 0.5000 < min_accuracy 0.9"), "TERMINATED",
                   None)[0] == "below min_accuracy"
    assert _status(dict(phase="refused", reason="r"), "TERMINATED", None) == ("refused", "r")
    stopped = _status(dict(phase="train", epoch=3, score=0.25), "TERMINATED", None)
    assert stopped[0] == "stopped" and "by ASHA after epoch 3" in stopped[1]
    assert _status(dict(phase="train", epoch=3, score=0.25), "PENDING", None)[0] == "unfinished"
    assert _status({}, None, RuntimeError("worker died\nOOM"))  == ("error", "OOM")


def test_a_trial_finished_while_the_search_stopped_counts_as_finished(tmp_path):
    """Ctrl-C can land between a trial writing its result.json and Tune recording the result: the
    tables count it from result.json, and a resumed trial reports it again instead of running."""
    from types import SimpleNamespace

    from edgernn.search.results import collect
    from edgernn.search.trial import _finished

    d = tmp_path / "trials" / "t_00000"
    d.mkdir(parents=True)
    final = dict(trial_id="t_00000", phase="done", fits=True, reason="", accuracy=0.75, flash=1000, ram=500,
                 instructions=10, units=4)
    (d / "result.json").write_text(json.dumps(final))
    epoch = dict(phase="train", epoch=1, score=0.5)
    grid = [SimpleNamespace(metrics=dict(epoch, trial_id="t_00000"), path=None, error=None, config={"units": 4}),
            SimpleNamespace(metrics=dict(epoch, trial_id="t_00001"), path=None, error=None, config={"units": 6})]
    rows = collect(grid, {"t_00000": "RUNNING", "t_00001": "RUNNING"}, {"cell": "gru"}, tmp_path / "trials")
    assert [(r["trial"], r["status"]) for r in rows] == [("t_00000", "ok"), ("t_00001", "unfinished")]
    assert (rows[0]["accuracy"], rows[0]["flash"], rows[0]["cell"]) == (0.75, 1000, "gru")
    assert _finished(None, d) == final
    (d / "result.json").write_text(json.dumps(epoch))
    assert _finished(None, d) is None and _finished(None, tmp_path / "trials" / "t_00001") is None
