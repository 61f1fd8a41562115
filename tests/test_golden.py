"""Golden outputs: converted flatbuffers and emitted sources, byte for byte, against a recording.

Every model here is built without training: Keras 3 layers whose weights come from a seeded
numpy generator, calibrated and tested on seeded random inputs. Each is converted with
``edgernn.convert`` (the whole-sequence form, and the streaming form for a fused LSTM and a
WHILE-graph GRU) and emitted with ``edgernn.emit`` for the TFLM backend (host: edgernn builds
TFLM projects for the host only) and
the native backend (host, cortex-m4; arduino and zephyr for two models), with embedded
self-test vectors. The sha256 of every ``.tflite`` and of every emitted file is compared with
``tests/golden_hashes.json``, recorded once from the code as it was before the architecture
refactor (issue 12), so moving code cannot silently change a byte the user gets.

Nothing in the outputs varies from run to run except the temporary paths the models are read
from; those are replaced by ``<TMP>`` before hashing (checked by recording twice).

Re-recording, when a later change alters the outputs on purpose::

    TF_CPP_MIN_LOG_LEVEL=3 python3 -m pytest tests/test_golden.py --record-golden

rewrites ``tests/golden_hashes.json`` (and passes); review the diff of that file and say in the
commit message why the bytes changed.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).with_name("golden_hashes.json")
T, F, N_CALIB, N_TEST = 12, 3, 64, 3


def _weights(layer_weights, rng):
    return [(rng.standard_normal(w.shape) * 0.4).astype(np.float32) for w in layer_weights]


def _model(name: str):
    """The Keras 3 model ``name`` with seeded weights."""
    import keras

    L = keras.layers
    head = L.Dense(4, activation="softmax", name="head")
    body = {
        "lstm1": [L.LSTM(8, name="lstm")],
        "lstm2": [L.LSTM(8, return_sequences=True, name="lstm_a"), L.LSTM(6, name="lstm_b")],
        "gru_reset_after": [L.GRU(8, reset_after=True, name="gru")],
        "gru_reset_before": [L.GRU(8, reset_after=False, name="gru")],
        "rnn_tanh": [L.SimpleRNN(8, name="rnn")],
        "rnn_relu": [L.SimpleRNN(8, activation="relu", name="rnn")],
        "bidi_concat": [L.Bidirectional(L.GRU(6), merge_mode="concat", name="bi")],
        "bidi_sum": [L.Bidirectional(L.LSTM(6), merge_mode="sum", name="bi")],
        "per_step": [L.GRU(8, return_sequences=True, name="gru")],
        "lstm_gru": [L.LSTM(8, return_sequences=True, name="lstm"), L.GRU(6, name="gru")],
    }[name]
    if name == "rnn_relu":
        head = L.Dense(2, name="head")  # a linear (regression-style) head
    inp = keras.Input((T, F), name="x")
    h = inp
    for layer in body + [head]:
        h = layer(h)
    model = keras.Model(inp, h, name=name)
    rng = np.random.default_rng(sum(map(ord, name)))
    model.set_weights(_weights(model.get_weights(), rng))
    return model


#: (case, model, convert's streaming flag, [(backend, target), ...])
BOTH = [("tflm", "host"), ("native", "host"), ("native", "cortex-m4")]  # TFLM projects: host only
CASES = [(name, name, False, BOTH + ([("native", "arduino"), ("native", "zephyr")]
                                     if name in ("lstm1", "gru_reset_after") else []))
         for name in ("lstm1", "lstm2", "gru_reset_after", "gru_reset_before", "rnn_tanh", "rnn_relu",
                      "bidi_concat", "bidi_sum", "per_step", "lstm_gru")]
CASES += [("lstm1_streaming", "lstm1", True, [("tflm", "host")]),
          ("gru_streaming", "gru_reset_after", True, [("tflm", "host")])]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    """(calibration, test) inputs, seeded."""
    rng = np.random.default_rng(12)
    calib = (rng.standard_normal((N_CALIB, T, F)) * 1.5).astype(np.float32)
    test = (rng.standard_normal((N_TEST, T, F)) * 1.5).astype(np.float32)
    return calib, test


def build_hashes(tmp: Path) -> dict[str, dict[str, str]]:
    """{case: {"model.tflite": sha256, "<backend>-<target>/<file>": sha256, ...}}."""
    import edgernn
    from edgernn.backends.tflm.arena import min_arena_bytes

    calib, test = _inputs()
    test_npz = tmp / "test.npz"
    np.savez(test_npz, x=test, y=np.arange(N_TEST) % 2)
    out: dict[str, dict[str, str]] = {}
    for case, model, streaming, _ in CASES:
        tfl = tmp / case / "model.tflite"
        edgernn.convert(_model(model), calib=calib, output=tfl, streaming=streaming)
        out[case] = {"model.tflite": _sha(tfl.read_bytes())}
    # emit measures each model's exact TFLM arena (a bisection with one child process per probe):
    # measure them all at once, the probes of several models side by side (cached per process)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(min_arena_bytes, [(tmp / case / "model.tflite").read_bytes() for case, *_ in CASES]))
    for case, model, streaming, emits in CASES:
        tfl, hashes = tmp / case / "model.tflite", out[case]
        for backend, target in emits:
            d = tmp / case / f"{backend}-{target}"
            edgernn.emit(tfl, d, backend=backend, target=target, test_data=test_npz, samples=N_TEST, name="golden")
            for f in sorted(p for p in d.rglob("*") if p.is_file()):
                data = f.read_bytes().replace(str(tmp).encode(), b"<TMP>")
                hashes[f"{backend}-{target}/{f.relative_to(d).as_posix()}"] = _sha(data)
    return out


@pytest.fixture(scope="module")
def hashes(tmp_path_factory):
    return build_hashes(tmp_path_factory.mktemp("golden"))


def test_outputs_equal_the_recording(hashes, request):
    if request.config.getoption("--record-golden"):
        GOLDEN.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
        return
    want = json.loads(GOLDEN.read_text())
    assert sorted(hashes) == sorted(want), "the golden cases changed; re-record (see this file's docstring)"
    changed = [f"{case}/{f}" for case in want for f in sorted(set(want[case]) | set(hashes[case]))
               if want[case].get(f) != hashes[case].get(f)]
    assert not changed, f"{len(changed)} output files differ from the recording: {changed[:12]}"


#: converts one golden case in a child process and prints the .tflite's sha256
_CONVERT_ONE = """
import hashlib, sys, tempfile, pathlib
sys.path.insert(0, sys.argv[1])
import edgernn, test_golden as g
out = pathlib.Path(tempfile.mkdtemp()) / "m.tflite"
edgernn.convert(g._model(sys.argv[2]), calib=g._inputs()[0], output=out)
print(hashlib.sha256(out.read_bytes()).hexdigest())
"""


@pytest.mark.parametrize("case", ["gru_reset_after", "bidi_sum"])
def test_bytes_do_not_depend_on_the_cpu(hashes, case, tmp_path):
    """The same model converts to the same bytes on any x86 machine: here with numpy's SIMD
    loops above SSE3 switched off and OpenBLAS on its Nehalem kernels (calibration's float32
    matmul and exp/tanh round differently per CPU; edgernn sums in float64)."""
    import os
    import subprocess
    import sys

    from numpy._core import _multiarray_umath as umath

    extra = [f for f, on in umath.__cpu_features__.items() if on and f not in umath.__cpu_baseline__]
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(extra), OPENBLAS_CORETYPE="Nehalem",
               TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run([sys.executable, "-c", _CONVERT_ONE, str(Path(__file__).parent), case], env=env,
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-1] == hashes[case]["model.tflite"], f"{case}: other bytes with SIMD code {extra} off"
