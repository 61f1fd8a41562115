"""Instructions, flash and RAM of the native backend's LSTM on a Cortex-M4 (QEMU mps2-an386).

Takes the headline model (LSTM(32) on BasicMotions: 100 time steps x 6 features, 4 classes),
trained with ``edgernn.train`` and converted to int8 with ``edgernn.convert`` once by
``bench/_headline.py`` (or ``--model``, converted here), emits plain C with the
native backend, builds the Cortex-M4 self-test with arm-none-eabi-gcc and runs it in QEMU with
``-icount`` (SysTick then counts executed instructions). Prints instructions per inference and
per time step next to the model's multiply-accumulates (from ``edgernn.load_model(..).macs()``),
and the firmware's flash and RAM next to what the TFLM flatbuffer and arena would take.

    python bench/bench_firmware.py                      # the headline model (trained once, --epochs 40)
    python bench/bench_firmware.py --model m.keras      # reuse a trained model
    python bench/bench_firmware.py --cell gru --units 16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import _headline  # noqa: E402  (bench/_headline.py: the shared benchmark models)


def _bytes(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KiB)"


def bench(work: Path, *, model: Path | None, cell: str, units: int, layers: int, epochs: int, samples: int,
          opt: str) -> dict:
    import numpy as np

    import edgernn
    from edgernn.backends.native import emit_native
    from edgernn.firmware import run_project, write_project
    from edgernn.simulate import Simulator

    train, test = _headline.data("basic_motions")
    if model is None:
        spec = dict(cell=cell, units=units, layers=layers, epochs=epochs)
        model, tflite = _headline.keras_model(**spec), _headline.tflite(**spec)
    else:
        tflite = work / "model.tflite"
        edgernn.convert(model, calib=train, output=tflite)

    sources = emit_native(tflite, work / "native", "motion")
    sim = Simulator.from_file(tflite)
    with np.load(test, allow_pickle=False) as z:
        x = sim.quantize_input(z["x"][:samples])
    y = sim.run(x)
    proj = write_project(work / "fw", target="cortex-m4", backend="native", name="motion", vectors_x_int8=x,
                         vectors_y_int8=y, model_sources=sources, source=str(model), opt=opt)
    result = run_project(proj.dir, timeout=600)

    ir = edgernn.load_model(model)
    timesteps = int(x.shape[1])
    macs = ir.macs(timesteps)
    report = edgernn.inspect(tflite)
    perf, sizes = result.perf, result.sizes
    return dict(
        model=str(model), cell=cell, units=units, layers=layers, timesteps=timesteps, features=int(x.shape[2]),
        params=ir.param_count, macs_per_inference=macs, macs_per_step=macs / timesteps,
        passed=result.passed, vectors=len(result.vectors), opt=opt,
        instructions_per_inference=perf.per_inference, instructions_per_step=perf.per_step,
        instructions_step_max=perf.step_max, instructions_per_mac=perf.per_inference / macs,
        flash=sizes.flash, ram=sizes.ram, flash_parts=sizes.flash_parts, ram_parts=sizes.ram_parts,
        tflite_bytes=tflite.stat().st_size, tflm_arena_bytes=report.arena_bytes,
    )


def print_table(r: dict) -> None:
    rows = [
        ("model", f"{r['cell'].upper()}({r['units']}) x{r['layers']}, {r['timesteps']} x {r['features']} input, "
                  f"{r['params']:,} parameters"),
        ("self-test", f"{'PASS' if r['passed'] else 'FAIL'} on {r['vectors']} vectors (bit-exact vs the simulator)"),
        ("MACs per inference", f"{r['macs_per_inference']:,}"),
        ("instructions per inference", f"{r['instructions_per_inference']:,.0f}  (Cortex-M4, {r['opt']}, QEMU -icount)"),
        ("instructions per MAC", f"{r['instructions_per_mac']:.2f}"),
        ("MACs per time step", f"{r['macs_per_step']:,.0f}"),
        ("instructions per time step", f"{r['instructions_per_step']:,.1f} mean, {r['instructions_step_max']:,.0f} "
                                       "slowest (streaming, NAME_step)"),
        ("flash", f"{_bytes(r['flash'])}: weights {r['flash_parts']['weights']:,}, kernels "
                  f"{r['flash_parts']['kernels']:,}, harness + libc {r['flash_parts']['rest']:,}"),
        ("RAM", f"{_bytes(r['ram'])}: model state {r['ram_parts']['kernels']:,}, stack {r['ram_parts']['stack']:,}, "
                f"heap {r['ram_parts']['heap']:,}, rest {r['ram_parts']['rest']:,}"),
        ("TFLM for comparison", f"flatbuffer {r['tflite_bytes']:,} B + arena {r['tflm_arena_bytes']:,} B "
                                f"(native weights / flatbuffer = "
                                f"{r['flash_parts']['weights'] / r['tflite_bytes']:.2f})"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a trained Keras model for BasicMotions (skips training)")
    ap.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    ap.add_argument("--units", type=int, default=32)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=_headline.HEADLINE["epochs"])
    ap.add_argument("--samples", type=int, default=4, help="self-test vectors run on the device")
    ap.add_argument("--opt", default="-O2", help="optimisation flag for arm-none-eabi-gcc")
    ap.add_argument("--json", type=Path, help="also write the numbers to this file")
    ap.add_argument("--work", type=Path, help="keep the model, sources and firmware here (default: a temporary dir)")
    args = ap.parse_args(argv)
    from edgernn.errors import EdgeRNNError

    with tempfile.TemporaryDirectory(prefix="edgernn-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            r = bench(work, model=args.model, cell=args.cell, units=args.units, layers=args.layers,
                      epochs=args.epochs, samples=args.samples, opt=args.opt)
        except EdgeRNNError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    print_table(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
