"""The ``edgernn`` command line: one verb per stage, a thin layer over the Python API.

Every command prints one line ``error: ...`` and exits 2 on bad input; ``validate`` exits 1
when a threshold is broken.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import warnings

import click

from .errors import EXIT_THRESHOLD, EdgeRNNError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _friendly(fn):
    """Turn an EdgeRNNError into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeRNNError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


class _Group(click.Group):
    """A click group whose usage errors (a bad choice, a missing option) are one line
    ``error: ...`` and exit 2, like every other bad input."""

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                names, ctx = [], exc.ctx
                while ctx.parent is not None:
                    names.insert(0, ctx.info_name)
                    ctx = ctx.parent
                hint = f" (see `{' '.join(['edgernn', *names, '--help'])}`)"
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with stderr muted: its C++ start-up chatter (oneDNN, CUDA probes) is
    not the user's business. Errors raised later still reach stderr."""
    if "tensorflow" in sys.modules:
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
        tf.config.list_physical_devices()
    except ImportError:
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _kib(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,} B ({n / 1024:.1f} KiB)"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgernn")
@click.option("-v", "--verbose", is_flag=True, help="Log what each stage does.")
def main(verbose: bool):
    """edgernn: recurrent neural networks from Keras to microcontrollers.

    \b
    Typical flow:
      edgernn train train.npz --cell lstm --units 32 -o model.keras
      edgernn convert model.keras --calib train.npz -o model.tflite
      edgernn inspect model.tflite
      edgernn emit model.tflite -o fw/ --backend tflm --test-data test.npz
      edgernn validate model.keras model.tflite --data test.npz --max-accuracy-drop 0.02
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    if verbose:
        os.environ["EDGERNN_VERBOSE"] = "1"  # TensorFlow's start-up lines too (see edgernn.quiet_tensorflow)
    if not verbose:
        _import_tensorflow_quietly()


@main.command()
@click.argument("data", type=click.Path())
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), default="lstm", show_default=True)
@click.option("--units", type=int, default=32, show_default=True, help="Hidden units per recurrent layer.")
@click.option("--layers", type=int, default=1, show_default=True, help="Stacked recurrent layers (1-4).")
@click.option("--bidirectional", is_flag=True, help="Wrap each recurrent layer in Bidirectional.")
@click.option("--return-sequences", is_flag=True, help="One output per time step (labels y of shape (N, T)).")
@click.option("--activation", type=click.Choice(["tanh", "relu"]), default="tanh", show_default=True,
              help="SimpleRNN activation.")
@click.option("--clipnorm", type=float, default=1.0, show_default=True, help="Gradient clipping by global norm.")
@click.option("--epochs", type=int, default=100, show_default=True, help="Maximum epochs (early stopping ends sooner).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=3e-3, show_default=True, help="Adam learning rate.")
@click.option("--patience", type=int, default=10, show_default=True, help="Early-stopping patience (epochs).")
@click.option("--validation-split", type=float, default=0.2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Makes training deterministic.")
@click.option("--test", "test", type=click.Path(), help="Test set .npz; its metrics are printed.")
@click.option("--conv", "conv", multiple=True, metavar="FILTERS:KERNEL[:DILATION]",
              help="A Conv1D + BatchNorm + ReLU block before the recurrent layers; repeat for more "
                   "(e.g. --conv 32:5 --conv 32:5 with --cell lstm is a DeepConvLSTM).")
@click.option("--causal", is_flag=True, help="Causal convolutions (padding on the past only): the model can stream.")
@click.option("--pool", type=int, default=1, show_default=True, help="MaxPooling1D of this size after the conv blocks.")
@click.option("--head", type=click.Choice(["last", "gap", "flatten"]), default="last", show_default=True,
              help="What the Dense head reads: the last state, the time-average (GlobalAveragePooling1D) or "
                   "the whole flattened sequence of the last recurrent layer.")
@click.option("--qat", is_flag=True, help="Fine-tune with quantization-aware training after float training.")
@click.option("--qat-epochs", type=int, default=10, show_default=True, help="QAT fine-tuning epochs (with --qat).")
@click.option("-o", "--output", type=click.Path(), required=True, help="Model file to write (.keras).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_friendly
def train(data, cell, units, layers, bidirectional, return_sequences, activation, clipnorm, epochs, batch_size,
          learning_rate, patience, validation_split, seed, test, conv, causal, pool, head, qat, qat_epochs, output,
          no_progress):
    """Train a SimpleRNN / LSTM / GRU model on DATA (.npz with x (N, T, F) and y).

    \b
    Examples:
      edgernn train train.npz --cell gru --units 16 --layers 2 --test test.npz -o gru.keras
      edgernn train train.npz --conv 32:5 --conv 32:5 --cell lstm -o deepconvlstm.keras
      edgernn train train.npz --conv 16:3 --conv 16:3:2 --causal --cell gru -o causal_gru.keras
    """
    from . import train as _train

    kwargs = dict(cell=cell, units=units, layers=layers, bidirectional=bidirectional,
                  return_sequences=return_sequences, clipnorm=clipnorm, epochs=epochs, batch_size=batch_size,
                  learning_rate=learning_rate, patience=patience, validation_split=validation_split, seed=seed,
                  test=test, output=output, activation=activation, progress=not no_progress, conv=list(conv),
                  causal=causal, pool=pool, head=head)
    if qat:
        kwargs.update(qat=True, qat_epochs=qat_epochs)
    res = _train(data, **kwargs)
    click.echo(f"trained {res.task} model for {res.epochs_run} epochs -> {res.path}")
    for k, v in res.test_metrics.items():
        click.echo(f"  test {k}: {v:.4f}")


@main.command()
@click.argument("model", type=click.Path())
@click.option("--data", type=click.Path(), required=True, help="Training data (.npz with x and y).")
@click.option("-o", "--output", type=click.Path(), required=True, help="QAT model to write (.keras).")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=1e-4, show_default=True,
              help="Fine-tuning learning rate (small: the model is already trained).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--calib", type=click.Path(), help="Calibration data for the activation ranges (default: --data).")
@click.option("--val", type=click.Path(),
              help="Validation data (.npz with x and y) on which each epoch's int8 model is scored "
                   "(default: --data); the best epoch is kept, epoch 0 being the model as given.")
@click.option("--state", type=click.Choice(["int16", "int8"]), default="int16", show_default=True,
              help="The `convert --state` the model will be converted with (GRU / SimpleRNN / Bidirectional).")
@_friendly
def qat(model, data, output, epochs, learning_rate, seed, calib, val, state):
    """Fine-tune a trained MODEL with int8 quantization-aware training.

    Keeps the epoch whose int8 model scores best on --val (or --data), the given model
    (= post-training quantization) counting as epoch 0; ties keep the earlier epoch.

    \b
    Example:
      edgernn qat model.keras --data train.npz --val val.npz -o model_qat.keras
      edgernn convert model_qat.keras --calib train.npz -o model_qat.tflite
    """
    from .qat import qat_finetune

    res = qat_finetune(model, data, epochs=epochs, output=output, seed=seed, calib=calib, val=val,
                       learning_rate=learning_rate, state=state)
    click.echo(f"QAT fine-tuned {res.epochs_run} epochs -> {res.path}")
    what = "the given model, unchanged" if res.kept_epoch == 0 else "weights on their int8 grid"
    click.echo(f"  kept epoch {res.kept_epoch} ({what}): int8 {res.selection_metric} {res.kept_score:.4f} "
               f"on the {res.selection} (epoch 0: {res.selection_scores[0]:.4f})")
    for k, v in res.int8_sim_metrics.items():
        click.echo(f"  fake-quantized {k} on --data: {v:.4f}")


@main.command()
@click.argument("model", type=click.Path())
@click.option("--calib", type=click.Path(), required=True, help="Calibration data (.npz/.npy, x (N, T, F)).")
@click.option("-o", "--output", type=click.Path(), required=True, help="Flatbuffer to write (.tflite).")
@click.option("--streaming", is_flag=True, help="One time step per call, state kept between calls.")
@click.option("--state", type=click.Choice(["int16", "int8"]), default="int16", show_default=True,
              help="GRU / SimpleRNN / Bidirectional cells: the recurrent state and step arithmetic "
                   "(int8: less precise over long sequences, no int16 kernels needed).")
@click.option("--no-arena", is_flag=True, help="Skip measuring the exact TFLM arena.")
@_friendly
def convert(model, calib, output, streaming, state, no_arena):
    """Quantize MODEL (.keras, .h5, SavedModel) to an int8 TFLite Micro flatbuffer.

    \b
    Example:
      edgernn convert model.keras --calib train.npz -o model.tflite
    """
    from . import convert as _convert, inspect as _inspect

    res = _convert(model, calib, output, streaming=streaming, state=state)
    rep = _inspect(res.path, arena=not no_arena)
    click.echo(f"wrote {res.path}: {_kib(rep.flatbuffer_bytes)}, int8, T={res.timesteps}"
               f"{', streaming' if res.streaming else ''}")
    click.echo(f"  ops: {', '.join(f'{k} x{v}' for k, v in sorted(rep.ops.items()))}")
    if rep.arena_bytes is not None:
        click.echo(f"  TFLM arena (exact minimum): {_kib(rep.arena_bytes)}")
    if res.float_check_max_diff is not None:
        click.echo(f"  rebuilt float model matches the original (max |diff| {res.float_check_max_diff:.2g})")


@main.command()
@click.argument("model", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option("--no-arena", is_flag=True, help="Skip the arena bisection.")
@_friendly
def inspect(model, as_json, no_arena):
    """Ops, tensors, quantization, flash bytes and the exact TFLM arena of MODEL.

    \b
    Example:
      edgernn inspect model.tflite --json > model.json
    """
    from . import inspect as _inspect

    rep = _inspect(model, arena=not no_arena)
    if as_json:
        click.echo(json.dumps(rep.to_json(), indent=2, default=str))
        return
    if rep.kind == "keras":
        click.echo(f"{model}: input (T={rep.input['timesteps']}, F={rep.input['features']})")
        click.echo(f"  {'layer':<24}{'kind':<15}{'cell':<6}{'units':>6}{'params':>10}{'MACs':>12}")
        for r in rep.layers:
            click.echo(f"  {r['name']:<24}{r['kind']:<15}{r['cell']:<6}{r['units']:>6}{r['params']:>10,}{r['macs']:>12,}")
        click.echo(f"  total params {rep.params:,}, MACs per inference {rep.macs:,}")
        return
    click.echo(f"{model}: {_kib(rep.flatbuffer_bytes)} flatbuffer, {_kib(rep.weight_bytes)} of constants")
    click.echo(f"  input  {rep.input['shape']} {rep.input['dtype']} scale={rep.input.get('scale')} "
               f"zero_point={rep.input.get('zero_point')}")
    click.echo(f"  output {rep.output['shape']} {rep.output['dtype']} scale={rep.output.get('scale')} "
               f"zero_point={rep.output.get('zero_point')}")
    click.echo(f"  TFLM arena (exact minimum): {_kib(rep.arena_bytes)}")
    if rep.arena_cortex_m:
        click.echo("  TFLM arena on a Cortex-M4 (minimum, TFLM's allocator replayed): "
                   + ", ".join(f"{k} {_kib(v)}" for k, v in rep.arena_cortex_m.items()))
    for engine, what in rep.engines.items():
        click.echo(f"  {engine}: {what}")
    click.echo(f"  {'#':>3} {'sg':>2} {'op':<32}{'params':>9}{'MACs':>12}  output")
    for r in rep.per_op:
        click.echo(f"  {r['index']:>3} {r['subgraph']:>2} {r['opcode']:<32}{r['params']:>9,}{r['macs']:>12,}  "
                   f"{list(r['output_shape'])}")
    click.echo(f"  total params {rep.params:,}, MACs per inference {rep.macs:,}")
    click.echo("  tensors:")
    for t in rep.tensors:
        q = "" if "scale" not in t else (f" scale={t['scale']:.6g} zp={t['zero_point']}" if not isinstance(t["scale"], list)
                                         else f" per-channel x{len(t['scale'])}")
        click.echo(f"    [{t['subgraph']}:{t['index']}] {t['name'][:40]:<40} {str(t['shape']):<14} {t['dtype']}{q}"
                   f"{' const' if t['constant'] else ''}{' variable' if t['variable'] else ''}")


@main.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out_dir", type=click.Path(), required=True, help="Directory to write.")
@click.option("--backend", type=click.Choice(["tflm", "native"]), default="tflm", show_default=True)
@click.option("--target", type=click.Choice(["host", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33",
                                           "cortex-m55", "arduino", "zephyr"]), default="host", show_default=True,
              help="Where the project builds and runs: the host, a Cortex-M board in QEMU (the native LSTM kernels "
                   "are picked per core), or an Arduino / Zephyr project.")
@click.option("--test-data", type=click.Path(), help="Data (.npz) whose first samples become self-test vectors.")
@click.option("--samples", type=int, default=10, show_default=True, help="Self-test vectors to embed.")
@click.option("--name", default="model", show_default=True, help="C name prefix.")
@click.option("--calib", type=click.Path(), help="Calibration data, when MODEL is a Keras model.")
@click.option("--max-flash", type=int, help="Fail when the firmware's flash exceeds this many bytes.")
@click.option("--max-ram", type=int, help="Fail when the firmware's RAM exceeds this many bytes (data + bss with "
                                          "the stack and heap reserves: nothing has run yet).")
@click.option("--kernels", type=click.Choice(["reference", "cmsis-nn"]), default=None,
              help="TFLM kernel set the firmware links (tflm backend; default reference): sizes the arena.")
@_friendly
def emit(model, out_dir, backend, target, test_data, samples, name, calib, max_flash, max_ram, kernels):
    """Write firmware sources for MODEL (.tflite) to a directory.

    \b
    Example:
      edgernn emit model.tflite -o fw/ --backend tflm --test-data test.npz --samples 5
    """
    from . import emit as _emit

    res = _emit(model, out_dir, backend=backend, target=target, test_data=test_data, samples=samples, name=name,
                calib=calib, max_flash=max_flash, max_ram=max_ram, kernels=kernels)
    click.echo(f"wrote {len(res.files)} files to {res.out_dir} (backend {res.backend}, target {res.target}, "
               f"{res.n_vectors} self-test vectors)")
    for f in res.files:
        click.echo(f"  {f}")


@main.command()
@click.argument("model", type=click.Path())
@click.argument("quant", type=click.Path(), required=False)
@click.option("--data", type=click.Path(), required=True, help="Labelled data (.npz) to validate on.")
@click.option("--engine", "engine", type=click.Choice(["tflm", "simulator", "native", "both", "all"]), default=None,
              help="Engine(s) running the int8 model. 'both' = simulator + tflm (default when available).")
@click.option("--samples", type=int, help="Use only the first N samples.")
@click.option("--max-accuracy-drop", type=float, help="Fail when float accuracy - int8 accuracy exceeds this.")
@click.option("--min-agreement", type=float, help="Fail when top-1 agreement float vs int8 is below this.")
@click.option("--min-accuracy", type=float, help="Fail when int8 accuracy is below this.")
@click.option("--max-abs-error", type=float, help="Fail when max |float - int8| output error exceeds this.")
@click.option("--min-snr-db", type=float, help="Fail when the output SNR (dB) is below this.")
@click.option("--min-cosine", type=float, help="Fail when the cosine similarity float vs int8 outputs is below this.")
@click.option("--max-rmse-increase", type=float, help="Regression: fail when RMSE grows by more than this.")
@click.option("--max-engine-lsb", type=int, help="Fail when two engines' int8 outputs differ by more than N LSB "
              "[default: 0 whenever two or more engines run].")
@click.option("--qat", "qat_quant", type=click.Path(), help="The QAT model's .tflite: its accuracy is shown beside PTQ.")
@click.option("--config", "config", type=click.Path(), help="TOML file with thresholds ([validate] table or top level); "
              "options given on the command line win.")
@click.option("--per-layer", is_flag=True, help="Per-layer float vs int8 diagnostics (needs the simulator).")
@click.option("--report", type=click.Path(), help="Write a JSON report.")
@click.option("--junit", type=click.Path(), help="Write a JUnit XML report (one testcase per engine pair and per "
              "threshold).")
@click.option("--markdown", type=click.Path(), help="Write a Markdown table for a pull-request comment.")
@click.option("--html", type=click.Path(), help="Write a self-contained HTML report with figures (confusion "
              "matrices, error histogram, error along the sequence, per-layer bars with --per-layer).")
@click.option("--firmware", "firmware", type=click.Path(), multiple=True,
              help="A firmware result (`edgernn firmware run DIR --json R.json`) whose flash/RAM and "
              "instructions the HTML report shows; repeatable.")
@_friendly
def validate(model, quant, data, engine, samples, max_accuracy_drop, min_agreement, min_accuracy, max_abs_error,
             min_snr_db, min_cosine, max_rmse_increase, max_engine_lsb, qat_quant, config, per_layer, report, junit,
             markdown, html, firmware):
    """Compare float MODEL with int8 QUANT on --data; exit 1 when a threshold is broken.

    A .tflite alone (no Keras model: one made elsewhere) runs its engines against each other:
    they must agree bit for bit (--max-engine-lsb, 0 by default) and --min-accuracy is gated.
    With two or more engines (the default runs the simulator and TFLM) their int8 outputs must
    agree bit for bit (--max-engine-lsb 0). QUANT must have been converted from MODEL.

    \b
    Example:
      edgernn validate model.keras model.tflite --data test.npz \\
          --max-accuracy-drop 0.02 --min-agreement 0.97 --report r.json --junit j.xml --html r.html
      edgernn validate model.tflite --data test.npz --engine all --min-accuracy 0.9
    """
    from . import validate as _validate

    if quant is None:
        if not str(model).endswith(".tflite"):
            raise EdgeRNNError(f"{model}: give the int8 .tflite after the float model (edgernn validate "
                               "model.keras model.tflite --data test.npz), or a .tflite alone")
        model, quant = None, model

    engines = {None: None, "both": ["simulator", "tflm"], "all": ["simulator", "tflm", "native"]}.get(engine, [engine])
    thresholds = dict(max_accuracy_drop=max_accuracy_drop, min_agreement=min_agreement, min_accuracy=min_accuracy,
                      max_abs_error=max_abs_error, min_snr_db=min_snr_db, min_cosine=min_cosine,
                      max_rmse_increase=max_rmse_increase, max_engine_lsb=max_engine_lsb)
    if config:
        from .validate import load_thresholds
        for k, v in load_thresholds(config).items():
            if thresholds.get(k) is None:
                thresholds[k] = v
    with warnings.catch_warnings():  # the report's warnings are printed below, once
        warnings.simplefilter("ignore")
        rep = _validate(model, quant, data, engines=engines, samples=samples, per_layer=per_layer, report=report,
                        qat_quant=qat_quant, junit=junit, markdown=markdown, html=html,
                        firmware=list(firmware) or None, **thresholds)
    for w in rep.warnings:
        click.echo(f"warning: {w}", err=True)
    m = rep.metrics
    click.echo(f"{rep.model_name}: {rep.n_samples} samples, {rep.task}, engines {', '.join(rep.engines)}")
    keys = ["accuracy_float", "accuracy_int8", "accuracy_drop", "accuracy_int8_qat", "accuracy_drop_qat",
            "top1_agreement", "rmse_float", "rmse_int8",
            "max_abs_error", "mean_abs_error", "snr_db", "cosine", "mae_int8"] + [k for k in m if k.endswith("_max_lsb")]
    for k in keys:
        if k in m:
            click.echo(f"  {k:<26} {m[k]:.4f}" if isinstance(m[k], float) else f"  {k:<26} {m[k]}")
    if len(rep.engine_metrics) > 1:
        for e, em in rep.engine_metrics.items():
            acc = f"accuracy_int8 {em['accuracy_int8']:.4f}  " if "accuracy_int8" in em else ""
            err = f"max_abs_error {em['max_abs_error']:.4f}" if "max_abs_error" in em else \
                "  ".join(f"{k} {v:.4g}" for k, v in em.items() if k.startswith(("max_lsb", "identical")))
            click.echo(f"  engine {e:<10} {acc}{err}")
    for layer in rep.per_layer:
        click.echo("  layer " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in layer.items()))
    for c in rep.checks:
        click.echo(f"  {'PASS' if c.passed else 'FAIL'} {c.describe()}")
    if html:
        click.echo(f"  wrote {html}")
    if not rep.passed:
        click.echo(f"error: {len(rep.failed_checks)} threshold(s) broken: "
                   + "; ".join(c.describe() for c in rep.failed_checks), err=True)
        sys.exit(EXIT_THRESHOLD)


@main.group()
def firmware():
    """Build and run the firmware projects `edgernn emit` wrote."""


@firmware.command("build")
@click.argument("project_dir", type=click.Path())
@click.option("--max-flash", type=int, help="Fail when flash (text+rodata+data) exceeds this many bytes.")
@click.option("--max-ram", type=int, help="Fail when RAM (data+bss with the stack and heap reserves) exceeds this "
                                          "many bytes.")
@click.option("--json", "as_json", type=click.Path(), help="Write the sizes as JSON.")
@_friendly
def firmware_build(project_dir, max_flash, max_ram, as_json):
    """Build DIR without running it and print its flash and RAM.

    Host and Cortex-M projects are built with their Makefile. Arduino and Zephyr projects are
    compiled here as the equivalent Cortex-M4F build (arm-none-eabi-gcc, same sources and
    vectors) for the size report; arduino-cli / west also build them when installed.

    \b
    Example:
      edgernn emit model.tflite -o fw/ --backend native --target arduino --test-data test.npz
      edgernn firmware build fw/
    """
    from .firmware import Project, build_project, measure_project, vendor_tools_missing

    p = Project.load(project_dir)
    sizes = measure_project(p.dir, max_flash=max_flash, max_ram=max_ram)
    built = {"binary": str(sizes.elf)}
    if p.target in ("arduino", "zephyr"):
        tool = "arduino-cli" if p.target == "arduino" else "west"
        missing = vendor_tools_missing(p)
        if missing:
            click.echo(f"{p.dir}: {p.target} project compiled here as the equivalent Cortex-M4F build; "
                       f"{tool} not run (needs {missing})")
            built["binary"] = None
        else:
            binary, _ = build_project(p)
            click.echo(f"{p.dir}: built {binary} with {tool}; sizes below are the equivalent Cortex-M4F build's")
            built["binary"] = str(binary)
    else:
        click.echo(f"{p.dir}: built {sizes.elf} ({p.backend} backend, target {p.target})")
    for line in sizes.describe():
        click.echo(line)
    if as_json:
        from pathlib import Path
        Path(as_json).write_text(json.dumps(dict(project=str(p.dir), target=p.target, backend=p.backend, **built,
                                                 sizes=sizes.to_dict()), indent=2, default=str))


@firmware.command("run")
@click.argument("project_dir", type=click.Path())
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds the program may run.")
@click.option("--max-flash", type=int, help="Fail when flash (text+rodata+data) exceeds this many bytes.")
@click.option("--max-ram", type=int, help="Fail when RAM used (data+bss + measured stack peak + heap used) exceeds "
                                          "this many bytes.")
@click.option("--json", "as_json", type=click.Path(), help="Write the result as JSON.")
@_friendly
def firmware_run(project_dir, timeout, max_flash, max_ram, as_json):
    """Build DIR (gcc or arm-none-eabi-gcc), run it (host, or the target's QEMU board), compare
    every self-test vector with the expected outputs (the TFLM interpreter's, recorded by emit),
    print flash, RAM and instructions.
    RAM on a Cortex-M target is data + bss + the measured stack peak + the heap used; the stack
    and heap reserves are printed apart.

    \b
    Example:
      edgernn emit model.tflite -o fw/ --backend native --target cortex-m4 --test-data test.npz
      edgernn firmware run fw/
    """
    from .firmware import run_project

    res = run_project(project_dir, timeout=timeout, max_flash=max_flash, max_ram=max_ram)
    for line in res.summary_lines():
        click.echo(line)
    if as_json:
        from pathlib import Path
        Path(as_json).write_text(json.dumps(res.to_dict(), indent=2, default=str))
    if not res.passed:
        click.echo(f"error: {project_dir}: the device's outputs differ from the expected (TFLM's) on vectors "
                   f"{res.failed_vectors}", err=True)
        sys.exit(EXIT_THRESHOLD)


@main.command()
@click.argument("config", type=click.Path())
@_friendly
def deploy(config):
    """Run the whole chain (train, convert, emit, firmware run, validate) from CONFIG (.toml).

    \b
    Example (see examples/deploy/edgernn.toml):
      edgernn deploy examples/deploy/edgernn.toml
    """
    from .deploy import deploy as _deploy

    res = _deploy(config)
    for step in res.steps:
        click.echo(f"  {step}")
    for fw in res.firmware:
        click.echo(f"  firmware {fw.target if hasattr(fw, 'target') else ''}: {'PASS' if fw.passed else 'FAIL'}")
    if res.validation is not None:
        for c in res.validation.checks:
            click.echo(f"  {'PASS' if c.passed else 'FAIL'} {c.describe()}")
    if not res.passed:
        click.echo("error: deploy checks failed", err=True)
        sys.exit(EXIT_THRESHOLD)
    click.echo("deploy: PASS")


@main.command()
@click.argument("config", type=click.Path(), required=False)
@click.option("-o", "--output", "out", type=click.Path(), help="Directory for the results (new or empty).")
@click.option("--resume", type=click.Path(), help="Continue the interrupted search in DIR. DIR must be one your own "
              "`edgernn search -o DIR` wrote: resuming unpickles Ray Tune's saved state.")
@click.option("--address", help="Ray cluster (host:port); default $RAY_ADDRESS, else a local Ray.")
@click.option("--workers", type=click.IntRange(min=1), help="Trials at a time (default: one per core, or every "
              "CPU of the cluster).")
@click.option("--no-progress", is_flag=True, help="No progress line.")
@_friendly
def search(config, out, resume, address, workers, no_progress):
    """Find the most accurate RNN that fits the target's flash, RAM and time budgets (Ray Tune).

    Each trial trains, converts to int8, scores on the validation split with the simulator,
    emits native C and runs it (QEMU for Cortex-M) for exact flash, RAM and instructions.
    Writes OUT/trials.csv, trials.json, pareto.png/.svg and best/ (model.keras, model.tflite,
    firmware/). Exit 1 when no trial fits; Ctrl-C stops cleanly, --resume OUT continues.

    \b
    Example (see `python -m pydoc edgernn.search` for every key):
      edgernn search search.toml -o out/
      edgernn search --resume out/
      edgernn search search.toml -o out/ --address 10.0.0.5:6379
    """
    from .search import results, search as _search

    if (resume is None) == (config is None) or (config is not None and out is None) or (resume and out):
        raise EdgeRNNError("give CONFIG and -o OUT for a new search, or --resume DIR alone to continue one")
    res = _search(config, out, resume=resume, address=address, workers=workers, progress=not no_progress,
                  say=lambda m: click.echo(m, err=True))
    for cell, f in sorted(res.floors.items()):
        instr = f" {f['instructions']:,} instructions" if f.get("instructions") else ""
        click.echo(f"floor {cell}: smallest model needs flash {f['flash']:,} B, RAM {f['ram']:,} B{instr}")
    from rich.console import Console
    Console(width=max(132, Console().width)).print(results.table(res.rows, res.budget))
    c = results.counts(res.rows)
    click.echo(f"{len(res.rows)} trials in {res.seconds / 60:.1f} min ({res.concurrency} at a time): "
               + ", ".join(f"{n} {k}" for k, n in sorted(c.items())))
    for f in res.files:
        click.echo(f"  wrote {f}")
    if not res.complete:
        click.echo(f"error: search interrupted ({c.get('unfinished', 0)} trials unfinished); continue it with "
                   f"`edgernn search --resume {res.out}`", err=True)
        sys.exit(130)
    if res.best is None:
        click.echo(f"error: no trial fits the budgets; see {res.out / 'trials.csv'} for each trial's reason", err=True)
        sys.exit(EXIT_THRESHOLD)
    b = res.best
    click.echo(f"best: trial {b['trial']} {results.describe(b)}: int8 accuracy {b['accuracy']:.4f} (validation), "
               f"{b['test_accuracy']:.4f} (test); flash {b['flash']:,} B, RAM {b['ram']:,} B"
               + (f", {b['instructions']:,} instructions" if b.get("instructions") else "")
               + (f", {b['latency_ms']:.3g} ms" if b.get("latency_ms") is not None else "")
               + f" -> {res.out / 'best'}")


@main.command()
@click.argument("name", metavar="NAME", type=click.Choice(["digits", "basic_motions"]))
@click.option("-o", "--output", "out_dir", type=click.Path(), required=True, help="Directory for the .npz files.")
@_friendly
def dataset(name, out_dir):
    """Write a bundled real dataset (from installed wheels) as train/test .npz files."""
    from .datasets import write

    train, test = write(name, out_dir)
    click.echo(f"wrote {train} and {test}")


if __name__ == "__main__":  # pragma: no cover
    main()
