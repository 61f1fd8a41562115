"""emit --backend tflm: arrays equal the flatbuffer, exact ops, arena + margin, valid C++."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import edgernn
from edgernn import tflite_model
from edgernn.backends.tflm.emit import RESOLVER_METHODS
from edgernn.backends.tflm.runtime import TFLMRunner
from edgernn.errors import EdgeRNNError

from conftest import load_npz

TFLM_API = Path(__file__).parent / "fixtures" / "tflm_api"


@pytest.fixture(scope="module")
def tflm_dir(tmp_path_factory, lstm_tflite, bm_data):
    out = tmp_path_factory.mktemp("emit") / "fw"
    edgernn.emit(lstm_tflite, out, backend="tflm", test_data=bm_data[1], samples=4, name="motion")
    return out


def _c_bytes(text: str, array: str) -> bytes:
    body = re.search(array + r"\[\] = \{(.*?)\};", text, re.S).group(1)
    return bytes(int(v, 16) for v in re.findall(r"0x[0-9a-f]{2}", body))


def test_array_bytes_equal_flatbuffer(tflm_dir, lstm_tflite):
    cc = (tflm_dir / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_motion_model_data[]" in cc
    assert _c_bytes(cc, "g_motion_model_data") == lstm_tflite.read_bytes()
    assert f"g_motion_model_data_len = {lstm_tflite.stat().st_size};" in cc


def test_arena_constants_cover_the_runtime_minimum(tflm_dir, lstm_tflite):
    """The 64-bit branch of model_data.h is at least the bisected minimum of tflite_micro.runtime."""
    h = (tflm_dir / "model_data.h").read_text()
    minimum = edgernn.inspect(lstm_tflite).arena_bytes
    host_min, device_min = (int(v) for v in re.findall(r"kMotionArenaMinBytes = (\d+);", h))
    host, device = (int(v) for v in re.findall(r"kMotionArenaBytes = (\d+);", h))
    assert minimum <= host_min < host and device_min < host_min and device_min < device


def test_resolver_registers_exactly_the_models_ops(tflm_dir, lstm_tflite):
    main = (tflm_dir / "main.cc").read_text()
    calls = re.findall(r"resolver\.(Add\w+)\(\)", main)
    want = sorted(RESOLVER_METHODS[op] for op in tflite_model.read(lstm_tflite).op_counts)
    assert sorted(calls) == want and len(set(calls)) == len(calls)
    assert "MicroMutableOpResolver<kNumOps>" in main and f"kNumOps = {len(want)};" in main


def test_selftest_vectors_are_tflm_outputs(tflm_dir, lstm_tflite, bm_data):
    text = (tflm_dir / "selftest_data.h").read_text()
    x, _ = load_npz(bm_data[1])
    runner = TFLMRunner(lstm_tflite.read_bytes())
    want = runner.run(runner.quantize_input(x[:4]))
    body = re.search(r"g_motion_vector_outputs\[4\]\[4\] = \{(.*?)\};", text, re.S).group(1)
    got = np.array([int(v) for v in re.findall(r"-?\d+", body)]).reshape(4, 4)
    np.testing.assert_array_equal(got, want)
    assert "kMotionNumVectors = 4;" in text


def test_harness_compiles_against_tflm_api(tflm_dir, tmp_path):
    """The generated C++ is well-formed and calls only methods TFLM's API has."""
    gxx = shutil.which("g++")
    assert gxx, "g++ is installed by scripts/setup.sh"
    for src in ("main.cc", "model_data.cc"):
        proc = subprocess.run([gxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                               f"-I{TFLM_API}", f"-I{tflm_dir}", str(tflm_dir / src)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_every_resolver_method_exists_in_tflm_api():
    header = (TFLM_API / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    for method in RESOLVER_METHODS.values():
        assert f"TfLiteStatus {method}();" in header, method


def _make(fw, *args, tflm=None):
    cmd = ["make", "-s", "-C", str(fw), *args] + ([f"TFLM_DIR={tflm}"] if tflm else [])
    return subprocess.run(cmd, capture_output=True, text=True)


def test_makefile_links_the_library_built_for_its_target(tflm_dir, tmp_path):
    """A TFLM tree with host, Cortex-M and CMSIS-NN builds: the host reference one is linked;
    none or several matching is a clear error; `make clean` needs no TFLM_DIR."""
    tree = tmp_path / "tflite-micro"
    for gen in ("cortex_m_generic_cortex-m4_default_gcc", "cortex_m_generic_cortex-m4+fp_default_cmsis_nn_gcc",
                "linux_x86_64_default_gcc", "linux_x86_64_default_cmsis_nn_gcc"):
        (tree / "gen" / gen / "lib").mkdir(parents=True)
        (tree / "gen" / gen / "lib" / "libtensorflow-microlite.a").write_bytes(b"!<arch>\n")
    host = ["TARGET=linux", "TARGET_ARCH=x86_64"]
    r = _make(tflm_dir, "which-lib", *host, tflm=tree)
    assert r.returncode == 0 and r.stdout.strip().endswith("gen/linux_x86_64_default_gcc/lib/libtensorflow-microlite.a")
    r = _make(tflm_dir, "which-lib", *host, "OPTIMIZED_KERNEL_DIR=cmsis_nn", tflm=tree)
    assert r.stdout.strip().endswith("gen/linux_x86_64_default_cmsis_nn_gcc/lib/libtensorflow-microlite.a")
    r = _make(tflm_dir, "which-lib", "TARGET=cortex_m_generic", "TARGET_ARCH=cortex-m4+fp", tflm=tree)
    assert r.returncode != 0 and "no libtensorflow-microlite.a for TARGET=cortex_m_generic" in r.stderr
    (tree / "gen" / "linux_x86_64_default" / "lib").mkdir(parents=True)  # an older tree's layout as well
    (tree / "gen" / "linux_x86_64_default" / "lib" / "libtensorflow-microlite.a").write_bytes(b"!<arch>\n")
    r = _make(tflm_dir, "which-lib", *host, tflm=tree)
    assert r.returncode != 0 and "several TFLM libraries match" in r.stderr and "TFLM_LIB=" in r.stderr
    r = _make(tflm_dir, "-n", *host, f"TFLM_LIB={tree}/gen/linux_x86_64_default/lib/libtensorflow-microlite.a",
              tflm=tree)
    assert r.returncode == 0 and f"-isystem {tree} " in r.stdout and "-Werror" in r.stdout
    assert "gen/linux_x86_64_default/lib/libtensorflow-microlite.a" in r.stdout
    r = _make(tflm_dir, "motion_selftest")
    assert r.returncode != 0 and "TFLM_DIR is not set" in r.stderr
    assert _make(tflm_dir, "clean").returncode == 0


def test_makefile_and_readme(tflm_dir):
    mk = (tflm_dir / "Makefile").read_text()
    assert "TFLM_DIR" in mk and "TFLM_DIR is not set" in mk and "OPTIMIZED_KERNEL_DIR ?= \n" in mk
    readme = (tflm_dir / "README.md").read_text()
    assert "Reset()" in readme and "UNIDIRECTIONAL_SEQUENCE_LSTM" in readme


def test_failed_emit_leaves_no_directory(tmp_path, lstm_tflite):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((2, 100, 3), np.float32))
    out = tmp_path / "fw"
    with pytest.raises(EdgeRNNError, match="3 features"):
        edgernn.emit(lstm_tflite, out, test_data=bad)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.npz"]  # no temporary left either


def test_refuses_to_overwrite_foreign_directory(tmp_path, lstm_tflite):
    out = tmp_path / "src"
    out.mkdir()
    (out / "main.c").write_text("int main(void){return 0;}\n")
    with pytest.raises(EdgeRNNError, match="not written by edgernn"):
        edgernn.emit(lstm_tflite, out)
    assert (out / "main.c").exists()


def test_bad_c_name(tmp_path, lstm_tflite):
    with pytest.raises(EdgeRNNError, match="C identifier"):
        edgernn.emit(lstm_tflite, tmp_path / "fw", name="3d-model")


def test_gru_while_graph_harness(tmp_path, zoo):
    """A GRU (edgernn's WHILE graph) gets a harness registering its ops, and it compiles."""
    from conftest import Spec
    tfl = zoo.tflite(Spec(cell="gru", dataset="digits", units=16, epochs=20))
    out = tmp_path / "fw"
    edgernn.emit(tfl, out, backend="tflm", test_data=zoo.data("digits")[1], samples=2)
    ops = tflite_model.read(tfl).op_counts
    assert "WHILE" in ops
    calls = re.findall(r"resolver\.(Add\w+)\(\)", (out / "main.cc").read_text())
    assert sorted(calls) == sorted(RESOLVER_METHODS[op] for op in ops)
    proc = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", f"-I{TFLM_API}",
                           f"-I{out}", str(out / "main.cc")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
