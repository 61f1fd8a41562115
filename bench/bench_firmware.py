"""Instructions, flash and RAM of the native backend on every Cortex-M target, against TFLM + CMSIS-NN.

For each benchmark model (LSTM(32), LSTM(128), GRU(32), SimpleRNN(32) on BasicMotions: 100 time
steps x 6 features, 4 classes; trained and converted once by ``bench/_headline.py``; and the
hybrid, ``bench/bench_hybrid.py``'s 'valid' DeepConvLSTM: Conv1D(16, 5) x 2 + LSTM(32) + Dense(4),
plain TFLite converter, MACs counted from its .tflite) and each
Cortex-M target of ``edgernn/firmware/boards.py``, emits the native C for the target, builds
its self-test with arm-none-eabi-gcc, runs it in QEMU on the target's board with ``-icount``
(SysTick then counts executed instructions, calibrated per board) and checks every vector
against the simulator, which is bit-exact with TFLM. Prints instructions per inference and per
multiply-accumulate (MACs from ``edgernn.load_model(..).macs()``), flash and RAM.

The reference rows are TFLM (reference kernels, and with CMSIS-NN) on the same LSTM .tflite,
built for the Cortex-M4 and run the same way (issue 16, measured once with TFLM's sources:
they are on no package registry, so this script cannot rebuild them); the ratios compare the
Cortex-M4 native figures with them. ``bench/expected.json`` keeps the figures of the last run
(``--record``); ``tests/test_firmware_native.py`` fails when the Cortex-M4 counts move more
than 5 % from them.

    python bench/bench_firmware.py                                  # every model x every target
    python bench/bench_firmware.py --models lstm32 --targets cortex-m4 cortex-m55
    python bench/bench_firmware.py --json out.json --record         # also update bench/expected.json
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

EXPECTED = Path(__file__).with_name("expected.json")
# gru32 / rnn32: convert's default --state (int16); gru32-int8 / rnn32-int8: --state int8
MODELS = {"lstm32": dict(cell="lstm", units=32), "lstm128": dict(cell="lstm", units=128),
          "gru32": dict(cell="gru", units=32), "rnn32": dict(cell="rnn", units=32),
          "gru32-int8": dict(cell="gru", units=32, state="int8"), "rnn32-int8": dict(cell="rnn", units=32, state="int8"),
          "hybrid": dict(hybrid="valid")}
TARGETS = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")

# Issue 16: TFLM at HEAD built for the Cortex-M4 with arm-none-eabi-gcc, reference kernels and
# CMSIS-NN, the same int8 .tflite (`edgernn convert`), QEMU mps2-an386 -icount, SysTick.
REFERENCE = {
    "lstm32": {"TFLM reference": dict(instructions=7_745_858, flash=121_848, ram=5_908),
               "TFLM + CMSIS-NN": dict(instructions=2_938_046, flash=139_096, ram=7_124)},
    "lstm128": {"TFLM reference": dict(instructions=79_030_000),
                "TFLM + CMSIS-NN": dict(instructions=20_400_000)},
}


def measure(work: Path, key: str, target: str, *, samples: int, opt: str) -> dict:
    import numpy as np

    import edgernn
    from edgernn.backends.native import emit_native
    from edgernn.backends.native.emit import load_plan, resolve_kernel
    from edgernn.firmware import run_project, write_project
    from edgernn.simulate import Simulator

    spec = dict(MODELS[key])
    state = spec.pop("state", None)
    if "hybrid" in spec:  # bench_hybrid.py's model, trained, converted and cached there
        import bench_hybrid

        tflite = bench_hybrid.tflite(spec["hybrid"])
        macs = bench_hybrid.macs(tflite)
    else:
        keras_path, tflite = _headline.keras_model(**spec), _headline.tflite(state=state, **spec)
    _, test = _headline.data("basic_motions")
    sim = Simulator.from_file(tflite)
    with np.load(test, allow_pickle=False) as z:
        x = sim.quantize_input(z["x"][:samples])
    y = sim.run(x)
    d = work / f"{key}-{target}"
    sources = emit_native(tflite, d / "native", "motion", target=target)
    proj = write_project(d / "fw", target=target, backend="native", name="motion", vectors_x_int8=x,
                         vectors_y_int8=y.reshape(len(y), -1), model_sources=sources, source=str(tflite), opt=opt)
    r = run_project(proj.dir, timeout=1200)
    if "hybrid" not in spec:
        macs = edgernn.load_model(keras_path).macs(int(x.shape[1]))
    plan = load_plan(tflite, resolve_kernel(target))
    kernels = sorted({layer.fast.kernel if getattr(layer, "fast", None) else layer.kind for layer in plan.recurrent})
    code = (d / "native" / "motion.c").read_text()
    if "edgernn_conv_" in code:  # the convolutions' kernel: int8 rows, row pairs or the reference
        kernels.insert(0, next((f"conv-{k}" for k in ("rows", "pairs") if f"edgernn_conv_{k}_s8(" in code), "conv-ref"))
    return dict(model=key, target=target, kernel="+".join(kernels), passed=r.passed, vectors=len(r.vectors),
                macs=macs, instructions=r.perf.per_inference, per_mac=r.perf.per_inference / macs,
                per_step=r.perf.per_step, flash=r.sizes.flash, ram=r.sizes.ram,
                model_flash=r.sizes.flash_parts["weights"] + r.sizes.flash_parts["kernels"],
                model_ram=plan.state_bytes + plan.scratch_bytes)


def print_tables(rows: list[dict]) -> None:
    print("| model | target | kernel | instructions / inference | per MAC | flash (model) | RAM (model) | bit-exact |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for key in MODELS:
        for name, ref in REFERENCE.get(key, {}).items():
            if any(r["model"] == key for r in rows):
                macs = next(r["macs"] for r in rows if r["model"] == key)
                flash = f"{ref['flash']:,} B" if "flash" in ref else "—"
                ram = f"{ref['ram']:,} B arena" if "ram" in ref else "—"
                print(f"| {key} | cortex-m4 | {name} | {ref['instructions']:,} | "
                      f"{ref['instructions'] / macs:.2f} | {flash} | {ram} | reference |")
        for r in (r for r in rows if r["model"] == key):
            print(f"| {key} | {r['target']} | {r['kernel']} | {r['instructions']:,.0f} | {r['per_mac']:.2f} | "
                  f"{r['flash']:,} B ({r['model_flash']:,}) | {r['ram']:,} B ({r['model_ram']:,}) | "
                  f"{'PASS' if r['passed'] else 'FAIL'} ({r['vectors']}) |")
    print()
    m4 = {r["model"]: r for r in rows if r["target"] == "cortex-m4"}
    lines = []
    for key, refs in REFERENCE.items():
        if key in m4:
            for name, ref in refs.items():
                lines.append(f"- {key}, Cortex-M4: {ref['instructions'] / m4[key]['instructions']:.2f}x fewer "
                             f"instructions than {name}")
    for r in rows:
        if r["target"] == "cortex-m55" and r["model"] in m4:
            lines.append(f"- {r['model']}: Cortex-M55 (Helium) {m4[r['model']]['instructions'] / r['instructions']:.2f}x "
                         "fewer instructions than the Cortex-M4 kernels")
    lstm = {r["target"]: r for r in rows if r["model"] == "lstm32"}
    for r in rows:
        if r["model"] in ("gru32", "rnn32", "gru32-int8", "rnn32-int8", "hybrid") and r["target"] in lstm:
            lines.append(f"- {r['model']} on {r['target']}: {r['per_mac']:.2f} instructions per MAC "
                         f"(LSTM(32): {lstm[r['target']]['per_mac']:.2f})")
    print("\n".join(lines))


def record(rows: list[dict], path: Path = EXPECTED) -> None:
    """Keep each row's instructions per inference, flash and RAM in bench/expected.json."""
    data = json.loads(path.read_text()) if path.exists() else {}
    figures = data.setdefault("bench_firmware", {})
    for r in rows:
        if r["passed"]:
            figures[f"{r['model']}/{r['target']}"] = dict(instructions=round(r["instructions"]), flash=r["flash"],
                                                         ram=r["ram"], kernel=r["kernel"])
    data["bench_firmware"] = dict(sorted(figures.items()))
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--samples", type=int, default=4, help="self-test vectors run on the device")
    ap.add_argument("--opt", default="-O2", type=lambda s: s if s.startswith("-") else "-" + s,
                    help="optimisation flag for arm-none-eabi-gcc: O2, Os, O0 (or --opt=-O2)")
    ap.add_argument("--json", type=Path, help="also write the rows to this file")
    ap.add_argument("--record", action="store_true", help=f"update {EXPECTED.name} with this run's figures")
    ap.add_argument("--work", type=Path, help="keep the sources and firmware here (default: a temporary dir)")
    args = ap.parse_args(argv)
    from edgernn.errors import EdgeRNNError

    rows = []
    with tempfile.TemporaryDirectory(prefix="edgernn-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            for key in args.models:
                for target in args.targets:
                    rows.append(measure(work, key, target, samples=args.samples, opt=args.opt))
                    print(f"  measured {key} on {target}: {rows[-1]['instructions']:,.0f} instructions",
                          file=sys.stderr)
        except EdgeRNNError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    print_tables(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.record:
        record(rows)
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
