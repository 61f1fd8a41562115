"""Hybrid .tflite files made by the plain TFLite converter (not ``edgernn convert``): the files
a user brings. Convolutional front-ends, pooling heads and LSTMs (tf_keras, batch 1, int8 PTQ,
int8 I/O); edgernn's simulator and native C must equal TFLM bit for bit on them, and a
causal-convolution model must stream (``NAME_step``) with the same bits.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgernn.errors import EdgeRNNError
from edgernn.simulate import Simulator
from oneop import native_build, tflm_run


def _deepconvlstm(tfk):
    """DeepConvLSTM: two 'valid' Conv1D, an LSTM, a softmax head (no streaming form)."""
    inp = tfk.Input((24, 6), batch_size=1)
    h = tfk.layers.Conv1D(8, 5, activation="relu")(inp)
    h = tfk.layers.Conv1D(8, 3, activation="relu")(h)
    h = tfk.layers.LSTM(16)(h)
    return tfk.Model(inp, tfk.layers.Dense(4, activation="softmax")(h))


def _causal(tfk):
    """Causal (and dilated) Conv1D + BatchNorm + ReLU front-end, LSTM(seq), per-step Dense: streams."""
    inp = tfk.Input((20, 5), batch_size=1)
    h = tfk.layers.Conv1D(8, 3, padding="causal")(inp)
    h = tfk.layers.BatchNormalization()(h)
    h = tfk.layers.ReLU()(h)
    h = tfk.layers.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu")(h)
    h = tfk.layers.LSTM(12, return_sequences=True)(h)
    return tfk.Model(inp, tfk.layers.Dense(3)(h))


def _crnn(tfk):
    """CRNN: Conv2D over (time, frequency, 1), MaxPooling over frequency, Reshape, LSTM."""
    inp = tfk.Input((12, 8, 1), batch_size=1)
    h = tfk.layers.Conv2D(4, (3, 3), padding="same", activation="relu")(inp)
    h = tfk.layers.MaxPooling2D((1, 2))(h)
    h = tfk.layers.Reshape((12, 16))(h)
    h = tfk.layers.LSTM(12)(h)
    return tfk.Model(inp, tfk.layers.Dense(5, activation="softmax")(h))


def _pooled(tfk):
    """Conv1D, MaxPooling1D, LSTM(seq), GlobalAveragePooling1D, Dense."""
    inp = tfk.Input((16, 3), batch_size=1)
    h = tfk.layers.Conv1D(6, 3, padding="same", activation="relu")(inp)
    h = tfk.layers.MaxPooling1D(2)(h)
    h = tfk.layers.LSTM(10, return_sequences=True)(h)
    h = tfk.layers.GlobalAveragePooling1D()(h)
    return tfk.Model(inp, tfk.layers.Dense(4, activation="softmax")(h))


BUILDERS = {"deepconvlstm": _deepconvlstm, "causal": _causal, "crnn": _crnn, "pooled": _pooled}


def convert_plain(model, calib: np.ndarray) -> bytes:
    """What a user does with TensorFlow alone: full-int8 PTQ, int8 input and output."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.fixture(scope="module")
def hybrids():
    """name -> (flatbuffer, int8 test inputs); random weights, random BatchNorm statistics."""
    import tf_keras as tfk

    out = {}
    for k, (name, build) in enumerate(BUILDERS.items()):
        tfk.utils.set_random_seed(k)
        model = build(tfk)
        for layer in model.layers:
            if isinstance(layer, tfk.layers.BatchNormalization):
                g, b, mu, var = layer.get_weights()
                rng = np.random.default_rng(k)
                layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.3, b.shape),
                                   rng.normal(0, 0.3, mu.shape), rng.uniform(0.5, 2, var.shape)])
        rng = np.random.default_rng(100 + k)
        shape = tuple(model.input_shape[1:])
        raw = convert_plain(model, rng.normal(0, 1, (48,) + shape).astype(np.float32))
        sim = Simulator.from_bytes(raw)
        x = sim.quantize_input(rng.normal(0, 1.3, (16,) + shape))
        out[name] = (raw, x)
    return out


@pytest.mark.parametrize("name", list(BUILDERS))
def test_simulator_and_native_equal_tflm(hybrids, tmp_path, name):
    raw, x = hybrids[name]
    want = tflm_run(raw, [x])[0]
    assert np.array_equal(Simulator.from_bytes(raw).run(x).reshape(want.shape), want)
    nb = native_build(raw, tmp_path)
    xn = x.reshape(len(x), nb.plan.timesteps, -1)
    assert np.array_equal(nb.run(xn).reshape(want.shape), want)
    header = (tmp_path / "m.h").read_text()
    if name == "causal":
        # the causal model streams: one ring per convolution, NAME_step over every step == TFLM
        assert nb.plan.graph.streaming and len(nb.plan.graph.rings) == 2
        assert "#define M_STREAMING 1" in header
        assert np.array_equal(nb.steps(xn).reshape(want.shape), want)
        # its RAM does not grow with T: rings of (k - 1) * d + 1 rows
        assert sorted(r.size for r in nb.plan.graph.rings) == [3 * 5, 5 * 8]
    else:
        assert not nb.plan.graph.streaming
        assert "#define M_STREAMING 0" in header and "no one-step form" in header
        with pytest.raises(EdgeRNNError, match="status 4"):  # NAME_step returns EDGERNN_ERR_UNSUPPORTED
            nb.steps(xn)


def test_streaming_refusals_say_why(hybrids):
    from edgernn.backends.native.emit import build_plan
    from edgernn.tflite_model import parse

    reasons = {name: build_plan(parse(raw, name)).graph.reason for name, (raw, _) in hybrids.items()
               if name != "causal"}
    assert "'valid' convolution over time" in reasons["deepconvlstm"]
    assert "'same' padding over time" in reasons["crnn"] and "padding='causal'" in reasons["crnn"]
    assert "'same' padding over time" in reasons["pooled"]  # the first obstacle it meets


def digits_28x28():
    """scikit-learn's digits upscaled to MNIST's 28 x 28 in [0, 1] (nothing is downloaded)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    img = np.kron(d.images / 16.0, np.ones((3, 3)))  # 24 x 24
    return np.pad(img, ((0, 0), (2, 2), (2, 2))).astype(np.float32), d.target.astype(np.int64)


@pytest.mark.slow
def test_mnist_lstm_like_model_through_emit_native(tmp_path):
    """TFLM's own examples/mnist_lstm (train.py): LSTM(20, return_sequences) -> Flatten ->
    Dense(10, softmax), rows as time steps, converted the way that example does. ``edgernn emit
    --backend native`` compiles it (RESHAPE and FULLY_CONNECTED on the whole sequence) and the
    host self-test equals TFLM on every vector."""
    import tf_keras as tfk

    import edgernn
    from edgernn.firmware import run_project

    x, y = digits_28x28()
    tfk.utils.set_random_seed(0)
    model = tfk.Sequential([tfk.Input((28, 28), batch_size=1), tfk.layers.LSTM(20, return_sequences=True),
                            tfk.layers.Flatten(), tfk.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1400], y[:1400], batch_size=32, epochs=2, verbose=0)
    path = tmp_path / "mnist_lstm_int8.tflite"
    path.write_bytes(convert_plain(model, x[:100]))
    ops = Simulator.from_file(path).model.op_counts
    assert set(ops) == {"UNIDIRECTIONAL_SEQUENCE_LSTM", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"}
    data = tmp_path / "test.npz"
    np.savez(data, x=x[1400:], y=y[1400:])
    res = edgernn.emit(path, tmp_path / "fw", backend="native", target="host", test_data=data, samples=8)
    r = run_project(res.out_dir, timeout=300)
    assert r.passed, "\n".join(r.summary_lines())
    assert len(r.vectors) == 8 and all(v.matches for v in r.vectors)
    # the int8 model still reads digits
    sim = Simulator.from_file(path)
    acc = np.mean(np.argmax(sim.run(sim.quantize_input(x[1400:])), axis=1) == y[1400:])
    assert acc > 0.8


def test_inspect_and_emit_take_foreign_files(hybrids, tmp_path):
    """``edgernn inspect`` says what each engine does with the file and counts the convolutions'
    MACs; ``emit --backend tflm`` registers their ops with TFLM's resolver."""
    import edgernn
    from edgernn.backends.tflm.emit import resolver_calls
    from edgernn.tflite_model import read

    paths = {}
    for name in ("causal", "deepconvlstm"):
        paths[name] = tmp_path / f"{name}.tflite"
        paths[name].write_bytes(hybrids[name][0])
    causal, dcl = (edgernn.inspect(paths[n], arena=False) for n in ("causal", "deepconvlstm"))
    assert causal.engines["native"].startswith("streams") and "bit-exact" in causal.engines["simulator"]
    assert dcl.engines["native"].startswith("whole window only") and "'valid' convolution" in dcl.engines["native"]
    convs = [r for r in dcl.per_op if r["opcode"] == "CONV_2D"]
    # Conv1D(8, 5) on 24 x 6 -> 20 x 8 outputs of 5 x 6 taps; Conv1D(8, 3) -> 18 x 8 of 3 x 8
    assert [r["macs"] for r in convs] == [20 * 8 * 30, 18 * 8 * 24]
    calls = resolver_calls(read(paths["causal"]))
    assert {"AddConv2D", "AddPad", "AddUnidirectionalSequenceLSTM"} <= set(calls)
    res = edgernn.emit(paths["causal"], tmp_path / "tflm", backend="tflm", target="host")
    assert any("resolver.AddConv2D()" in f.read_text() for f in res.files if f.name == "main.cc")


def _foreign_files(hybrids, tmp_path, name, labels=True):
    """The plain converter's ``name`` model as a file, and its float test data (the int8 inputs
    dequantized: they quantize back to the same bytes); labels = TFLM's own answers."""
    raw, xq = hybrids[name]
    sim = Simulator.from_bytes(raw)
    t = sim.model.input()
    x = ((xq.astype(np.float32) - int(t.zero_point[0])) * float(t.scale[0])).astype(np.float32)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(raw)
    data = tmp_path / f"{name}.npz"
    y = tflm_run(raw, [xq])[0]
    np.savez(data, **({"x": x, "y": y.reshape(len(x), -1).argmax(-1)} if labels else {"x": x}))
    return path, data


def test_validate_a_foreign_tflite_alone_runs_the_engines_against_each_other(hybrids, tmp_path):
    """``edgernn validate model.tflite --data test.npz --engine all``: no Keras model; TFLM,
    the simulator and the native C must agree bit for bit (a gate, 0 LSB by default), and the
    int8 accuracy is gated with --min-accuracy. Thresholds needing the float model are refused."""
    import json

    from click.testing import CliRunner

    from edgernn.cli import main

    path, data = _foreign_files(hybrids, tmp_path, "deepconvlstm")
    r = CliRunner().invoke(main, ["validate", str(path), "--data", str(data), "--engine", "all",
                                  "--min-accuracy", "0.99", "--report", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["engines"] == ["simulator", "tflm", "native"] and rep["passed"] and rep["task"] == "classification"
    m = rep["metrics"]
    assert m["accuracy_int8"] == 1.0 and m["engines_max_lsb"] == 0
    assert m["simulator_vs_tflm_max_lsb"] == 0 and m["native_vs_tflm_max_lsb"] == 0
    assert {c["name"]: c["limit"] for c in rep["checks"]} == {"min_accuracy": 0.99, "max_engine_lsb": 0}
    assert "engines_max_lsb" in r.output and "PASS max_engine_lsb" in r.output

    bad = CliRunner().invoke(main, ["validate", str(path), "--data", str(data), "--max-accuracy-drop", "0.02"])
    assert bad.exit_code == 2 and "--max-accuracy-drop: compares with the float model" in bad.output
    keras_only = CliRunner().invoke(main, ["validate", str(data), "--data", str(data)])
    assert keras_only.exit_code == 2 and "give the int8 .tflite after the float model" in keras_only.output


def test_validate_alone_fails_on_one_lsb_between_engines(hybrids, tmp_path, monkeypatch):
    """The engine gate could fail: one output moved by 1 LSB in the simulator breaks it; a
    per-step regression model without labels reports agreement only."""
    import edgernn
    from edgernn.validate import validator

    path, data = _foreign_files(hybrids, tmp_path, "causal", labels=False)
    run = validator._run_engine

    def off_by_one(engine, m, xq):
        out = np.array(run(engine, m, xq))
        if engine == "simulator":
            out.reshape(-1)[7] = np.clip(int(out.reshape(-1)[7]) + 1 - 2 * (out.reshape(-1)[7] == 127), -128, 127)
        return out

    rep = edgernn.validate(None, path, data, engines=["tflm", "simulator"])
    assert rep.passed and rep.task == "unlabelled" and rep.metrics["engines_max_lsb"] == 0
    monkeypatch.setattr(validator, "_run_engine", off_by_one)
    rep = edgernn.validate(None, path, data, engines=["tflm", "simulator"])
    assert not rep.passed and rep.metrics["simulator_vs_tflm_max_lsb"] == 1
    assert [c.name for c in rep.failed_checks] == ["max_engine_lsb"]
    with pytest.raises(EdgeRNNError, match="--min-accuracy: metric 'accuracy_int8' cannot be computed"):
        edgernn.validate(None, path, data, engines=["tflm"], min_accuracy=0.5)


@pytest.mark.slow
def test_deepconvlstm_firmware_run_on_cortex_m4(hybrids, tmp_path):
    """``edgernn emit --backend native --target cortex-m4`` then ``edgernn firmware run`` on the
    DeepConvLSTM (two 'valid' Conv1D, LSTM, softmax): QEMU's Cortex-M4 self-test equals TFLM
    on every vector, with instructions, flash and RAM reported."""
    import json

    from click.testing import CliRunner

    from edgernn.cli import main

    path, data = _foreign_files(hybrids, tmp_path, "deepconvlstm")
    fw = tmp_path / "fw"
    r = CliRunner().invoke(main, ["emit", str(path), "-o", str(fw), "--backend", "native", "--target", "cortex-m4",
                                  "--test-data", str(data), "--samples", "3", "--name", "dcl"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["firmware", "run", str(fw), "--json", str(tmp_path / "fw.json")])
    assert r.exit_code == 0, r.output
    assert "RESULT PASS 3/3 vectors" in r.output and "instructions per inference" in r.output
    res = json.loads((tmp_path / "fw.json").read_text())
    assert res["passed"] and res["sizes"]["flash"] > 0 and res["perf"]["per_inference"] > 0
    want = tflm_run(path.read_bytes(), [hybrids["deepconvlstm"][1][:3]])[0]
    assert "#define DCL_STREAMING 0" in (fw / "model" / "dcl.h").read_text()
    assert want.shape == (3, 4)
