"""`convert --streaming`: one sample per invoke, state kept by TFLM, identical to the sequence model."""

from __future__ import annotations

import numpy as np
import pytest

import edgernn
from edgernn import tflite_model
from edgernn.backends.tflm.convert import conversion_strategy, convert_ir
from edgernn.backends.tflm.runtime import TFLMRunner
from edgernn.backends.tflm.streaming import is_streaming_model, lstm_one_step, run_streaming
from edgernn.errors import EdgeRNNError
from edgernn.frontend import from_keras

from conftest import Spec, load_npz
from test_cells import keras3_model

ARENA = 300_000


def _stream(runner: TFLMRunner, x_int8: np.ndarray) -> np.ndarray:
    return run_streaming(runner.interpreter, x_int8)


def _assert_streaming_equals_sequence(m, calib, x):
    seq_bytes = convert_ir(m, calib)
    if conversion_strategy(m) == "fused-lstm":  # what convert_ir(streaming=True) does, without a 2nd converter run
        one_bytes = lstm_one_step(seq_bytes, m)
    else:
        one_bytes = convert_ir(m, calib, streaming=True)
    seq = TFLMRunner(seq_bytes, arena_size=ARENA)
    one = TFLMRunner(one_bytes, arena_size=ARENA)
    assert not is_streaming_model(tflite_model.parse(seq_bytes))
    assert tuple(one.input_details["shape"]) == (1, 1, m.input.features)
    assert one.input_quant == seq.input_quant and one.output_quant == seq.output_quant
    xq = seq.quantize_input(x)
    whole = seq.run(xq)
    stepped = _stream(one, xq)
    if m.per_step_output:  # (N, T, C): every step's output
        np.testing.assert_array_equal(stepped.reshape(whole.shape), whole)
    else:  # (N, C): the output after the last sample
        np.testing.assert_array_equal(stepped[:, -1], whole)
    return one


@pytest.mark.parametrize("kind", ["gru", "gru_reset_before", "rnn_tanh", "rnn_relu", "lstm", "gru_x2",
                                  "mixed_lstm_gru", "per_step_gru",
                                  pytest.param("per_step_lstm", marks=pytest.mark.slow),
                                  "per_step_rnn_relu_dense"])
def test_streaming_equals_sequence_on_every_test_sample(kind, bm_data):
    """BasicMotions test set (40 x 100 steps): bit-identical int8 outputs, every sample."""
    xtr, _ = load_npz(bm_data[0])
    xte, _ = load_npz(bm_data[1])
    m = from_keras(keras3_model(kind))
    one = _assert_streaming_equals_sequence(m, xtr, xte)
    tm = tflite_model.parse(one.raw)
    assert is_streaming_model(tm)
    assert "WHILE" not in tm.op_counts
    variables = [t for t in tm.main.tensors if t.is_variable]
    n_states = sum(2 if l.cell == "lstm" else 1 for l in m.recurrent_layers)
    assert len(variables) >= n_states  # the fused LSTM also keeps an int16 cell state


def test_streaming_state_persists_until_reset(bm_data):
    """The state is carried between invokes until reset(): one sample after 30 others answers
    differently from the same sample after a reset, and a reset replays exactly."""
    xte, _ = load_npz(bm_data[1])
    m = from_keras(keras3_model("gru"))
    one = TFLMRunner(convert_ir(m, xte, streaming=True), arena_size=ARENA)
    it = one.interpreter
    x0 = one.quantize_input(xte[0])

    def feed(steps):
        for t in steps:
            it.set_input(x0[t].reshape(1, 1, -1), 0)
            it.invoke()
        return np.array(it.get_output(0))

    it.reset()
    after_history = feed(range(31))
    it.reset()
    fresh = feed([30])
    it.reset()
    np.testing.assert_array_equal(feed(range(31)), after_history)
    assert not np.array_equal(after_history, fresh)


@pytest.mark.parametrize("kind", ["bi_gru_concat", "bi_lstm"])
def test_bidirectional_streaming_refused_in_one_line(kind, tmp_path, bm_data):
    model = keras3_model(kind)
    with pytest.raises(EdgeRNNError, match="Bidirectional.*cannot stream") as e:
        edgernn.convert(model, calib=bm_data[0], output=tmp_path / "s.tflite", streaming=True)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "s.tflite").exists()


def test_streaming_metadata_and_result(tmp_path, bm_data):
    model = keras3_model("gru")
    res = edgernn.convert(model, calib=bm_data[0], output=tmp_path / "s.tflite", streaming=True)
    assert res.streaming and res.timesteps == 1
    from test_cells import _metadata

    meta = _metadata(res.path.read_bytes())
    assert meta["form"] == "streaming" and meta["timesteps"] == 1
    tm = tflite_model.parse(res.path.read_bytes())
    (layer,) = meta["layers"]
    assert layer["subgraph"] == 0 and "while_op" not in layer
    state = tm.main.tensors[layer["tensors"]["state"]]
    assert state.is_variable and layer["tensors"]["state"] == layer["tensors"]["state_out"]


@pytest.mark.slow
@pytest.mark.parametrize("spec", [Spec(cell="gru", layers=2), Spec()], ids=["gru-x2-basic_motions", "lstm-basic_motions"])
def test_trained_streaming_equals_sequence(zoo, tmp_path, spec):
    """A trained model through `edgernn.convert(..., streaming=True)`: same int8 as the zoo's sequence model."""
    train, test = zoo.data(spec.dataset)
    xte, _ = load_npz(test)
    res = edgernn.convert(zoo.keras(spec), calib=train, output=tmp_path / "s.tflite", streaming=True)
    seq = TFLMRunner(zoo.tflite(spec).read_bytes(), arena_size=ARENA)
    one = TFLMRunner(res.path.read_bytes(), arena_size=ARENA)
    xq = seq.quantize_input(xte)
    np.testing.assert_array_equal(_stream(one, xq)[:, -1], seq.run(xq))


def test_streaming_model_validates_and_emits(tmp_path, zoo):
    """validate feeds a streaming model one step per call; emit's harness does the same."""
    import re
    import edgernn
    from conftest import Spec
    from edgernn.errors import EdgeRNNError

    spec = Spec()
    train, test = zoo.data(spec.dataset)
    stream = tmp_path / "stream.tflite"
    edgernn.convert(zoo.keras(spec), train, stream, streaming=True)
    whole = edgernn.validate(zoo.keras(spec), zoo.tflite(spec), test, engines=["tflm"])
    rep = edgernn.validate(zoo.keras(spec), stream, test, engines=["simulator", "tflm"], html=tmp_path / "s.html")
    assert rep.metrics["simulator_vs_tflm_max_lsb"] == 0
    # the HTML's error along the sequence: the answer after every step against float's; the
    # last step's is the sequence model's answer
    tl = rep.timeline
    assert tl["kind"] == "output" and tl["steps"] == 100 and 'id="fig-time-error"' in (tmp_path / "s.html").read_text()
    assert tl["mean"][-1] == pytest.approx(rep.metrics["mean_abs_error"], rel=1e-3, abs=1e-6)
    assert rep.metrics["accuracy_int8"] == whole.metrics["accuracy_int8"]
    assert rep.metrics["max_abs_error"] == whole.metrics["max_abs_error"]  # bit-identical outputs
    out = tmp_path / "fw"
    edgernn.emit(stream, out, backend="tflm", test_data=test, samples=2)
    assert "kModelStepsPerVector = 100;" in (out / "selftest_data.h").read_text()
    assert re.search(r"for \(int step = 0; step < kModelStepsPerVector", (out / "main.cc").read_text())
    with pytest.raises(EdgeRNNError, match="whole-sequence .tflite"):
        edgernn.emit(stream, tmp_path / "native", backend="native")
