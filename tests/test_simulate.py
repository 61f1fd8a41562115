"""The int8 simulator equals TFLM's Python runtime bit for bit (0 LSB) on real models.

Every comparison runs TFLM once per sample (``reset()`` first, as a fresh inference) and the
simulator on all samples at once, with both simulator engines (numpy reference and the
compiled LSTM loop).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import Spec, load_npz

from edgernn.errors import EdgeRNNError
from edgernn.simulate import Simulator, simulate
from edgernn.simulate import _fast

ENGINES = ["numpy"] + (["numba"] if _fast.numba is not None else [])


def tflm_outputs(path, xq: np.ndarray) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    ip = runtime.Interpreter.from_file(str(path))
    shape = ip.get_input_details(0)["shape"]
    outs = []
    for i in range(len(xq)):
        ip.reset()
        ip.set_input(xq[i:i + 1].reshape(shape), 0)
        ip.invoke()
        outs.append(ip.get_output(0).copy())
    return np.concatenate(outs)


def assert_exact(path, x_float, engine):
    sim = Simulator.from_file(path, engine=engine)
    xq = sim.quantize_input(x_float)
    got = sim.run(xq)
    want = tflm_outputs(path, xq).reshape(got.shape)
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() == 0, f"{int((diff > 0).sum())} of {diff.size} outputs differ, max {diff.max()} LSB"
    return sim, got


# --------------------------------------------------------------------------- LSTM models
@pytest.mark.parametrize("engine", ENGINES)
def test_headline_lstm32_equals_tflm_on_every_test_sample(zoo, engine):
    path = zoo.tflite(Spec())
    _, test = zoo.data("basic_motions")
    x, _ = load_npz(test)
    sim, y = assert_exact(path, x, engine)
    assert sim.engine == engine
    # the head reads the LSTM's last step only, so the compiled loop writes only that step
    assert [k.last_step_only for g in sim.graphs for k in g.kernels if hasattr(k, "last_step_only")] == [True]
    if engine == "numba":  # its recurrent FC cannot leave int16: the loop skips that clamp; with it, same bits
        lstm = next(k for g in sim.graphs for k in g.kernels if hasattr(k, "last_step_only"))
        mh = lstm._packed[5]
        assert not mh[:, 4].any()
        mh[:, 4] = 1.0
        assert np.array_equal(sim.run(sim.quantize_input(x)), y)
    assert y.shape == (len(x), 4) and y.dtype == np.int8
    # the outputs are not degenerate: the softmax rows sum to ~1 and the classes vary
    probs = sim.dequantize_output(y)
    assert np.allclose(probs.sum(1), 1.0, atol=0.05)
    assert len(set(y.argmax(1))) > 1


@pytest.mark.slow
@pytest.mark.parametrize("spec", [Spec(layers=2, units=16), Spec(dataset="digits", units=16, epochs=20)],
                         ids=["stacked-lstm16x2-basic_motions", "lstm16-digits"])
def test_more_lstm_models_equal_tflm(zoo, spec):
    path = zoo.tflite(spec)
    _, test = zoo.data(spec.dataset)
    x, _ = load_npz(test)
    for engine in ENGINES:
        assert_exact(path, x, engine)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [Spec(cell="gru", dataset="digits", units=16, epochs=20),
                                  Spec(cell="rnn", dataset="digits", units=16, epochs=20),
                                  Spec(cell="lstm", bidirectional=True, dataset="digits", units=8, epochs=5)],
                         ids=["gru16-digits", "rnn16-digits", "bilstm8-digits"])
def test_while_loop_graphs_equal_tflm(zoo, spec):
    """GRU, SimpleRNN and Bidirectional models convert to WHILE loops of FC, ADD, SUB, MUL,
    LOGISTIC, TANH, SLICE, LESS, ... (edgernn's own graph writer)."""
    path = zoo.tflite(spec)
    _, test = zoo.data("digits")
    x, _ = load_npz(test)
    for engine in ENGINES:  # the numba engine runs each WHILE loop as one compiled kernel
        sim, _ = assert_exact(path, x, engine)
        loops = [k for g in sim.graphs for k in g.kernels if k.op.opcode == "WHILE"]
        assert loops and all((getattr(k, "compiled", None) is not None) == (engine == "numba") for k in loops)
    assert "WHILE" in sim.model.op_counts


def test_capture_matches_tflm_intermediate_tensors(zoo):
    """``run(capture=True)`` returns every tensor; each equals what TFLM computed for it."""
    from tflite_micro.python.tflite_micro import runtime

    path = zoo.tflite(Spec())
    _, test = zoo.data("basic_motions")
    x, _ = load_npz(test)
    sim = Simulator.from_file(path)
    xq = sim.quantize_input(x[:4])
    y, tensors = sim.run(xq, capture=True)
    assert np.array_equal(y, sim.run(xq))
    ip = runtime.Interpreter.from_file(str(path), intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    main = sim.model.main
    checked = 0
    for i in range(len(xq)):
        ip.reset()
        ip.set_input(xq[i:i + 1], 0)
        ip.invoke()
        for op in main.operators:
            for ti in op.outputs:
                want = ip.GetTensor(ti, 0)["tensor_data"]
                got = tensors[main.tensors[ti].name][i]
                assert np.array_equal(got.reshape(want.shape), want), main.tensors[ti].name
                checked += 1
    assert checked >= 4 * 4
    lstm_out = next(t.name for t in main.tensors if "lstm" in t.name and len(t.shape) == 3)
    assert tensors[lstm_out].shape == (4, 1, 100, 32)
    assert any(k.endswith(":final") and v.dtype == np.int16 for k, v in tensors.items())


def test_api_errors_and_quantization_round_trip(zoo):
    path = zoo.tflite(Spec())
    sim = Simulator.from_bytes(path.read_bytes())
    d = sim.get_input_details(0)
    assert tuple(d["shape"]) == (1, 100, 6) and d["dtype"] == np.int8
    scale = float(d["quantization_parameters"]["scales"][0])
    zp = int(d["quantization_parameters"]["zero_points"][0])
    x = np.random.default_rng(0).normal(size=(3, 100, 6)).astype(np.float32)
    q = sim.quantize_input(x)
    assert q.dtype == np.int8
    inside = (q > -128) & (q < 127)
    assert np.abs((q[inside].astype(np.float64) - zp) * scale - x[inside]).max() <= scale / 2 + 1e-6
    assert np.array_equal(simulate(path, q), sim.run(q))
    with pytest.raises(EdgeRNNError, match="int8"):
        sim.run(x)  # float data must be quantized first
    with pytest.raises(EdgeRNNError, match=r"expected \(N, 100, 6\)"):
        sim.run(q[:, :50])
    with pytest.raises(EdgeRNNError, match="engine"):
        Simulator.from_file(path, engine="fast")
    with pytest.raises(EdgeRNNError, match="no such"):
        Simulator.from_file(path.with_name("missing.tflite"))


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_streaming_one_step_models_keep_state_like_tflm(zoo, cell, tmp_path):
    """``run(stateful=True)`` carries the variable tensors from call to call, as TFLM does
    between two ``invoke()`` without ``reset()``."""
    import edgernn
    from tflite_micro.python.tflite_micro import runtime

    spec = Spec(cell=cell, dataset="digits", units=16, epochs=20)
    train, test = zoo.data("digits")
    path = tmp_path / f"{cell}-streaming.tflite"
    edgernn.convert(zoo.keras(spec), calib=train, output=path, streaming=True)
    x, _ = load_npz(test)
    x = x[:60]
    ip = runtime.Interpreter.from_file(str(path))
    for engine in ENGINES:
        sim = Simulator.from_file(path, engine=engine)
        xq = sim.quantize_input(x)
        sim.reset()
        got = np.stack([sim.run(xq[:, t:t + 1], stateful=True) for t in range(x.shape[1])], 1)
        want = np.empty_like(got)
        for i in range(len(xq)):
            ip.reset()
            for t in range(x.shape[1]):
                ip.set_input(xq[i:i + 1, t:t + 1], 0)
                ip.invoke()
                want[i, t] = ip.get_output(0)[0]
        assert np.array_equal(got, want)
        # without stateful, every call starts from the initial state: the steps then differ
        fresh = np.stack([sim.run(xq[:, t:t + 1]) for t in range(x.shape[1])], 1)
        assert np.array_equal(fresh[:, 0], got[:, 0]) and not np.array_equal(fresh, got)
        with pytest.raises(EdgeRNNError, match="reset"):
            sim.run(xq[:5, :1], stateful=True)


def test_tflm_style_calls_keep_state_until_reset(zoo):
    """set_input / invoke / get_output behave as TFLM's: state persists until reset()."""
    from tflite_micro.python.tflite_micro import runtime

    path = zoo.tflite(Spec())
    _, test = zoo.data("basic_motions")
    x, _ = load_npz(test)
    sim = Simulator.from_file(path)
    xq = sim.quantize_input(x[:3])
    ip = runtime.Interpreter.from_file(str(path))
    for i in range(3):  # no reset between samples: the LSTM state carries over in both
        ip.set_input(xq[i:i + 1], 0)
        ip.invoke()
        sim.set_input(xq[i:i + 1])
        sim.invoke()
        assert np.array_equal(sim.get_output(0), ip.get_output(0))
    sim.reset()
    sim.set_input(xq[:1])
    sim.invoke()
    assert np.array_equal(sim.get_output(), sim.run(xq[:1]))


@pytest.mark.parametrize("topology", ["stacked-gru", "per-step-gru", "bi-rnn-then-lstm"])
def test_sequence_buffers_fill_and_dynamic_update_slice(tmp_path, topology):
    """Stacked and per-step WHILE graphs (FILL + DYNAMIC_UPDATE_SLICE) equal TFLM bit for bit."""
    import keras
    import edgernn
    from edgernn.backends.tflm.runtime import TFLMRunner
    from edgernn.simulate import Simulator

    keras.utils.set_random_seed(0)
    layers = {
        "stacked-gru": [keras.layers.GRU(8, return_sequences=True), keras.layers.GRU(8),
                        keras.layers.Dense(3, activation="softmax")],
        "per-step-gru": [keras.layers.GRU(8, return_sequences=True), keras.layers.Dense(3, activation="softmax")],
        "bi-rnn-then-lstm": [keras.layers.Bidirectional(keras.layers.SimpleRNN(6, return_sequences=True)),
                             keras.layers.LSTM(5), keras.layers.Dense(2)],
    }[topology]
    model = keras.Sequential([keras.Input((30, 3))] + layers)
    x = np.random.default_rng(0).normal(size=(24, 30, 3)).astype(np.float32)
    path = tmp_path / "m.tflite"
    edgernn.convert(model, x, path)
    tflm = TFLMRunner(path.read_bytes())
    xq = tflm.quantize_input(x)
    want = tflm.run(xq)
    for engine in ENGINES:
        sim = Simulator.from_file(path, engine=engine)
        got = sim.run(xq)
        np.testing.assert_array_equal(got.reshape(want.shape), want)
        if engine == "numba":  # sequence outputs and backward directions run compiled too
            assert all(k.compiled is not None for g in sim.graphs for k in g.kernels if k.op.opcode == "WHILE")


def test_a_numba_build_failure_falls_back_to_the_numpy_kernels(zoo, monkeypatch):
    """A compiled kernel that numba cannot build does not stop a simulation: the same bits
    come from the numpy kernels, with the engine switched to "numpy"."""
    from numba.core.errors import TypingError

    path = zoo.tflite(Spec())
    _, test = zoo.data("basic_motions")
    x, _ = load_npz(test)
    want = Simulator.from_file(path, engine="numpy").run(Simulator.from_file(path).quantize_input(x[:16]))

    def broken(*args):
        raise TypingError("no BLAS")

    sim = Simulator.from_file(path, engine="numba")
    monkeypatch.setattr(_fast, "fully_connected_int8", broken)
    got = sim.run(sim.quantize_input(x[:16]))
    assert sim.engine == "numpy" and np.array_equal(got, want)

    def not_numba(*args):
        raise ValueError("a real bug")

    monkeypatch.setattr(_fast, "fully_connected_int8", not_numba)
    with pytest.raises(ValueError, match="a real bug"):
        Simulator.from_file(path, engine="numba").run(sim.quantize_input(x[:16]))
