"""End-to-end on real accelerometer data: train -> int8 -> TFLM flatbuffer + native C -> QEMU -> validate.

BasicMotions (shipped inside aeon's wheel): 6-axis accelerometer + gyroscope at 10 Hz,
100 time steps, 4 activities. Trains an LSTM(32), quantizes it to int8 with the training set
as calibration data, converts it to a TFLite Micro flatbuffer, emits firmware sources with
self-test vectors, validates int8 against float on the test set, and prints a summary.

    python examples/quickstart.py [--out examples/out] [--cell lstm] [--units 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import edgernn
from edgernn import datasets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"), help="output directory")
    ap.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    ap.add_argument("--units", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)

    print(f"[1/6] dataset: BasicMotions -> {out}")
    train, test = datasets.write("basic_motions", out)

    print(f"[2/6] train: {args.cell.upper()}({args.units}), gradient clipping, early stopping")
    model_path = out / f"{args.cell}{args.units}.keras"
    res = edgernn.train(train, cell=args.cell, units=args.units, epochs=args.epochs, seed=args.seed, test=test,
                        output=model_path)

    print("[3/6] convert: int8 post-training quantization -> TFLite Micro flatbuffer")
    tflite_path = model_path.with_suffix(".tflite")
    edgernn.convert(model_path, calib=train, output=tflite_path)
    info = edgernn.inspect(tflite_path)

    print("[4/6] emit: TFLM sources, and native C99 for a Cortex-M4, each with 5 self-test vectors")
    fw = edgernn.emit(tflite_path, out / "firmware_tflm", backend="tflm", test_data=test, samples=5)
    m4 = edgernn.emit(tflite_path, out / "firmware_m4", backend="native", target="cortex-m4", test_data=test,
                      samples=5, name="motion")

    print("[5/6] firmware run: build with arm-none-eabi-gcc, run in QEMU (mps2-an386), compare bit for bit")
    from edgernn.firmware import run_project
    dev = run_project(m4.out_dir, timeout=300)

    print("[6/6] validate: float vs int8 (simulator, TFLM runtime, compiled C)")
    rep = edgernn.validate(model_path, tflite_path, test, engines=["simulator", "tflm", "native"],
                           max_accuracy_drop=0.02, min_agreement=0.97,
                           report=out / "validate.json", junit=out / "validate.xml", markdown=out / "validate.md")
    m = rep.metrics
    print()
    print("edgernn quickstart summary")
    print(f"  model                 {args.cell.upper()}({args.units}) on 100 x 6, 4 classes, "
          f"{edgernn.load_model(model_path).param_count:,} parameters")
    print(f"  float accuracy        {m['accuracy_float']:.3f}  (test set, {rep.n_samples} recordings)")
    print(f"  int8 accuracy         {m['accuracy_int8']:.3f}  (drop {m['accuracy_drop']:+.3f})")
    print(f"  top-1 agreement       {m['top1_agreement']:.3f}")
    print(f"  max |float - int8|    {m['max_abs_error']:.4f}")
    print(f"  flatbuffer            {info.flatbuffer_bytes:,} bytes  ({tflite_path})")
    print(f"  TFLM arena (exact)    {info.arena_bytes:,} bytes")
    print(f"  ops                   {', '.join(sorted(info.ops))}")
    print(f"  engines agree         simulator vs TFLM {m['simulator_vs_tflm_max_lsb']} LSB, "
          f"native C vs TFLM {m['native_vs_tflm_max_lsb']} LSB")
    print(f"  Cortex-M4 (QEMU)      {'PASS' if dev.passed else 'FAIL'} {len(dev.vectors)} vectors, "
          f"{dev.perf.per_inference:,.0f} instructions/inference, flash {dev.sizes.flash:,} B, RAM {dev.sizes.ram:,} B "
          f"(incl. stack)")
    print(f"  firmware sources      {fw.out_dir} (TFLM), {m4.out_dir} (native C, Cortex-M4)")
    print(f"  reports               {out / 'validate.json'}, {out / 'validate.xml'}, {out / 'validate.md'}")
    print(f"  thresholds            {'PASS' if rep.passed else 'FAIL: ' + '; '.join(c.describe() for c in rep.failed_checks)}")
    return 0 if rep.passed and dev.passed else 1


if __name__ == "__main__":
    sys.exit(main())
