"""Bad input (issue 13 §3): every case a new user ran into gives one line ``error: ...`` on
stderr, exit 2, no traceback, and leaves nothing behind. The fuzz test of the flatbuffer reader,
the simulator's model loading and the native planner is in ``test_fuzz_tflite.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import Spec

from edgernn.cli import main


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _refused(args, root: Path, *, match: str = "") -> str:
    """Run the CLI; assert exit 2 with one ``error:`` line (containing ``match``) and that
    nothing new appeared under ``root``. Returns the error line."""
    before = _files(root)
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.output and "Usage:" not in r.output
    assert match.lower() in lines[0].lower(), lines[0]
    assert _files(root) == before, sorted(map(str, _files(root) - before))
    return lines[0]


# ------------------------------------------------------------------ damaged and foreign flatbuffers
def _tensor_buffer_field(raw: bytes, tensor: int) -> int:
    """Byte offset of the ``buffer`` index (uint32) of main-subgraph tensor ``tensor``."""
    from tensorflow.lite.python import schema_py_generated as s

    t = s.Model.GetRootAs(bytearray(raw), 0).Subgraphs(0).Tensors(tensor)
    return t._tab.Pos + t._tab.Offset(8)  # Tensor field 2 (shape, type, buffer): vtable slot 8


def _repack(raw: bytes, edit) -> bytes:
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as s

    m = s.ModelT.InitFromPackedBuf(bytearray(raw), 0)
    edit(m)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _float_io(m):
    """Float32 input and output, as the TFLite converter writes them unless told int8."""
    sg = m.subgraphs[0]
    for i in (sg.inputs[0], sg.outputs[0]):
        sg.tensors[i].type, sg.tensors[i].quantization = 0, None  # FLOAT32


def _rank4_input(m):
    """An image model's (1, H, W, C) input, as a CONV_2D classifier has."""
    sg = m.subgraphs[0]
    t = sg.tensors[sg.inputs[0]]
    t.shape = np.array([1, *t.shape[1:], 1], np.int32)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, lstm_tflite):
    """name -> a damaged or foreign .tflite made from the session's LSTM flatbuffer."""
    root = tmp_path_factory.mktemp("bad_tflite")
    raw = lstm_tflite.read_bytes()
    flipped = bytearray(raw)
    flipped[_tensor_buffer_field(raw, 1) + 3] ^= 0x80  # one byte mid-file: a buffer index past the end
    ident = bytearray(raw)
    ident[5] ^= 0x01  # TFL3 -> TGL3
    files = {"byte-flipped": bytes(flipped), "identifier": bytes(ident), "truncated": raw[:len(raw) // 3],
             "float-io": _repack(raw, _float_io), "rank4-input": _repack(raw, _rank4_input),
             "empty": b"", "text": b"not a model at all\n"}
    out = {}
    for name, data in files.items():
        (root / f"{name}.tflite").write_bytes(data)
        out[name] = root / f"{name}.tflite"
    return out


FLATBUFFER_CASES = [  # (file, what the error line says)
    ("byte-flipped", "damaged TFLite flatbuffer"),
    ("identifier", "file identifier"),
    ("truncated", "flatbuffer"),
    ("empty", "not a TFLite flatbuffer"),
    ("text", "not a TFLite flatbuffer"),
]


@pytest.mark.parametrize("verb", ["inspect", "emit-tflm", "emit-native", "validate"])
@pytest.mark.parametrize("case,match", FLATBUFFER_CASES, ids=[c for c, _ in FLATBUFFER_CASES])
def test_damaged_flatbuffer_is_one_error_line(bad_files, lstm_keras, bm_data, tmp_path, verb, case, match):
    f = bad_files[case]
    args = {"inspect": ["inspect", f],
            "emit-tflm": ["emit", f, "-o", tmp_path / "fw", "--backend", "tflm"],
            "emit-native": ["emit", f, "-o", tmp_path / "fw", "--backend", "native"],
            "validate": ["validate", lstm_keras, f, "--data", bm_data[1], "--report", tmp_path / "r.json"]}[verb]
    line = _refused(args, tmp_path, match=match)
    assert f.name in line


@pytest.mark.parametrize("verb", ["emit-tflm", "emit-native", "validate"])
def test_float_tflite_is_refused(bad_files, lstm_keras, bm_data, tmp_path, verb):
    f = bad_files["float-io"]
    args = {"emit-tflm": ["emit", f, "-o", tmp_path / "fw", "--backend", "tflm"],
            "emit-native": ["emit", f, "-o", tmp_path / "fw", "--backend", "native"],
            "validate": ["validate", lstm_keras, f, "--data", bm_data[1]]}[verb]
    line = _refused(args, tmp_path, match="int8")
    assert "float32" in line and "edgernn convert" in line


def test_image_model_is_blamed_not_the_data(bad_files, lstm_keras, bm_data, tmp_path):
    line = _refused(["validate", lstm_keras, bad_files["rank4-input"], "--data", bm_data[1]], tmp_path,
                    match="rank4-input.tflite")
    assert "(1, T, F)" in line and str(bm_data[1]) not in line


# ------------------------------------------------------------------ options and data
def test_bad_choices_are_one_error_line(lstm_tflite, tmp_path):
    line = _refused(["emit", lstm_tflite, "-o", tmp_path / "fw", "--target", "nonsense"], tmp_path,
                    match="--target")
    assert "cortex-m4" in line and "edgernn emit --help" in line
    line = _refused(["dataset", "nonsense", "-o", tmp_path / "d"], tmp_path, match="nonsense")
    assert "digits" in line
    _refused(["convert", "m.keras"], tmp_path, match="--calib")  # a missing required option
    _refused(["train", "d.npz", "--units", "eight", "-o", tmp_path / "m.keras"], tmp_path, match="eight")


def test_emit_tflm_refuses_size_budgets(lstm_tflite, tmp_path):
    _refused(["emit", lstm_tflite, "-o", tmp_path / "fw", "--backend", "tflm", "--max-flash", "100"], tmp_path,
             match="--max-flash")
    _refused(["emit", lstm_tflite, "-o", tmp_path / "fw", "--max-ram", "100"], tmp_path, match="--backend native")


def test_dataset_onto_an_existing_file(tmp_path):
    f = tmp_path / "taken"
    f.write_text("mine\n")
    _refused(["dataset", "digits", "-o", f], tmp_path, match="not a directory")
    _refused(["dataset", "digits", "-o", f / "sub"], tmp_path, match="not a directory")
    assert f.read_text() == "mine\n"


@pytest.mark.parametrize("case", ["no-timesteps", "no-features", "labels-10-13", "labels-gap"])
def test_train_refuses_bad_data(tmp_path, case):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6, 3)).astype(np.float32)
    y = np.arange(40) % 4
    if case == "no-timesteps":
        x = x[:, :0]
    elif case == "no-features":
        x = x[:, :, :0]
    elif case == "labels-10-13":
        y = y + 10
    else:
        y = np.where(y == 2, 3, y)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    line = _refused(["train", tmp_path / "d.npz", "--units", "4", "--epochs", "1", "-o", tmp_path / "m.keras"],
                    tmp_path, match="d.npz")
    assert ("T >= 1" in line) if case.startswith("no-") else ("0..K-1" in line)


def test_qat_refuses_to_overwrite_its_input(tmp_path, digits_data):
    m = tmp_path / "m.keras"
    m.write_bytes(b"a model")
    _refused(["qat", m, "--data", digits_data[0], "-o", m], tmp_path, match="overwrite")
    _refused(["qat", m, "--data", digits_data[0], "-o", tmp_path / "." / "m.keras"], tmp_path, match="overwrite")
    assert m.read_bytes() == b"a model"


# ------------------------------------------------------------------ deploy
DEPLOY_CASES = [  # (config body, what the error line names)
    ("[model]\npath = '{keras}'\n[convert]\ncalib = '{train}'\n", "'output'"),
    ("[model]\npath = '{keras}'\n[convert]\ncalib = '{train}'\noutput = 'out/m.tflite'\n[[emit]]\nbackend = 'tflm'\n",
     "[emit] needs 'output'"),
    ("[model]\npath = '{keras}'\n[convert]\ncalib = '{train}'\noutput = 'out/m.tflite'\n[validate]\nengines = ['tflm']\n",
     "[validate] needs 'data'"),
    ("[train]\ndata = '{train}'\nunits = 'eight'\noutput = 'out/m.keras'\n", "units"),
]


@pytest.mark.parametrize("body,match", DEPLOY_CASES, ids=["convert-output", "emit-output", "validate-data", "units"])
def test_deploy_bad_config(tmp_path, lstm_keras, bm_data, body, match):
    cfg = tmp_path / "edgernn.toml"
    cfg.write_text(body.format(keras=lstm_keras, train=bm_data[0]))
    _refused(["deploy", cfg], tmp_path, match=match)


def test_deploy_failing_late_leaves_nothing_behind(tmp_path, zoo, bm_data):
    """convert succeeds, then [validate] names a missing data file: the .tflite and the new
    out/ directory are removed; a file that was there before is kept. (The session's GRU:
    the WHILE route converts in-process, no converter child.)"""
    gru = zoo.keras(Spec(cell="gru", layers=2))
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "old.txt").write_text("x")
    cfg = tmp_path / "edgernn.toml"
    cfg.write_text(f"[model]\npath = '{gru}'\n[convert]\ncalib = '{bm_data[0]}'\noutput = 'out/m.tflite'\n"
                   f"[validate]\ndata = 'missing.npz'\nengines = ['tflm']\nreport = 'keep/r.json'\n")
    _refused(["deploy", cfg], tmp_path, match="missing.npz")
    assert (tmp_path / "keep" / "old.txt").exists()


# ------------------------------------------------------------------ what used to be refused too late
def test_time_distributed_dense_before_the_recurrent_layer_converts_and_validates(tmp_path, digits_data):
    """convert accepted TimeDistributed(Dense) before the first recurrent layer and validate then
    refused the result; both take it now (the WHILE route: no converter child process)."""
    import keras

    L = keras.layers
    inp = keras.Input((8, 8))
    h = L.TimeDistributed(L.Dense(6), name="td")(inp)
    out = L.Dense(10, activation="softmax")(L.GRU(4, name="gru")(h))
    keras.Model(inp, out).save(tmp_path / "td.keras")
    r = CliRunner().invoke(main, ["convert", str(tmp_path / "td.keras"), "--calib", str(digits_data[0]),
                                  "-o", str(tmp_path / "td.tflite"), "--no-arena"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "td.keras"), str(tmp_path / "td.tflite"),
                                  "--data", str(digits_data[1]), "--samples", "16"])
    assert r.exit_code == 0, r.output
    assert "PASS simulator_vs_tflm_max_lsb = 0" in r.output
