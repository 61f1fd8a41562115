"""Model files, datasets and configs are untrusted: reading one never runs code from it (issue 19).

Each hostile model holds a Lambda whose function creates a marker file when it runs. Every verb
that reads a model must refuse it with one line naming the layer, exit 2, write nothing, and the
marker must not exist afterwards. ``test_stock_loader_runs_the_code`` shows the marker is a real
witness: the plain tf_keras loader does run it.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import edgernn
from edgernn.cli import main
from edgernn.errors import EdgeRNNError, UnsafeModelError
from edgernn.frontend import allowed_layer_classes, check_architecture, load_keras_object

FORMATS = ["h5", "tf_keras.keras", "keras3.keras", "savedmodel"]


def _hostile(tmp, fmt: str):
    """A model file of format ``fmt`` whose Lambda creates ``tmp/marker`` when called; (path, marker)."""
    marker = tmp / "marker"
    if fmt == "keras3.keras":
        import keras as K
    else:
        import tf_keras as K
    # The payload: a lambda with the marker's path as a constant in its bytecode (Keras 3 keeps no defaults).
    evil = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")
    model = K.Sequential([K.Input((10, 3)), K.layers.Lambda(evil, name="payload"), K.layers.LSTM(4),
                          K.layers.Dense(2, activation="softmax")])
    path = tmp / {"h5": "evil.h5", "tf_keras.keras": "evil.keras", "keras3.keras": "evil.keras",
                  "savedmodel": "evil_savedmodel"}[fmt]
    if fmt == "savedmodel":
        model.save(str(path), save_format="tf")
    else:
        model.save(path)
    marker.unlink(missing_ok=True)  # building and saving the model ran the Lambda
    return path, marker


@pytest.fixture(scope="module", params=FORMATS)
def hostile(request, tmp_path_factory):
    return _hostile(tmp_path_factory.mktemp(request.param.replace(".", "_")), request.param)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    p = d / "d.npz"
    np.savez(p, x=rng.normal(size=(16, 100, 6)).astype(np.float32), y=rng.integers(0, 4, 16))
    return p


def _refused(result, marker, *outputs):
    assert result.exit_code == 2, result.output
    err = result.output.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), result.output
    assert "'payload' (Lambda)" in err[0] and "code" in err[0]
    assert not marker.exists(), "the Lambda ran"
    for out in outputs:
        assert not out.exists(), f"{out} was written"


def test_stock_loader_runs_the_code(hostile):
    """The threat is real: tf_keras rebuilding a legacy .h5 or a SavedModel runs the Lambda's bytecode
    (a .keras archive runs it once safe mode is off), so the marker witnesses the payload."""
    import keras
    import tf_keras
    path, marker = hostile
    fmt = path.name
    try:
        if path.suffix == ".keras" and "keras3" in str(path.parent.name):
            keras.saving.load_model(path, compile=False, safe_mode=False)
        else:
            tf_keras.models.load_model(path, compile=False, safe_mode=path.suffix != ".keras")
    except Exception:
        pass
    assert marker.exists(), fmt
    marker.unlink()


def test_inspect_convert_validate_emit_refuse(hostile, small_data, lstm_tflite, tmp_path):
    path, marker = hostile
    runner = CliRunner()
    _refused(runner.invoke(main, ["inspect", str(path)]), marker)
    _refused(runner.invoke(main, ["convert", str(path), "--calib", str(small_data), "-o", str(tmp_path / "m.tflite")]),
             marker, tmp_path / "m.tflite")
    tfl = lstm_tflite  # validate reads the .tflite and the data before the model
    _refused(runner.invoke(main, ["validate", str(path), str(tfl), "--data", str(small_data)]), marker)
    _refused(runner.invoke(main, ["validate", str(path), str(tfl), "--data", str(small_data), "--per-layer"]), marker)
    _refused(runner.invoke(main, ["emit", str(path), "--calib", str(small_data), "-o", str(tmp_path / "fw")]),
             marker, tmp_path / "fw")


def test_qat_and_deploy_refuse(hostile, small_data, tmp_path):
    path, marker = hostile
    runner = CliRunner()
    _refused(runner.invoke(main, ["qat", str(path), "--data", str(small_data), "--epochs", "1",
                                  "-o", str(tmp_path / "q.keras")]), marker, tmp_path / "q.keras")
    cfg = tmp_path / "edgernn.toml"
    cfg.write_text(f'[model]\npath = "{path}"\n[convert]\ncalib = "{small_data}"\noutput = "out/m.tflite"\n'
                   f'[validate]\ndata = "{small_data}"\n')
    _refused(runner.invoke(main, ["deploy", str(cfg)]), marker, tmp_path / "out")


def test_refused_before_any_loader_runs(hostile, monkeypatch):
    """Nothing is handed to Keras or TensorFlow: every loader would fail the test if called."""
    import keras
    import tensorflow as tf
    import tf_keras

    def boom(*a, **k):
        raise AssertionError("a framework loader was called")

    for mod, name in [(keras.saving, "load_model"), (keras.models, "load_model"), (tf_keras.models, "load_model"),
                      (tf_keras.models, "model_from_config"), (tf.saved_model, "load")]:
        monkeypatch.setattr(mod, name, boom)
    path, marker = hostile
    with pytest.raises(UnsafeModelError, match="'payload' \\(Lambda\\)"):
        edgernn.load_model(path)
    assert not marker.exists()


@pytest.mark.slow
def test_console_script_refuses_the_issue_repro(tmp_path):
    """Issue 19 as filed: `edgernn inspect evil.h5` used to run the Lambda before refusing it."""
    path, marker = _hostile(tmp_path, "h5")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, "-m", "edgernn.cli", "inspect", str(path)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 2 and "'payload' (Lambda)" in r.stderr
    assert not marker.exists()


# --- the allowlist, on configs --------------------------------------------------------------------

def _seq(*layers, **extra):
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": "m", "layers": [{"class_name": "InputLayer", "config": {"batch_shape": [None, 10, 3],
                                                                                    "name": "in"}}, *layers]},
            **extra}


def _lstm(**cfg):
    return {"module": "keras.layers", "class_name": "LSTM", "registered_name": None,
            "config": {"name": "rnn", "units": 4, "activation": "tanh", "recurrent_activation": "sigmoid",
                       "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                              "config": {"seed": None}, "registered_name": None}, **cfg}}


@pytest.mark.parametrize("layer,match", [
    (_lstm(activation={"module": "builtins", "class_name": "function", "config": "evil", "registered_name": "function"}),
     "'rnn' \\(LSTM\\): activation is a serialized Python function"),
    (_lstm(activation={"class_name": "__lambda__", "config": {"code": "4wEAAA=="}}), "activation is a serialized Python"),
    (_lstm(activation={"value": ["4wEAAA==", None, None]}), "activation is a serialized Python function or unknown"),
    (_lstm(activation="os.system"), "activation='os.system' is not a standard Keras activation"),
    (_lstm(kernel_initializer={"module": "evil_pkg", "class_name": "MyInit", "config": {}}),
     "'rnn' \\(LSTM\\): kernel_initializer is a custom or unsupported object 'MyInit'"),
    (_lstm(kernel_initializer="my_init"), "kernel_initializer='my_init' is not a standard Keras initializer"),
    ({**_lstm(), "module": "evil_pkg.layers"}, "'rnn' \\(LSTM\\): names module 'evil_pkg.layers'"),
    ({**_lstm(), "registered_name": "evil>LSTM"}, "registered custom object 'evil>LSTM'"),
    ({"class_name": "TFOpLambda", "config": {"name": "tf.io.write_file", "function": "io.write_file"}},
     "'tf.io.write_file' \\(TFOpLambda\\) holds Python or TensorFlow code"),
    ({"class_name": "MyLayer", "module": "my_pkg", "config": {"name": "mine"}}, "'mine' \\(MyLayer\\) is not supported"),
    ({"class_name": "Bidirectional", "config": {"name": "bi", "layer": {"class_name": "Lambda",
                                                                         "config": {"name": "inner"}}}},
     "'inner' \\(Lambda\\) holds"),
])
def test_allowlist_refuses(layer, match):
    with pytest.raises(UnsafeModelError, match=match) as e:
        check_architecture(_seq(layer), "m.keras")
    assert str(e.value).startswith("m.keras: ") and str(e.value).endswith("nothing was loaded")


def test_allowlist_accepts_standard_objects_and_ignores_compile_config():
    layer = _lstm(kernel_regularizer={"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01}},
                  recurrent_constraint={"module": "keras.constraints", "class_name": "MaxNorm", "config": {}},
                  bias_initializer="zeros",
                  dtype={"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}})
    # A custom loss in compile_config is never deserialized (compile=False), so it does not refuse the model.
    check_architecture(_seq(layer, compile_config={"loss": {"class_name": "function", "config": "my_loss"}}), "m")


def test_subclassed_root_refused():
    with pytest.raises(UnsafeModelError, match="subclassed or custom MyModel"):
        check_architecture({"module": "my_pkg", "class_name": "MyModel", "config": {}}, "m.keras")


def test_allowlist_follows_the_handler_registry(monkeypatch):
    """A layer class gets in by having a frontend handler; no second list to keep."""
    from edgernn.frontend import keras as fk

    conv = {"module": "keras.layers", "class_name": "Conv1DLike", "config": {"name": "c", "activation": "relu"}}
    with pytest.raises(UnsafeModelError, match="'c' \\(Conv1DLike\\) is not supported"):
        check_architecture(_seq(conv), "m")
    monkeypatch.setitem(fk._HANDLERS, "Conv1DLike", lambda layer, width: [])
    assert "Conv1DLike" in allowed_layer_classes()
    check_architecture(_seq(conv), "m")
    assert set(fk._HANDLERS) <= allowed_layer_classes() and {"Sequential", "Functional", "InputLayer"} <= \
        allowed_layer_classes()


def test_deeply_nested_config_is_one_line(tmp_path):
    import h5py
    n = 100_000
    deep = '{"class_name": "Sequential", "config": {"layers": [], "x": ' + '{"x": ' * n + "{}" + "}" * n + "}}"
    p = tmp_path / "deep.h5"
    with h5py.File(p, "w") as f:
        f.attrs["model_config"] = deep
    with pytest.raises(EdgeRNNError, match="deep.h5: "):
        load_keras_object(p)


# --- SavedModel: rebuilt from metadata, graphs never loaded -------------------------------------

@pytest.fixture(scope="module")
def savedmodels(tmp_path_factory):
    """Two tf_keras SavedModels: a functional Bidirectional GRU + LSTM, and a Sequential LSTM(6)."""
    import tf_keras
    d = tmp_path_factory.mktemp("savedmodels")
    tf_keras.utils.set_random_seed(3)
    i = tf_keras.Input((12, 3))
    h = tf_keras.layers.Bidirectional(tf_keras.layers.GRU(5, return_sequences=True))(i)
    bi = tf_keras.Model(i, tf_keras.layers.Dense(2, activation="softmax")(tf_keras.layers.LSTM(4)(h)))
    seq = tf_keras.Sequential([tf_keras.Input((12, 3)), tf_keras.layers.LSTM(6), tf_keras.layers.Dense(2)])
    for name, model in (("bi", bi), ("seq", seq)):
        model.save(str(d / name), save_format="tf")
    return d, bi


def test_savedmodel_graphs_are_never_loaded(savedmodels, tmp_path):
    """The model is rebuilt from its checked Keras metadata and its variables checkpoint; saved_model.pb
    (the tf.functions TensorFlow's loader would restore) is not read: garbage there changes nothing."""
    src, model = savedmodels
    path = shutil.copytree(src / "bi", tmp_path / "sm")
    (path / "saved_model.pb").write_bytes(b"\xff" * 64)
    loaded = load_keras_object(path)
    x = np.random.default_rng(0).normal(size=(2, 12, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_savedmodel_without_keras_metadata_refused(savedmodels, tmp_path):
    path = shutil.copytree(savedmodels[0] / "seq", tmp_path / "sm")
    (path / "keras_metadata.pb").unlink()
    with pytest.raises(EdgeRNNError, match="SavedModel without Keras metadata"):
        load_keras_object(path)


def test_savedmodel_weights_must_match_metadata(savedmodels, tmp_path):
    path = shutil.copytree(savedmodels[0] / "seq", tmp_path / "sm")
    shutil.copy(savedmodels[0] / "bi" / "keras_metadata.pb", path / "keras_metadata.pb")
    with pytest.raises(EdgeRNNError, match="variables do not match its Keras metadata"):
        load_keras_object(path)


# --- data files: never unpickled --------------------------------------------------------------------

class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture()
def pickled(tmp_path):
    """An .npz and an .npy whose object array runs ``open(marker, "w")`` when unpickled; (npz, npy, marker)."""
    marker = tmp_path / "marker"
    obj = np.empty(1, dtype=object)
    obj[0] = _Payload(str(marker))
    npz, npy = tmp_path / "bad.npz", tmp_path / "bad.npy"
    np.savez(npz, x=obj, y=np.zeros(1, np.int64))
    np.save(npy, obj, allow_pickle=True)
    return npz, npy, marker


def test_pickle_payload_is_live(pickled):
    npz, _, marker = pickled
    with np.load(npz, allow_pickle=True) as z:
        z["x"]
    assert marker.exists()


def test_pickled_arrays_refused_everywhere(pickled, small_data, tmp_path):
    """train --test, convert --calib and qat --data refuse a pickled .npz/.npy without unpickling it."""
    import keras
    from edgernn.data import load_dataset

    npz, npy, marker = pickled
    good = tmp_path / "good.keras"
    keras.Sequential([keras.Input((10, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)]).save(good)
    runner = CliRunner()
    for bad in (npz, npy):
        for args, out in [
            (["train", str(small_data), "--epochs", "1", "--units", "2", "--test", str(bad), "--no-progress"],
             tmp_path / "t.keras"),
            (["convert", str(good), "--calib", str(bad)], tmp_path / "m.tflite"),
            (["qat", str(good), "--data", str(bad), "--epochs", "1"], tmp_path / "q.keras"),
        ]:
            r = runner.invoke(main, [*args, "-o", str(out)])
            assert r.exit_code == 2, r.output
            assert r.output.startswith(f"error: {bad}: ") and len(r.output.strip().splitlines()) == 1, r.output
            assert not marker.exists() and not out.exists()
        with pytest.raises(EdgeRNNError, match="not a readable .npz/.npy"):
            load_dataset(bad)
    assert not marker.exists()
