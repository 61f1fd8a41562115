"""Simulator vs a per-sample TFLM loop on BasicMotions (100 x 6): the headline LSTM(32), whose
int8 graph is one UNIDIRECTIONAL_SEQUENCE_LSTM op, and a GRU(16), which converts to a WHILE
loop of elementwise ops (the numba engine runs it as one compiled kernel, see
``edgernn/simulate/loop.py``).

Takes each model trained with ``edgernn.train`` and converted with ``edgernn.convert`` once by
``bench/_headline.py`` (the LSTM(32) is the headline model the other benchmarks use), then times
``tflite_micro.runtime`` called once per sample (``reset``, ``set_input``, ``invoke``,
``get_output``) against ``Simulator.run`` on all samples at once, for each simulator engine
(wall time; simulator best of ``--repeat``, TFLM loop best of up to 3; the compiled engine
uses ``NUMBA_NUM_THREADS`` threads).
Every timed run is also checked bit for bit against TFLM. Prints a Markdown table.

    python bench/bench_simulator.py [--samples 40 200 1000] [--models lstm gru] [--epochs 40] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import _headline  # noqa: E402  (bench/_headline.py: the shared benchmark models)


def tflm_loop(path: Path, xq: np.ndarray) -> tuple[np.ndarray, float]:
    from tflite_micro.python.tflite_micro import runtime

    ip = runtime.Interpreter.from_file(str(path))
    out = np.empty((len(xq),) + tuple(ip.get_output_details(0)["shape"][1:]), np.int8)
    t0 = time.perf_counter()
    for i in range(len(xq)):
        ip.reset()
        ip.set_input(xq[i:i + 1], 0)
        ip.invoke()
        out[i] = ip.get_output(0)[0]
    return out, time.perf_counter() - t0


def best_of(fn, repeat: int) -> tuple[np.ndarray, float]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return result, best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[40, 200, 1000])
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["lstm", "gru"])
    ap.add_argument("--epochs", type=int, default=_headline.HEADLINE["epochs"])
    ap.add_argument("--repeat", type=int, default=3, help="simulator runs per size (best is kept)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the data and models here (default: bench/_headline.py's cache)")
    args = ap.parse_args(argv)
    return run(args, args.workdir)


MODELS = {"lstm": ("LSTM(32)", 32), "gru": ("GRU(16)", 16)}


def run(args, work: Path | None) -> int:
    from edgernn.simulate import _fast

    _, test = _headline.data("basic_motions", cache=work)
    with np.load(test, allow_pickle=False) as z:
        x_test = z["x"]
    engines = ["numpy"] + (["numba"] if _fast.numba is not None else [])
    head = ["model", "samples", "TFLM loop s"] + [f"sim {e} s | speedup" for e in engines]
    rows, notes = [], []
    for cell in args.models:
        name, units = MODELS[cell]
        tfl_path = _headline.tflite(cell=cell, units=units, epochs=args.epochs, cache=work)
        model_rows, note = bench_model(name, tfl_path, x_test, engines, args)
        if model_rows is None:
            return 1
        rows += model_rows
        notes.append(note)

    threads = f"numba threads {_fast.numba.get_num_threads()}, " if _fast.numba is not None else ""
    print(f"BasicMotions 100x6, int8; outputs identical to TFLM on every sample; {threads}{os.cpu_count()} CPUs.")
    for note in notes:
        print(note)
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * (len(head) + len(engines)))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


def bench_model(name: str, tfl_path: Path, x_test: np.ndarray, engines: list[str], args):
    from edgernn.simulate import Simulator

    sims = {e: Simulator.from_file(tfl_path, engine=e) for e in engines}
    xq_all = sims["numpy"].quantize_input(x_test)
    compile_s = {}
    for e, sim in sims.items():  # first call compiles (numba) / warms caches
        t0 = time.perf_counter()
        sim.run(xq_all[:2])
        compile_s[e] = time.perf_counter() - t0
    ops = ", ".join(f"{op} x{n}" for op, n in sims["numpy"].model.op_counts.items())
    note = (f"{name}: {tfl_path.stat().st_size} bytes ({ops}); first call (compile/warm-up) s: "
            + ", ".join(f"{e} {s:.2f}" for e, s in compile_s.items()))
    rows = []
    for n in args.samples:
        xq = np.resize(xq_all, (n,) + xq_all.shape[1:])  # the test set repeated to n samples
        ref, t_tflm = tflm_loop(tfl_path, xq)
        for _ in range(min(args.repeat, 3) - 1):  # best of up to 3, like the simulator's best of --repeat
            t_tflm = min(t_tflm, tflm_loop(tfl_path, xq)[1])
        row = [name, str(n), f"{t_tflm:.3f}"]
        for e, sim in sims.items():
            y, t_sim = best_of(lambda s=sim: s.run(xq), args.repeat)
            if not np.array_equal(y, ref):
                print(f"MISMATCH: {name}, engine {e} differs from TFLM on {n} samples", file=sys.stderr)
                return None, note
            row.append(f"{t_sim:.4f} | {t_tflm / t_sim:.1f}x")
        rows.append(row)
    return rows, note


if __name__ == "__main__":
    sys.exit(main())
