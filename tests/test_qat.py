"""Quantization-aware training: weights on the int8 grid, ranges equal to the converter's,
the fake-quantized model tracking the TFLM int8 outputs, accuracy against PTQ."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import Spec, load_npz

from edgernn import qat
from edgernn.backends.tflm.runtime import tflm_outputs


def test_snap_weight_is_on_the_converters_per_channel_grid():
    from edgernn.quantize.params import quantize_weights

    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 12)).astype(np.float32) * np.linspace(0.01, 3, 12, dtype=np.float32)
    snapped = qat.snap_weight(w, None)
    q, scale = quantize_weights(snapped.T)  # the GRU/SimpleRNN/Dense path of edgernn convert
    np.testing.assert_array_equal((q.astype(np.float32) * scale[:, None]).T, snapped)
    np.testing.assert_array_equal(qat.snap_weight(snapped, None), snapped)
    assert np.max(np.abs(snapped - w)) <= np.max(qat.weight_scales(w, None)) / 2 + 1e-7
    assert not np.array_equal(snapped, w)


def test_snap_weight_per_gate_block_uses_one_scale_per_block():
    w = np.random.default_rng(1).normal(size=(5, 16)).astype(np.float32)
    s = qat.weight_scales(w, 4)
    assert len(np.unique(s)) == 4
    for g in range(4):
        blk = w[:, 4 * g:4 * g + 4]
        assert s[4 * g] == pytest.approx(np.abs(blk).max() / 127)
    snapped = qat.snap_weight(w, 4)
    np.testing.assert_allclose(snapped / s, np.round(snapped / s), atol=1e-4)


def test_stacked_layers_share_weight_scales_as_convert_writes_them(bm_data):
    """The int16 layout's SHARED_SCALES: the second GRU of a stack (reading the first one's Q15
    h) has one scale per column over its kernel and recurrent kernel. snap_model puts both on
    that grid (convert stores them exactly), the first GRU on its own two grids, and the QAT
    model's fake quantization of the pair is snap_pair."""
    from test_cells import keras3_model

    from edgernn.backends.tflm.convert import convert_ir
    from edgernn.frontend import from_keras
    from edgernn.qat.quantizers import _fake_quant_shared
    from edgernn.qat.snap import shared_scale_layers, snap_pair
    from test_cells import _metadata
    from edgernn import tflite_model

    m = from_keras(keras3_model("gru_x2", timesteps=20))
    assert shared_scale_layers(m) == {1} and shared_scale_layers(m, "int8") == set()
    snapped = qat.snap_model(m)
    data = convert_ir(snapped, load_npz(bm_data[0])[0][:8, :20])
    tm, meta = tflite_model.parse(data), _metadata(data)
    for k, (layer, info) in enumerate(zip(snapped.layers[:2], meta["layers"])):
        body = tm.subgraphs[info["subgraph"]]
        for side, want in (("kernel", layer.kernel), ("recurrent_kernel", layer.recurrent_kernel)):
            ts = [body.tensors[i] for i in info["tensors"][side]]
            got = np.concatenate([t.data.astype(np.float32) * t.scale[:, None].astype(np.float32) for t in ts])
            np.testing.assert_array_equal(got.T, want, err_msg=f"layer {k} {side}")
        own = [qat.snap_weight(m.layers[k].kernel, None), qat.snap_weight(m.layers[k].recurrent_kernel, None)]
        assert np.array_equal(own[0], layer.kernel) == (k == 0)
    qm = qat.build_qat_model(m, 20)  # the second GRU's weights fake-quantized as one pair
    assert [l.quantize_config.shared_scales for l in qm.layers
            if type(getattr(l, "quantize_config", None)).__name__ == "RecurrentQuantizeConfig"] == [False, True]
    rng = np.random.default_rng(2)
    kk, rk = rng.normal(size=(32, 96)).astype(np.float32), rng.normal(size=(32, 96)).astype(np.float32) * 0.3
    for fake, snap in zip(_fake_quant_shared(kk, rk), snap_pair(kk, rk)):
        np.testing.assert_allclose(np.asarray(fake), snap, rtol=0, atol=1e-6)


def _int8_acc(tflite: bytes, x, y) -> float:
    return float(np.mean(np.argmax(tflm_outputs(tflite, x), -1) == y))


@pytest.fixture(scope="module")
def digits64(zoo, tmp_path_factory):
    """digits read pixel by pixel: 64 time steps x 1 feature (a long-sequence task)."""
    out = []
    for path in zoo.data("digits"):
        x, y = load_npz(path)
        p = tmp_path_factory.mktemp("digits64") / path.name.replace("digits", "digits64")
        np.savez(p, x=x.reshape(len(x), 64, 1), y=y)
        out.append(p)
    return tuple(out)


@pytest.fixture(scope="module")
def relu_rnn_digits64(digits64, tmp_path_factory):
    """SimpleRNN(16, relu) on 64-step digits: its int8 version (PTQ) loses ~3 points."""
    import edgernn

    out = tmp_path_factory.mktemp("relu_rnn") / "rnn16_relu_digits64.keras"
    edgernn.train(digits64[0], cell="rnn", units=16, activation="relu", epochs=30, seed=1, output=out,
                  progress=False)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("which", ["lstm-fused", "rnn-relu-while"])
def test_fake_quant_model_tracks_tflm_int8(zoo, which, request):
    """The QAT forward pass (before any fine-tuning) is closer to the TFLM int8 outputs than
    the float model is: the fake quantization models the int8 arithmetic."""
    import edgernn
    import keras

    if which == "lstm-fused":
        path, (train, test) = zoo.keras(Spec(dataset="digits", units=16, epochs=20)), zoo.data("digits")
    else:
        path, (train, test) = request.getfixturevalue("relu_rnn_digits64"), request.getfixturevalue("digits64")
    xtr, _ = load_npz(train)
    xte, _ = load_npz(test)
    xte = xte[:150]
    # weights snapped first: convert calibrates with the float weights, QAT with snapped ones
    m = qat.snap_model(edgernn.load_model(path))
    int8 = tflm_outputs(edgernn.convert(m, calib=train).tflite, xte)
    qm = qat.build_qat_model(m, xtr.shape[1])
    ranges = qat.calibrate(qm, xtr[:qat.MAX_CALIB_SAMPLES])
    assert ranges and all(lo <= 0.0 <= hi for lo, hi in ranges.values())
    sim = np.asarray(qm(xte, training=False))
    flt = np.asarray(keras.saving.load_model(path)(xte))
    # the int8 SOFTMAX output grid (scale 1/256), applied to both: training leaves it out
    sim, flt = (np.clip(np.round(v * 256.0), 0, 255) / 256.0 for v in (sim, flt))
    err_sim, err_float = np.mean(np.abs(sim - int8)), np.mean(np.abs(flt - int8))
    assert err_sim < err_float, (err_sim, err_float)
    assert np.mean(sim.argmax(-1) == int8.argmax(-1)) >= np.mean(flt.argmax(-1) == int8.argmax(-1))


@pytest.mark.slow
@pytest.mark.parametrize("state", ["int16", "int8"])
def test_while_graph_ranges_are_the_ones_convert_writes(zoo, state):
    """Every tensor the QAT GRU quantizes on a calibrated range has the scale ``edgernn convert
    --state`` gives the same tensor of the WHILE graph (pre-activations clipped where LOGISTIC /
    TANH saturate; int16: symmetric), and the state h is on a fixed grid in both (int8: TANH's
    1/128; int16: 2^-15)."""
    import edgernn
    from edgernn.backends.tflm.recurrent import calibrate
    from edgernn.quantize.params import activation_params, symmetric_int16_params

    spec = Spec(cell="gru", dataset="digits", units=16, epochs=20)
    train, _ = zoo.data("digits")
    x, _ = load_npz(train)
    m = edgernn.load_model(zoo.keras(spec))
    qm = qat.build_qat_model(m, x.shape[1], state=state)
    ranges = qat.calibrate(qm, x[:qat.MAX_CALIB_SAMPLES], float_weights=True)
    # the parameters convert writes (the flatbuffer stores no tensor names: read them by name here)
    _, quant = calibrate(m, x[:qat.MAX_CALIB_SAMPLES], state)
    by_name = {name.split("/")[-1]: q for name, q in quant.items()}
    if state == "int16":  # QAT's X: convert's FC terms of the ADDs (SUM_SCALE: one scale)
        assert {by_name[n].scale[0] for n in ("X_zr", "X_h", "H_zr", "H_h", "r_hh")} == {by_name["X_zr"].scale[0]}
        by_name["X"] = by_name["X_zr"]
    cell = {k.rsplit("/", 1)[-1]: v for k, v in ranges.items() if "qat_cell" in k}  # qat_cell(_N)/x_z
    if state == "int16":
        assert set(cell) == {"X", "zr_pre", "hc_pre"}
        for name, (lo, hi) in cell.items():
            assert by_name[name].scale[0] == pytest.approx(symmetric_int16_params(lo, hi).scale[0], rel=1e-5), name
        assert max(abs(v) for v in cell["zr_pre"]) <= 10.625 and max(abs(v) for v in cell["hc_pre"]) <= 5.3125
        assert by_name["h_new"].scale[0] == 2.0 ** -15 and by_name["h_new"].zero_point[0] == 0
        assert by_name["h_minus_hc"].scale[0] == by_name["z_d"].scale[0] == 2.0 ** -14
        # the sums on the terms' scale over a power of two
        for n in ("zr_pre", "hc_pre"):
            assert np.log2(by_name["X"].scale[0] / by_name[n].scale[0]) in (0.0, 1.0, 2.0, 3.0), n
        return
    assert {"z_pre", "r_pre", "hc_pre", "r_hh", "z_d", "x_z", "h_z"} <= set(cell)
    assert "h" not in cell and "h_minus_hc" not in cell  # fixed grids, not calibrated
    for name, (lo, hi) in cell.items():
        q = by_name[name.replace("_", "") if name[:2] in ("x_", "h_") and len(name) == 3 else name]  # x_z: xz
        assert q.scale[0] == pytest.approx(activation_params(lo, hi).scale[0], rel=1e-5), name
    assert min(cell["z_pre"][0], cell["hc_pre"][0]) >= -8.0 and cell["hc_pre"][0] >= -4.0
    assert by_name["h_new"].scale[0] == pytest.approx(1 / 128) and by_name["h_new"].zero_point[0] == 0


def test_int16_lstm_cell_state_range_is_the_one_convert_writes(bm_data):
    """The int16 WHILE-graph LSTM (here inside Bidirectional): QAT's cell-state quantizer sees
    c and f * c (convert ties them) and widens the range CELL_HEADROOM times, giving the scale
    ``edgernn convert`` writes for c, f * c; i * g is on Q15 in both."""
    from test_cells import keras3_model

    from edgernn.backends.tflm.recurrent import calibrate
    from edgernn.frontend import from_keras
    from edgernn.quantize.params import CELL_HEADROOM

    x = load_npz(bm_data[0])[0][:, :30]
    m = from_keras(keras3_model("bi_lstm", timesteps=30))
    ranges = qat.calibrate(qat.build_qat_model(m, 30, state="int16"), x, float_weights=True)
    _, quant = calibrate(m, x, "int16")
    for d, direction in (("f", "forward"), ("b", "backward")):  # .../forward_<layer>/qat_cell(_N)/c
        lo, hi = next(v for k, v in ranges.items() if f"/{direction}_" in k and "/qat_cell" in k and k.endswith("/c"))
        want = CELL_HEADROOM * max(-lo, hi) / 32767
        assert quant[f"L0{d}/c_new"].scale[0] == quant[f"L0{d}/f_c"].scale[0] == pytest.approx(want, rel=1e-5)
        assert quant[f"L0{d}/i_g"].scale[0] == 2.0 ** -15
        # SUM_SCALE: X and H on one scale, their sum on it over 2^j; QAT's points give both
        for n in ("X", "pre"):
            lo, hi = next(v for k, v in ranges.items() if f"/{direction}_" in k and "/qat_cell" in k and k.endswith(f"/{n}"))
            assert quant[f"L0{d}/{n}"].scale[0] == pytest.approx(max(-lo, hi) / 32767, rel=1e-5), n
        assert quant[f"L0{d}/H"].scale[0] == quant[f"L0{d}/X"].scale[0]
        assert np.log2(quant[f"L0{d}/X"].scale[0] / quant[f"L0{d}/pre"].scale[0]) in (0.0, 1.0, 2.0)


@pytest.mark.slow
def test_qat_recovers_the_accuracy_ptq_loses(relu_rnn_digits64, digits64, tmp_path):
    """A relu SimpleRNN over 64 steps with an int8 state (``--state int8``): PTQ loses more than
    2 points of test accuracy, 20 QAT epochs at 3e-4 bring the int8 loss under 1 point (TFLM
    runtime, 450 test digits). (With the default int16 state PTQ already loses only ~0.2 points
    here.) The fixture's training differs per CPU: on an AVX2 machine its float model reaches 0.684
    and 10 epochs at the default 1e-4 kept an epoch no better on the test digits than PTQ."""
    import edgernn
    import keras

    train, test = digits64
    x, y = load_npz(test)
    float_acc = float(np.mean(np.argmax(keras.saving.load_model(relu_rnn_digits64)(x), -1) == y))
    ptq = _int8_acc(edgernn.convert(relu_rnn_digits64, calib=train, state="int8").tflite, x, y)
    res = qat.qat_finetune(relu_rnn_digits64, train, epochs=20, seed=0, output=tmp_path / "qat.keras",
                           state="int8", learning_rate=3e-4)
    q = _int8_acc(edgernn.convert(res.path, calib=train, state="int8").tflite, x, y)
    assert float_acc - ptq > 0.02, (float_acc, ptq)
    assert float_acc - q < 0.01, (float_acc, ptq, q)


@pytest.fixture(scope="module")
def lstm_qat(zoo, tmp_path_factory):
    """The digits LSTM fine-tuned 3 epochs, saved, and converted with the training data.
    Epochs scored by the fake-quantized graph (no conversion per epoch: the fused LSTM's
    takes ~8 s; the bit-exact default is tested on BasicMotions)."""
    import edgernn

    spec = Spec(dataset="digits", units=16, epochs=20)
    train, _ = zoo.data("digits")
    out = tmp_path_factory.mktemp("qat") / "lstm_qat.keras"
    res = qat.qat_finetune(zoo.keras(spec), train, epochs=3, output=out, seed=0, select_with="fake-quant")
    assert res.selection_with == "fake-quant" and len(res.selection_scores) == 4
    conv = edgernn.convert(out, calib=train)
    return spec, res, conv


@pytest.mark.slow
def test_qat_model_is_float_keras_with_weights_on_the_int8_grid(lstm_qat):
    from edgernn import tflite_model

    _, res, conv = lstm_qat
    assert res.path.exists() and res.path.suffix == ".keras"
    assert res.kept_epoch > 0, res.selection_scores  # fine-tuning improved it: a snapped epoch was kept
    import keras
    reloaded = keras.saving.load_model(res.path)
    assert all(w.dtype == np.float32 for w in reloaded.get_weights())
    lstm = res.ir_model.layers[0]
    m = tflite_model.parse(conv.tflite)
    # the fused LSTM keeps one int8 matrix per gate: dequantized, each equals the QAT weights
    mats = [t for t in m.main.tensors if t.dtype == "int8" and t.data is not None and len(t.shape) == 2
            and t.shape[0] == lstm.units]
    assert len(mats) == 8
    want = [lstm.kernel[:, g * lstm.units:(g + 1) * lstm.units].T for g in range(4)]
    want += [lstm.recurrent_kernel[:, g * lstm.units:(g + 1) * lstm.units].T for g in range(4)]
    for w in want:
        assert any(t.data.shape == w.shape and np.allclose(t.data.astype(np.float32) * t.scale[0], w, rtol=0,
                                                           atol=1e-6) for t in mats)
    head = next(t for t in m.main.tensors if t.data is not None and t.dtype == "int8" and t.shape == (10, lstm.units))
    np.testing.assert_allclose(head.data.astype(np.float32) * head.scale[:, None], res.ir_model.layers[-1].kernel.T,
                               atol=1e-6, rtol=0)


@pytest.mark.slow
def test_trained_ranges_are_the_ones_convert_calibrates(lstm_qat):
    from edgernn import tflite_model

    _, res, conv = lstm_qat
    m = tflite_model.parse(conv.tflite)

    def scale_of(lo_hi):
        lo, hi = lo_hi
        return (hi - lo) / 255.0

    inp = next(v for k, v in res.ranges.items() if k.endswith("input_quant/output"))
    assert m.input(0).scale[0] == pytest.approx(scale_of(inp), rel=1e-5)
    h = next(v for k, v in res.ranges.items() if k.endswith("/h"))
    lstm_out = next(t for t in m.main.tensors if "unidirectional_sequence_lstm" in t.name.lower())
    assert lstm_out.scale[0] == pytest.approx(scale_of(h), rel=1e-4)
    cell = next(v for k, v in res.ranges.items() if k.endswith("cell_state"))
    cell_t = next(t for t in m.main.tensors if t.is_variable and t.dtype == "int16")
    assert cell_t.scale[0] == pytest.approx(cell[1] / 32768.0, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["lstm-fused", "gru-while"])
def test_qat_not_worse_than_ptq_where_ptq_works(zoo, lstm_qat, which, tmp_path):
    """Digits models whose PTQ int8 accuracy is already within a point of float: QAT's int8
    accuracy is never more than 0.5 points below PTQ's (450 test digits, TFLM runtime)."""
    import edgernn

    train, test = zoo.data("digits")
    x, y = load_npz(test)
    if which == "lstm-fused":
        spec, _, conv = lstm_qat
        qat_tflite = conv.tflite
    else:
        spec = Spec(cell="gru", dataset="digits", units=16, epochs=20)
        res = qat.qat_finetune(zoo.keras(spec), train, epochs=3, seed=0, output=tmp_path / "gru_qat.keras")
        qat_tflite = edgernn.convert(res.path, calib=train).tflite
    ptq = _int8_acc(edgernn.convert(zoo.keras(spec), calib=train).tflite, x, y)
    q = _int8_acc(qat_tflite, x, y)
    assert q >= ptq - 0.005, (q, ptq)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [pytest.param(Spec(cell="gru", units=12, bidirectional=True, epochs=40), id="bi-gru"),
                                  pytest.param(Spec(units=16, layers=2, epochs=30), id="lstm16x2")])
def test_qat_handles_stacked_and_bidirectional(zoo, spec, tmp_path):
    import edgernn

    train, test = zoo.data(spec.dataset)
    res = qat.qat_finetune(zoo.keras(spec), train, epochs=1, output=tmp_path / "m.keras", seed=0,
                           select_with="fake-quant")
    before = edgernn.load_model(zoo.keras(spec))
    assert [l.kind for l in res.ir_model.layers] == [l.kind for l in before.layers]
    assert len(res.history["loss"]) == 1 and np.isfinite(res.history["loss"][0])
    x, y = load_npz(test)
    conv = edgernn.convert(res.path, calib=train)
    # against PTQ of the same model on the 40 test recordings (one is 2.5 points): one QAT epoch,
    # kept on its fake-quantized score, costs at most two of them
    ptq = _int8_acc(zoo.tflite(spec).read_bytes(), x, y)
    q = _int8_acc(conv.tflite, x, y)
    assert q >= ptq - 0.05, (q, ptq)


@pytest.mark.slow
def test_train_with_qat_flag_saves_the_qat_model(zoo, tmp_path):
    import edgernn

    train, _ = zoo.data("digits")
    out = tmp_path / "m.keras"
    r = edgernn.train(train, cell="rnn", units=8, epochs=3, output=out, progress=False, qat=True, qat_epochs=1)
    assert r.qat is not None and r.qat.epochs_run == 1
    assert r.qat.selection == "validation data"  # train's own validation split picks the epoch
    assert len(r.qat.selection_scores) == 2 and r.qat.kept_score == max(r.qat.selection_scores)
    saved = edgernn.load_model(out)
    if r.qat.kept_epoch > 0:  # a fine-tuned epoch won: weights on their int8 grid
        for l in saved.layers:
            if l.kind == "recurrent":
                np.testing.assert_array_equal(qat.snap_weight(l.kernel, None), l.kernel)
    np.testing.assert_array_equal(saved.layers[0].kernel, r.qat.ir_model.layers[0].kernel)


def test_qat_refuses_bad_arguments(tmp_path):
    from edgernn.errors import EdgeRNNError

    with pytest.raises(EdgeRNNError, match="epoch"):
        qat.qat_finetune(tmp_path / "m.keras", tmp_path / "d.npz", epochs=0)
    with pytest.raises(EdgeRNNError, match=r"\.keras"):
        qat.qat_finetune(tmp_path / "m.keras", tmp_path / "d.npz", epochs=1, output=tmp_path / "m.tflite")


@pytest.mark.slow
def test_keep_best_returns_the_given_model_when_finetuning_only_hurts(zoo, tmp_path):
    """A learning rate of 1 wrecks the digits GRU in one epoch: QAT keeps epoch 0, returns the
    given weights unchanged (they convert to the very PTQ flatbuffer), and scored epoch 0 on
    the validation set exactly as the TFLM int8 PTQ model does."""
    import edgernn

    spec = Spec(cell="gru", dataset="digits", units=16, epochs=20)
    train, test = zoo.data("digits")
    xv, yv = load_npz(test)
    xv, yv = xv[:200], yv[:200]
    res = qat.qat_finetune(zoo.keras(spec), train, val=(xv, yv), epochs=2, learning_rate=1.0, seed=0,
                           output=tmp_path / "m.keras")
    ptq = edgernn.convert(zoo.keras(spec), calib=train).tflite
    assert res.selection == "validation data" and len(res.selection_scores) == res.epochs_run + 1
    assert res.selection_scores[0] == _int8_acc(ptq, xv, yv)
    assert all(s < res.selection_scores[0] - 0.1 for s in res.selection_scores[1:]), res.selection_scores
    assert res.kept_epoch == 0 and res.kept_score == res.selection_scores[0]
    given = edgernn.load_model(zoo.keras(spec))
    for a, b in zip(given.layers, edgernn.load_model(res.path).layers, strict=True):
        for name in ("kernel", "recurrent_kernel", "bias"):
            if hasattr(a, name):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert edgernn.convert(res.path, calib=train).tflite == ptq


@pytest.mark.slow
def test_keep_best_prefers_the_earlier_epoch_on_a_tie_and_refuses_bad_selection_data(zoo, tmp_path):
    """A learning rate below float32 resolution leaves the weights as they are: epochs 1 and 2
    are the same int8 model and tie, and the tie keeps the earlier one (epoch 0 unless epoch 1,
    the weights snapped to their grid, scores better). Unlabelled or mismatched val is refused."""
    from edgernn.errors import EdgeRNNError

    spec = Spec(cell="rnn", dataset="digits", units=16, epochs=20)
    train, _ = zoo.data("digits")
    x, y = load_npz(train)
    res = qat.qat_finetune(zoo.keras(spec), (x[:300], y[:300]), epochs=2, learning_rate=1e-12, seed=0)
    assert res.selection == "training data" and res.selection_metric == "accuracy"
    s = res.selection_scores
    assert len(s) == 3 and s[1] == s[2]
    assert res.kept_epoch == (1 if s[1] > s[0] else 0)
    with pytest.raises(EdgeRNNError, match="time steps"):
        qat.qat_finetune(zoo.keras(spec), train, val=(x[:8, :4], y[:8]), epochs=1)
    with pytest.raises(EdgeRNNError, match="labels"):
        qat.qat_finetune(zoo.keras(spec), train, val=(x[:8], y[:8].astype(np.float32)), epochs=1)
    np.savez(tmp_path / "nolabels.npz", x=x[:8])
    with pytest.raises(EdgeRNNError, match="no array .y."):
        qat.qat_finetune(zoo.keras(spec), train, val=tmp_path / "nolabels.npz", epochs=1)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [pytest.param(Spec(units=16), id="lstm16-fused"),
                                  pytest.param(Spec(cell="gru", units=16), id="gru16-while")])
def test_qat_not_worse_than_ptq_on_basic_motions(zoo, spec, tmp_path):
    """BasicMotions (aeon, 40 test recordings: one is 2.5 points), LSTM(16) and GRU(16) as
    bench_qat.py trains them, PTQ within one recording of float (issue 8: before keep-best, QAT lost
    5 points on the LSTM, 2.5 on the GRU). QAT with its defaults (selection on the training
    data) is never more than 0.5 points below PTQ on the test split, TFLM runtime; and the kept
    epoch's int8 training accuracy is at least PTQ's (the keep-best guarantee, bit-exact)."""
    import edgernn
    import keras

    train, test = zoo.data("basic_motions")
    x, y = load_npz(test)
    xtr, ytr = load_npz(train)
    float_acc = float(np.mean(np.argmax(keras.saving.load_model(zoo.keras(spec))(x), -1) == y))
    ptq_tflite = zoo.tflite(spec).read_bytes()
    ptq = _int8_acc(ptq_tflite, x, y)
    # a model where PTQ works: at most one recording flipped (the int16-state GRU is closer to
    # its float model than the int8 one, p99 0.020 vs 0.026, yet flips one borderline recording)
    assert float_acc - ptq <= 0.025 + 1e-9, (float_acc, ptq)
    res = qat.qat_finetune(zoo.keras(spec), train, epochs=3, seed=0, output=tmp_path / "qat.keras")
    qat_tflite = edgernn.convert(res.path, calib=train).tflite
    assert res.kept_score >= _int8_acc(ptq_tflite, xtr, ytr) == res.selection_scores[0]
    assert res.kept_score == _int8_acc(qat_tflite, xtr, ytr)
    assert _int8_acc(qat_tflite, x, y) >= ptq - 0.005, (float_acc, ptq, res.selection_scores)


@pytest.mark.slow
def test_cli_qat_scores_epochs_on_val(zoo, tmp_path):
    """``edgernn qat --val``: epochs are scored on the validation file, the kept epoch printed."""
    from click.testing import CliRunner

    from edgernn.cli import main

    spec = Spec(cell="rnn", dataset="digits", units=16, epochs=20)
    train, test = zoo.data("digits")
    x, y = load_npz(test)
    np.savez(tmp_path / "val.npz", x=x[:100], y=y[:100])
    r = CliRunner().invoke(main, ["qat", str(zoo.keras(spec)), "--data", str(train), "--val", str(tmp_path / "val.npz"),
                                  "--epochs", "1", "-o", str(tmp_path / "q.keras")])
    assert r.exit_code == 0, r.output
    assert "on the validation data" in r.output and "kept epoch" in r.output
    assert (tmp_path / "q.keras").exists()


@pytest.mark.slow
def test_keep_best_scores_a_regressor_by_int8_mse(tmp_path):
    """A regressor is scored by its int8 MSE, lower is better: a learning rate that wrecks it
    (MSE up a hundredfold and more) keeps epoch 0."""
    import edgernn
    from edgernn.data import Dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12, 3)).astype(np.float32)
    y = (x[:, :, 0].mean(1) + 0.5 * x[:, -1, 1]).astype(np.float32)
    path = tmp_path / "reg.keras"
    edgernn.train(Dataset("synthetic", x, y), cell="gru", units=8, epochs=5, progress=False, output=path)
    wrecked = qat.qat_finetune(path, (x, y), epochs=2, learning_rate=5.0)
    assert wrecked.selection_metric == "mse" and wrecked.kept_epoch == 0
    assert all(s > wrecked.selection_scores[0] for s in wrecked.selection_scores[1:])
