"""Hybrid models (a convolutional front-end + LSTM) on a Cortex-M4: native C vs TFLM's memory.

DeepConvLSTM-like classifiers for BasicMotions (100 time steps x 6 features, 4 classes), built
and trained with tf_keras and converted with the plain TFLite converter (full-int8 PTQ, int8 I/O:
the .tflite a user brings), cached in the bench cache (``bench/_headline.py``):

* ``causal``: Conv1D(16, 5, causal, relu) -> Conv1D(16, 5, causal, dilation 2, relu) -> LSTM(32)
  -> Dense(4, softmax). It streams: ``NAME_step`` keeps a ring of (k - 1) * d + 1 rows per
  convolution, RAM independent of T;
* ``valid``: Conv1D(16, 5, relu) -> Conv1D(16, 5, relu) -> LSTM(32) -> Dense(4, softmax), the
  original DeepConvLSTM layout ('valid' convolutions): whole-window only.

For each: the native C's Cortex-M4 self-test in QEMU (``-icount``: SysTick counts executed
instructions) gives instructions per inference (and per streaming step), flash and RAM; next to
them the model's MACs, the TFLM flatbuffer and TFLM's exact arena (``edgernn inspect``).

    python bench/bench_hybrid.py                 # both models
    python bench/bench_hybrid.py --model causal --json out.json
    python bench/bench_hybrid.py --record        # also update bench/expected.json's bench_hybrid rows

``tests/test_native_fasttensor.py`` fails when the 'valid' model's Cortex-M4 count moves more than
5 % from the recorded one.
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

import _headline  # noqa: E402  (bench/_headline.py: data and the cache directory)

MODELS = {
    "causal": dict(padding="causal", dilations=(1, 2)),
    "valid": dict(padding="valid", dilations=(1, 1)),
}
EPOCHS = 30


def build(padding: str, dilations, features: int = 6, classes: int = 4, timesteps: int = 100, batch_size=None):
    import tf_keras as tfk

    inp = tfk.Input((timesteps, features), batch_size=batch_size)
    h = inp
    for d in dilations:
        h = tfk.layers.Conv1D(16, 5, padding=padding, dilation_rate=d, activation="relu")(h)
    h = tfk.layers.LSTM(32)(h)
    return tfk.Model(inp, tfk.layers.Dense(classes, activation="softmax")(h))


def tflite(name: str, epochs: int = EPOCHS) -> Path:
    """The int8 flatbuffer of model ``name``, trained and converted the first time."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as tfk

    from edgernn import __version__

    path = _headline.cache_dir() / f"hybrid-{name}-e{epochs}-v{__version__}.tflite"
    if path.exists():
        return path
    train, _ = _headline.data("basic_motions")
    with np.load(train) as z:
        x, y = z["x"].astype(np.float32), z["y"]
    tfk.utils.set_random_seed(0)
    trained = build(**MODELS[name])
    trained.compile(tfk.optimizers.Adam(3e-3, clipnorm=1.0), "sparse_categorical_crossentropy")
    trained.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=True)
    model = build(**MODELS[name], batch_size=1)  # the converter wants a fixed batch of 1
    model.set_weights(trained.get_weights())
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(conv.convert())
    os.replace(tmp, path)
    return path


def macs(path: Path) -> int:
    """Multiply-accumulates per inference: the convolutions', the LSTM's and the head's weights x uses."""
    import numpy as np

    from edgernn.tflite_model import read

    m = read(path)
    sg = m.main
    total = 0
    for op in sg.operators:
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w, y = sg.tensors[op.inputs[1]], sg.tensors[op.outputs[0]]
            per_out = int(np.prod(w.shape[1:])) if op.opcode == "CONV_2D" else int(np.prod(w.shape[1:3]))
            total += per_out * int(np.prod(y.shape))
        elif op.opcode == "FULLY_CONNECTED":
            w, y = sg.tensors[op.inputs[1]], sg.tensors[op.outputs[0]]
            total += int(np.prod(w.shape)) * int(np.prod(y.shape[:-1]))
        elif op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            steps = sg.tensors[op.inputs[0]].shape[1]
            total += steps * sum(int(np.prod(sg.tensors[op.inputs[k]].shape)) for k in range(1, 9))
    return total


def bench(work: Path, name: str, samples: int, opt: str) -> dict:
    import numpy as np

    import edgernn
    from edgernn.backends.native import emit_native
    from edgernn.backends.native.emit import load_plan, resolve_kernel
    from edgernn.firmware import run_project, write_project
    from edgernn.simulate import Simulator

    path = tflite(name)
    _, test = _headline.data("basic_motions")
    sources = emit_native(path, work / name / "native", "hybrid", target="cortex-m4")
    plan = load_plan(path, resolve_kernel("cortex-m4"))  # the plan emit made (the M4's kernels)
    sim = Simulator.from_file(path)
    with np.load(test) as z:
        x, labels = sim.quantize_input(z["x"]), z["y"]
    y = sim.run(x)
    accuracy = float(np.mean(np.argmax(y, axis=1) == labels))
    proj = write_project(work / name / "fw", target="cortex-m4", backend="native", name="hybrid",
                         vectors_x_int8=x[:samples], vectors_y_int8=y[:samples], model_sources=sources,
                         source=path.name, opt=opt)
    result = run_project(proj.dir, timeout=900)
    report = edgernn.inspect(path)
    perf, sizes = result.perf, result.sizes
    n_macs = macs(path)
    return dict(model=name, ops=sorted(report.ops), streaming=plan.graph.streaming, reason=plan.graph.reason,
                accuracy_int8=accuracy, passed=result.passed, vectors=len(result.vectors), opt=opt,
                macs_per_inference=n_macs, instructions_per_inference=perf.per_inference,
                instructions_per_step=perf.per_step, instructions_per_mac=perf.per_inference / n_macs,
                flash=sizes.flash, ram=sizes.ram, flash_parts=sizes.flash_parts, ram_parts=sizes.ram_parts,
                model_ram=plan.state_bytes + plan.scratch_bytes, tflite_bytes=path.stat().st_size,
                tflm_arena_bytes=report.arena_bytes)


def record(rows: list[dict], path: Path = Path(__file__).with_name("expected.json")) -> None:
    """Keep each passing row's Cortex-M4 instructions per inference, flash and model RAM in
    bench/expected.json (``bench_hybrid``; the other sections are left as they are)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    figures = data.setdefault("bench_hybrid", {})
    for r in rows:
        if r["passed"]:
            figures[f"{r['model']}/cortex-m4"] = dict(instructions=round(r["instructions_per_inference"]),
                                                     flash=r["flash"], model_ram=r["model_ram"])
    data["bench_hybrid"] = dict(sorted(figures.items()))
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def print_table(rows: list[dict]) -> None:
    print("| model | streams | int8 acc. | MACs | M4 instructions / inference (/ MAC) | per step | flash: weights"
          " + kernels | model RAM (state + scratch) | TFLM: flatbuffer + arena | self-test |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        step = f"{r['instructions_per_step']:,.0f}" if r["streaming"] else "n/a"
        print(f"| {r['model']} | {'yes' if r['streaming'] else 'no'} | {r['accuracy_int8']:.3f} | "
              f"{r['macs_per_inference']:,} | {r['instructions_per_inference']:,.0f} "
              f"({r['instructions_per_mac']:.2f}) | {step} | "
              f"{r['flash_parts']['weights']:,} + {r['flash_parts']['kernels']:,} B | {r['model_ram']:,} B | "
              f"{r['tflite_bytes']:,} + {r['tflm_arena_bytes']:,} B | "
              f"{'PASS' if r['passed'] else 'FAIL'} ({r['vectors']}) |")
    for r in rows:
        if not r["streaming"]:
            print(f"\n{r['model']}: no streaming form: {r['reason']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), action="append", help="default: all")
    ap.add_argument("--samples", type=int, default=4, help="self-test vectors run on the device")
    ap.add_argument("--opt", default="-O2", type=lambda s: s if s.startswith("-") else "-" + s,
                    help="optimisation flag for arm-none-eabi-gcc: O2, Os, O0 (or --opt=-O2)")
    ap.add_argument("--json", type=Path, help="also write the numbers to this file")
    ap.add_argument("--work", type=Path, help="keep the sources and firmware here (default: a temporary dir)")
    ap.add_argument("--record", action="store_true", help="update bench/expected.json with this run's figures")
    args = ap.parse_args(argv)
    from edgernn.errors import EdgeRNNError

    rows = []
    with tempfile.TemporaryDirectory(prefix="edgernn-bench-") as tmp:
        work = args.work or Path(tmp)
        try:
            for name in args.model or sorted(MODELS):
                rows.append(bench(work, name, args.samples, args.opt))
        except EdgeRNNError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.record:
        record(rows)
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
