"""Native C99 backend vs the TFLM interpreter on the same int8 models: RAM, flash, latency.

Takes the headline model (LSTM(32) on BasicMotions: 100 time steps x 6 features, 4 classes,
trained and converted once by ``bench/_headline.py``) unless ``--model``/``--tflite`` is given
(converted with ``edgernn convert``), and compares, in one run:

* RAM: the native code's static state + scratch (``NAME_STATE_BYTES + NAME_SCRATCH_BYTES``)
  vs the exact minimum TFLM arena (``edgernn.backends.tflm.arena.min_arena_bytes``);
* flash: weights + kernel code, i.e. ``.text + .rodata + .data`` of ``NAME.o`` and
  ``edgernn_kernels.o`` compiled with arm-none-eabi-gcc for the Cortex-M4 (read with pyelftools),
  vs the flatbuffer's bytes (the interpreter's own code is extra for TFLM and not counted);
* host latency per inference: the compiled native C (gcc -O2, process CPU time inside the C
  harness over many runs) vs ``tflite_micro.runtime`` ``invoke()`` (process CPU time in Python).
  CPU time rather than wall time keeps other processes on the machine out of the numbers.

The headline row is followed by the same weights at T = 25, 50, 100, 200, 400 (the flatbuffer's
time axis rewritten), showing time linear in T and native RAM constant. Every row also checks
that the native outputs equal the TFLM runtime's bit for bit.

    python bench/bench_native.py                     # the headline LSTM(32) (trained once, --epochs 40)
    python bench/bench_native.py --tflite m.tflite   # an int8 model edgernn convert wrote
    python bench/bench_native.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import _headline  # noqa: E402  (bench/_headline.py: the shared benchmark models)

SWEEP = (25, 50, 100, 200, 400)
TARGETS = {"ram": 4.0, "latency": 5.0, "flash_margin": 8 * 1024}


def tflm_cpu_ns(raw: bytes, xq, repeats: int) -> tuple[float, "np.ndarray"]:
    """CPU ns per invoke() (reset between samples, as a fresh inference) and the outputs."""
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(raw, arena_size=8 << 20)
    outs = []
    for s in xq:  # warm-up and reference outputs
        it.reset()
        it.set_input(s[None], 0)
        it.invoke()
        outs.append(np.array(it.get_output(0)).reshape(-1))
    spent = 0.0
    for _ in range(repeats):
        for s in xq:
            it.reset()
            it.set_input(s[None], 0)
            t0 = time.process_time()
            it.invoke()
            spent += time.process_time() - t0
    return spent / (repeats * len(xq)) * 1e9, np.stack(outs)


def measure(tflite: Path, xq, work: Path, *, repeats: int, native_repeats: int) -> dict:
    import numpy as np

    from edgernn.backends.native.host import NativeBuild, object_sizes
    from edgernn.backends.tflm.arena import min_arena_bytes

    raw = tflite.read_bytes()
    build = NativeBuild.create(tflite, work / "host", name="model")
    plan = build.plan
    sizes = object_sizes(tflite, work / "arm", name="model")
    flash = sum(s["text"] + s["rodata"] + s["data"] for s in sizes.values())
    native_ns = build.time_per_inference_ns(xq, native_repeats)
    tflm_ns, want = tflm_cpu_ns(raw, xq, repeats)
    got = build.run(xq).reshape(len(xq), -1)
    arena = min_arena_bytes(raw)
    ram = plan.state_bytes + plan.scratch_bytes
    return dict(
        cell=getattr(plan.recurrent[0], "cell", "lstm"), units=plan.recurrent[0].n_cell, layers=len(plan.recurrent), timesteps=int(xq.shape[1]),
        bit_exact=bool(np.array_equal(got, want)), samples=len(xq),
        native_ram=ram, state_bytes=plan.state_bytes, scratch_bytes=plan.scratch_bytes, tflm_arena=arena,
        ram_ratio=arena / ram, native_flash=flash, flash_parts=sizes, flatbuffer=len(raw),
        flash_over_flatbuffer=flash - len(raw), native_us=native_ns / 1e3, tflm_us=tflm_ns / 1e3,
        speedup=tflm_ns / native_ns,
    )


def print_table(rows: list[dict], title: str) -> None:
    head = ("T", "native RAM", "TFLM arena", "RAM x", "native flash", "flatbuffer", "flash - fb",
            "native us", "TFLM us", "speed x", "bit-exact")
    lines = [(str(r["timesteps"]), f"{r['native_ram']:,} B", f"{r['tflm_arena']:,} B", f"{r['ram_ratio']:.1f}",
              f"{r['native_flash']:,} B", f"{r['flatbuffer']:,} B", f"{r['flash_over_flatbuffer']:+,} B",
              f"{r['native_us']:.1f}", f"{r['tflm_us']:.1f}", f"{r['speedup']:.1f}", "yes" if r["bit_exact"] else "NO")
             for r in rows]
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    print(title)
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for line in lines:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a trained Keras model for BasicMotions (skips training)")
    ap.add_argument("--tflite", type=Path, help="an int8 .tflite from `edgernn convert` (skips training and convert)")
    ap.add_argument("--dataset", choices=["basic_motions", "digits"],
                    help="test data (default: the one matching the model's features, 6 -> basic_motions, 8 -> digits)")
    ap.add_argument("--units", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=_headline.HEADLINE["epochs"])
    ap.add_argument("--samples", type=int, default=8, help="test samples per measurement")
    ap.add_argument("--repeats", type=int, default=5, help="passes over the samples for TFLM timing")
    ap.add_argument("--native-repeats", type=int, default=50, help="passes over the samples for native timing")
    ap.add_argument("--sweep", default=",".join(map(str, SWEEP)),
                    help="time steps of the T sweep ('' to skip; fused-LSTM models only)")
    ap.add_argument("--work", type=Path, help="keep the build directories here")
    ap.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = ap.parse_args(argv)

    import numpy as np

    import edgernn
    from edgernn.backends.native.host import tflite_with_timesteps
    from edgernn.tflite_model import read

    with tempfile.TemporaryDirectory(prefix="edgernn-bench-native-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dataset = args.dataset
        if dataset is None and args.tflite is not None:
            dataset = "digits" if read(args.tflite).input().shape[-1] == 8 else "basic_motions"
        train, test = _headline.data(dataset or "basic_motions")
        tflite = args.tflite
        if tflite is None and args.model is None:
            tflite = _headline.tflite(dataset=dataset or "basic_motions", units=args.units, epochs=args.epochs)
        elif tflite is None:
            tflite = work / "model.tflite"
            edgernn.convert(args.model, calib=train, output=tflite)
        m = read(tflite)
        inp = m.input()
        with np.load(test, allow_pickle=False) as z:
            x = z["x"][:args.samples]
        xq = np.clip(np.round(x / inp.scale[0]) + inp.zero_point[0], -128, 127).astype(np.int8)
        kw = dict(repeats=args.repeats, native_repeats=args.native_repeats)
        headline = measure(tflite, xq, work / "headline", **kw)
        sweep = []
        steps = [int(v) for v in args.sweep.split(",") if v]
        if steps and "WHILE" in m.op_counts:
            print("note: the T sweep rewrites fused-LSTM flatbuffers only; skipped for this WHILE-loop model")
            steps = []
        for t in steps:
            path = work / f"model_T{t}.tflite"
            path.write_bytes(tflite_with_timesteps(m.raw, t))
            xt = np.ascontiguousarray(np.resize(xq, (len(xq), t, xq.shape[2])) if t > xq.shape[1] else xq[:, :t])
            sweep.append(measure(path, xt.astype(np.int8), work / f"T{t}", **kw))

    title = (f"native C99 vs TFLM interpreter: {headline['cell'].upper()}({headline['units']}) "
             f"x{headline['layers']} on "
             f"{inp.shape[1]} x {inp.shape[2]}, {m.output().shape[-1]} classes ({tflite.name})")
    print_table([headline], title)
    if sweep:
        print()
        print_table(sweep, "same weights, sequence length swept (time should grow linearly with T, RAM stay constant)")
        us_per_step = [r["native_us"] / r["timesteps"] for r in sweep]
        tflm_per_step = [r["tflm_us"] / r["timesteps"] for r in sweep]
        print(f"\nper time step: native {min(us_per_step):.2f}-{max(us_per_step):.2f} us, "
              f"TFLM {min(tflm_per_step):.2f}-{max(tflm_per_step):.2f} us; native RAM "
              f"{'constant' if len({r['native_ram'] for r in sweep}) == 1 else 'NOT constant'} "
              f"({sweep[0]['native_ram']} B), TFLM arena {sweep[0]['tflm_arena']:,}..{sweep[-1]['tflm_arena']:,} B")
    h = headline
    checks = [
        ("RAM <= 1/4 of the TFLM arena", h["ram_ratio"] >= TARGETS["ram"], f"{h['ram_ratio']:.1f}x smaller"),
        ("latency >= 5x faster than TFLM invoke", h["speedup"] >= TARGETS["latency"], f"{h['speedup']:.1f}x"),
        ("weights + code <= flatbuffer + 8 KiB", h["flash_over_flatbuffer"] <= TARGETS["flash_margin"],
         f"{h['native_flash']:,} B vs {h['flatbuffer']:,} + 8,192 B"),
        ("bit-exact with TFLM on every row", all(r["bit_exact"] for r in [h, *sweep]), ""),
    ]
    print("\ntargets (headline model):")
    for name, ok, detail in checks:
        print(f"  [{'met' if ok else 'MISSED'}] {name}: {detail}")
    if args.json:
        args.json.write_text(json.dumps({"headline": h, "sweep": sweep,
                                         "targets": {n: ok for n, ok, _ in checks}}, indent=2))
    return 0 if all(ok for _, ok, _ in checks[-1:]) else 1


if __name__ == "__main__":
    sys.exit(main())
