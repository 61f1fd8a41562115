"""Simulator vs a per-sample TFLM loop on the headline model: LSTM(32) on BasicMotions (100 x 6).

Trains the model with ``edgernn.train``, converts it with ``edgernn.convert``, then times
``tflite_micro.runtime`` called once per sample (``reset``, ``set_input``, ``invoke``,
``get_output``) against ``Simulator.run`` on all samples at once, for each simulator engine.
Every timed run is also checked bit for bit against TFLM. Prints a Markdown table.

    python bench/bench_simulator.py [--samples 40 200 1000] [--epochs 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


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
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3, help="simulator runs per size (best is kept)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the data and models here")
    args = ap.parse_args(argv)
    if args.workdir is None:
        with tempfile.TemporaryDirectory(prefix="edgernn-bench-") as tmp:
            return run(args, Path(tmp))
    return run(args, args.workdir)


def run(args, work: Path) -> int:
    import edgernn
    from edgernn import datasets
    from edgernn.simulate import Simulator, _fast

    train, test = datasets.write("basic_motions", work / "data")
    keras_path, tfl_path = work / "lstm32.keras", work / "lstm32.tflite"
    if not tfl_path.exists():
        edgernn.train(train, cell="lstm", units=32, epochs=args.epochs, seed=0, output=keras_path, progress=False)
        edgernn.convert(keras_path, calib=train, output=tfl_path)
    with np.load(test) as z:
        x_test = z["x"]

    engines = ["numpy"] + (["numba"] if _fast.numba is not None else [])
    sims = {e: Simulator.from_file(tfl_path, engine=e) for e in engines}
    xq_all = sims["numpy"].quantize_input(x_test)
    compile_s = {}
    for e, sim in sims.items():  # first call compiles (numba) / warms caches
        t0 = time.perf_counter()
        sim.run(xq_all[:2])
        compile_s[e] = time.perf_counter() - t0

    head = ["samples", "TFLM loop s"] + [f"sim {e} s | speedup" for e in engines]
    rows = []
    for n in args.samples:
        xq = np.resize(xq_all, (n,) + xq_all.shape[1:])  # the test set repeated to n samples
        ref, t_tflm = tflm_loop(tfl_path, xq)
        row = [str(n), f"{t_tflm:.3f}"]
        for e, sim in sims.items():
            y, t_sim = best_of(lambda s=sim: s.run(xq), args.repeat)
            if not np.array_equal(y, ref):
                print(f"MISMATCH: engine {e} differs from TFLM on {n} samples", file=sys.stderr)
                return 1
            row.append(f"{t_sim:.3f} | {t_tflm / t_sim:.1f}x")
        rows.append(row)

    threads = f", numba threads {_fast.numba.get_num_threads()}" if _fast.numba is not None else ""
    print(f"LSTM(32) on BasicMotions 100x6, int8 ({tfl_path.stat().st_size} bytes); outputs identical to TFLM "
          f"on every sample{threads}, {os.cpu_count()} CPUs. First-call (compile/warm-up) seconds: "
          + ", ".join(f"{e} {s:.2f}" for e, s in compile_s.items()))
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * (len(head) + len(engines)))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
