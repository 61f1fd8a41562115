"""WHILE-graph cells before and after issue 15: flatbuffer size, precision, arena, time per step.

For GRU(32), SimpleRNN(32) (1, 2 and 4 stacked layers, and Bidirectional) and a
Bidirectional LSTM(32), at T = 25, 150 and 600, one table per cell with, for each model:

* flatbuffer bytes and their overhead over the int8 weights (the issue's "weights + 16 KB");
* p99 over the test sequences of the largest output-probability error against the model's own
  float version, next to the fused LSTM's of the same size on the same data (LSTM(32) with as
  many layers; two layers for a Bidirectional model);
* the exact TFLM arena: TFLM's allocator replayed (:mod:`edgernn.backends.tflm.allocator`,
  offline plan included) when it equals the head and tail ``tflite_micro.runtime`` records for
  the model, else bisection (:func:`edgernn.backends.tflm.arena.min_arena_bytes`); measured by
  this tree for the "before" flatbuffers too;
* ``tflite_micro.runtime`` process CPU time per time step (best of 3, a few sequences).

"before" is the code before issue 15 (git revision ``--before``, default ``7d6d2a3``), exported
with ``git archive`` and run on the same trained models in a child process; "after" is this
tree, with ``--state int16`` (the default) and ``--state int8``. Then a second table per model:
arena beyond the input and output sequences and time per step at T=600 over T=25 (1.00: flat).

Data: a synthetic 4-class, 3-feature sequence task (class = the frequency band of a noisy
oscillation with a class-dependent second channel; deterministic), trained once at T=150 with
``edgernn.train`` (15 epochs, cached in ``$EDGERNN_BENCH_CACHE``, see ``_headline.py``) and
evaluated at each T on 100 new sequences; calibration: 300 training sequences cut to T.

    python bench/bench_while.py                  # everything (~1 h on 2 cores, most of it training and T=600)
    python bench/bench_while.py --cells gru --ts 25,150 --no-before
    python bench/bench_while.py --cells gru,lstm --topos x1,x4,bi
    python bench/bench_while.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

import _headline  # noqa: E402  (the benchmark cache directory)

UNITS = 32
TOPOLOGIES = {"gru": ["x1", "x2", "x4", "bi"], "rnn": ["x1", "x2", "x4", "bi"], "lstm": ["bi"]}
TS = (25, 150, 600)
BEFORE = "7d6d2a3"
F, CLASSES, TRAIN_T = 3, 4, 150


def make_data(n: int, t_steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic task: frequency band of a noisy oscillation (+ a class-dependent channel)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    t = np.arange(t_steps)[None, :]
    f = np.array([0.03, 0.06, 0.10, 0.15])[y][:, None] * rng.uniform(0.85, 1.15, (n, 1))
    ph = rng.uniform(0, 2 * np.pi, (n, 1))
    x0 = np.sin(2 * np.pi * f * t + ph)
    x1 = np.where((y % 2 == 0)[:, None], np.abs(x0), -0.5 * x0) + 0.2 * np.cos(4 * np.pi * f * t)
    x2 = np.cumsum(rng.normal(0, 0.1, (n, t_steps)), axis=1) * 0.3
    x = np.stack([x0, x1, x2], -1) + rng.normal(0, 0.25, (n, t_steps, F))
    return x.astype(np.float32), y.astype(np.int64)


def keras_path(cell: str, topo: str, cache: Path) -> Path:
    """The trained model (cached): ``topo`` x1 / x2 / x4 stacked layers or bi (Bidirectional)."""
    import edgernn

    path = cache / f"while-{cell}{UNITS}{topo}-e15-s0-v{edgernn.__version__}.keras"
    if not path.exists():
        d = cache / "data"
        d.mkdir(exist_ok=True)
        train = d / "while_train.npz"
        if not train.exists():
            x, y = make_data(1200, TRAIN_T, 0)
            np.savez(train, x=x, y=y)
        layers = 1 if topo == "bi" else int(topo[1:])
        edgernn.train(train, cell=cell, units=UNITS, layers=layers, bidirectional=topo == "bi", epochs=15,
                      seed=0, output=path, progress=False)
    return path


def exact_arena(data: bytes) -> int:
    """The smallest TFLM arena of ``data``: the allocator replay checked against the runtime's
    recorded head and tail, else bisection."""
    from edgernn import tflite_model
    from edgernn.backends.tflm.arena import min_arena_bytes

    try:
        from edgernn.backends.tflm.allocator import replay
        from edgernn.backends.tflm.arena import recorded_head_tail
    except ImportError:  # a tree without the replay
        return min_arena_bytes(data)
    host = replay(tflite_model.parse(data), "x86-64")
    if host.exact and (host.head, host.tail) == recorded_head_tail(data):
        return host.minimum
    return min_arena_bytes(data)


def measure(keras_file: str, t_steps: int, state: str | None, out_npz: str, arena: bool = True) -> dict:
    """Convert the model at ``t_steps`` (``state`` None: this tree's default / no option) and
    measure it; the dequantized test outputs go to ``out_npz``, the flatbuffer next to it
    (``.tflite``). Uses only APIs the code before issue 15 has too (this runs in the "before"
    child process as well, with ``arena`` False: the parent measures the arena)."""
    import edgernn
    from edgernn import tflite_model
    from edgernn.backends.tflm.runtime import TFLMRunner
    from edgernn.frontend import from_keras, load_keras_object

    m = from_keras(load_keras_object(keras_file))
    m.input.timesteps = None
    calib, _ = make_data(300, t_steps, 1)
    xte, _ = make_data(100, t_steps, 2)
    kw = {} if state is None else {"state": state}
    data = edgernn.convert(m, calib=calib, **kw).tflite
    Path(out_npz).with_suffix(".tflite").write_bytes(data)
    tm = tflite_model.parse(data)
    w8 = sum(t.data.nbytes for sg in tm.subgraphs for t in sg.tensors
             if t.data is not None and t.dtype == "int8" and len(t.shape) == 2)
    exact = exact_arena(data) if arena else None
    runner = TFLMRunner(data, arena_size=(exact or 4 << 20) * 2 + 4096)
    xq = runner.quantize_input(xte)
    y = runner.dequantize_output(runner.run(xq))
    np.save(out_npz, y)
    it, shape = runner.interpreter, tuple(runner.input_details["shape"])
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time_ns()
        for s in xq[:8]:
            it.reset()
            it.set_input(s.reshape(shape), 0)
            it.invoke()
        best = min(best, (time.process_time_ns() - t0) / 8)
    io = tm.input().nbytes + (tm.output().nbytes if len(tm.output().shape) == 3 else 0)
    return {"bytes": len(data), "int8_weights": w8, "arena": exact, "io_bytes": io,
            "us_per_step": best / t_steps / 1e3, "ops": sum(tm.op_counts.values())}


def _float_outputs(keras_file: Path, t_steps: int) -> np.ndarray:
    from edgernn.backends.tflm.keras_build import build_tf_keras
    from edgernn.frontend import from_keras, load_keras_object

    m = from_keras(load_keras_object(keras_file))
    net = build_tf_keras(m, timesteps=t_steps, batch_size=None)
    return np.asarray(net.predict(make_data(100, t_steps, 2)[0], verbose=0, batch_size=100))


def _p99(y8: np.ndarray, yf: np.ndarray) -> float:
    return float(np.percentile(np.abs(y8.reshape(yf.shape) - yf).max(axis=-1), 99))


def _before_tree(rev: str, tmp: Path) -> Path:
    repo = Path(__file__).resolve().parents[1]
    tree = tmp / f"edgernn-{rev}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "edgernn"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def _child(tree: Path, keras_file: Path, t_steps: int, out_npz: Path) -> dict:
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_while as b; "
            f"print('RESULT', json.dumps(b.measure({str(keras_file)!r}, {t_steps}, None, {str(out_npz)!r}, False)))")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=7200)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"the 'before' run failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    r = json.loads(line[7:])
    r["arena"] = exact_arena(Path(out_npz).with_suffix(".tflite").read_bytes())
    return r


def run(cells: list[str], ts: list[int], before: str | None, topos: list[str] | None = None,
        save: Path | None = None) -> dict:
    """Every model of ``cells`` x ``topos`` at each T; ``save``: the results so far are written
    there (JSON) after each model, so a long run interrupted keeps what it measured."""
    cache = _headline.cache_dir()
    chosen = {c: [t for t in TOPOLOGIES[c] if topos is None or t in topos] for c in cells}
    results: dict = {"ts": ts, "before": before, "models": {}}
    with tempfile.TemporaryDirectory(prefix="bench-while-") as tmp:
        tmp = Path(tmp)
        tree = _before_tree(before, tmp) if before else None
        refs = {}
        for layers in sorted({1 if t == "x1" or t == "bi" else int(t[1:]) for c in cells for t in chosen[c]}
                             | ({2} if any("bi" in chosen[c] for c in cells) else set())):
            k = keras_path("lstm", f"x{layers}", cache)
            for t in ts:
                r = measure(str(k), t, None, str(tmp / "y.npy"), arena=False)
                refs[(layers, t)] = _p99(np.load(tmp / "y.npy"), _float_outputs(k, t))
                print(f"fused LSTM({UNITS}) x{layers} T={t}: p99 {refs[(layers, t)]:.4f}", file=sys.stderr, flush=True)
        for cell in cells:
            for topo in chosen[cell]:
                k = keras_path(cell, topo, cache)
                for t in ts:
                    yf = _float_outputs(k, t)
                    row = {"fused_lstm_p99": refs[(2 if topo == "bi" else (1 if topo == "x1" else int(topo[1:])), t)]}
                    variants = [("int16", "int16"), ("int8", "int8")] + ([("before", None)] if tree else [])
                    for name, state in variants:
                        npz = tmp / f"{name}.npy"
                        r = _child(tree, k, t, npz) if name == "before" else measure(str(k), t, state, str(npz))
                        r["p99"] = _p99(np.load(npz), yf)
                        row[name] = r
                        print(f"{cell} {topo} T={t} {name}: {r}", file=sys.stderr, flush=True)
                    results["models"][f"{cell}|{topo}|{t}"] = row
                    if save is not None:
                        save.write_text(json.dumps(results, indent=1))
    return results


def _kb(b) -> str:
    return "-" if b is None else f"{b / 1024:.1f}"


def tables(res: dict) -> str:
    cols = [c for c in ("before", "int16", "int8") if any(c in r for r in res["models"].values())]
    lines = []
    names = {"gru": f"GRU({UNITS})", "rnn": f"SimpleRNN({UNITS})", "lstm": f"LSTM({UNITS})"}
    cells = sorted({k.split("|")[0] for k in res["models"]}, key=list(TOPOLOGIES).index)
    for cell in cells:
        lines += [f"\n{names[cell]}: {' / '.join(cols)} (int16 = the default `--state`)\n",
                  "| layers | T | flatbuffer KB | over int8 weights KB | p99 error | fused LSTM p99 | arena KB "
                  "| µs/step |", "| --- | ---: | --- | --- | --- | ---: | --- | --- |"]
        for key, row in res["models"].items():
            c, topo, t = key.split("|")
            if c != cell:
                continue
            cells_of = {
                "size": lambda r: _kb(r["bytes"]),
                "over": lambda r: _kb(r["bytes"] - r["int8_weights"]),
                "p99": lambda r: f"{r['p99']:.3f}",
                "arena": lambda r: _kb(r["arena"]),
                "time": lambda r: f"{r['us_per_step']:.2f}",
            }
            get = {name: " / ".join(f(row[v]) for v in cols) for name, f in cells_of.items()}
            lines.append(f"| {topo} | {t} | {get['size']} | {get['over']} | {get['p99']} | "
                         f"{row['fused_lstm_p99']:.3f} | {get['arena']} | {get['time']} |")
    ts = res["ts"]
    if len(ts) > 1:
        lo, hi = min(ts), max(ts)
        lines += [f"\nT = {hi} over T = {lo} (1.00: independent of T): arena beyond the input and output "
                  f"sequences, and µs per step ({' / '.join(cols)})\n",
                  "| model | arena ratio | step-time ratio |", "| --- | --- | --- |"]
        for key in sorted({k.rsplit("|", 1)[0] for k in res["models"]}):
            if f"{key}|{lo}" not in res["models"] or f"{key}|{hi}" not in res["models"]:
                continue  # a run cut short
            a, b = res["models"][f"{key}|{lo}"], res["models"][f"{key}|{hi}"]

            def ratio(v, f):
                x, y = f(a[v]), f(b[v])
                return "-" if not x or y is None else f"{y / x:.2f}"
            rest = lambda r: None if r["arena"] is None else r["arena"] - r["io_bytes"]  # noqa: E731
            lines.append(f"| {key.replace('|', ' ')} | {' / '.join(ratio(v, rest) for v in cols)} | "
                         f"{' / '.join(ratio(v, lambda r: r['us_per_step']) for v in cols)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", default="gru,rnn,lstm")
    ap.add_argument("--ts", default=",".join(map(str, TS)))
    ap.add_argument("--topos", default=None, help="only these topologies (x1,x2,x4,bi)")
    ap.add_argument("--before", default=BEFORE, help="git revision measured as 'before'")
    ap.add_argument("--no-before", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--from-json", type=Path, help="print the tables of a saved run")
    a = ap.parse_args()
    if a.from_json:
        res = json.loads(a.from_json.read_text())
    else:
        res = run(a.cells.split(","), [int(t) for t in a.ts.split(",")], None if a.no_before else a.before,
                  a.topos.split(",") if a.topos else None, save=a.json)
        if a.json:
            a.json.write_text(json.dumps(res, indent=1))
    print(tables(res))


if __name__ == "__main__":
    main()
