"""edgernn.firmware on a stand-in model with the native backend's API (tests/fixtures/movavg).

Layout and errors of every target, then the host and Cortex-M4 (QEMU) builds: self-test vectors,
mismatch detection, size report against arm-none-eabi-size, budgets, build errors, time-outs,
instruction counting. The same checks on real emitted LSTM/GRU models are in test_firmware_native.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgernn.errors import EdgeRNNError
from edgernn.firmware import (FirmwareBuildError, FirmwareTimeoutError, Project, build_project, measure_project,
                              parse_output, run_project, size_report, write_project)
from edgernn.firmware.project import ICOUNT_SHIFT

MOVAVG = Path(__file__).parent / "fixtures" / "movavg"
SOURCES = [MOVAVG / f for f in ("movavg.h", "movavg.c", "movavg_kernel.h", "movavg_kernel.c")]
T, F = 8, 3
GAIN = np.array([3, -2, 5], np.int64)  # movavg_gain in movavg.c
QEMU_SYSTICK_HZ = 25_000_000  # mps2-an386 processor clock


def movavg_outputs(x: np.ndarray) -> np.ndarray:
    """Python twin of movavg_run(): sat8(trunc(sum_t x * gain / (4 T)))."""
    acc = (x.astype(np.int64) * GAIN).sum(axis=1)
    q = np.sign(acc) * (np.abs(acc) // (4 * x.shape[1]))
    return np.clip(q, -128, 127).astype(np.int8)


def vectors(k: int = 5, seed: int = 0):
    x = np.random.default_rng(seed).integers(-128, 128, size=(k, T, F)).astype(np.int8)
    return x, movavg_outputs(x)


def project(tmp_path, target, **kw):
    x, y = kw.pop("vectors", vectors())
    return write_project(tmp_path / target, target=target, name="movavg", vectors_x_int8=x, vectors_y_int8=y,
                         model_sources=kw.pop("sources", SOURCES), source="movavg fixture", **kw)


# ---------------------------------------------------------------- layout and input errors (fast)

def test_host_and_cortex_m4_layout_and_manifest(tmp_path):
    for target in ("host", "cortex-m4"):
        p = project(tmp_path, target, max_flash=100_000)
        d = p.dir
        for rel in ("Makefile", "README.md", "src/main.c", "src/edgernn_selftest.c", "src/edgernn_vectors.c",
                    "model/movavg.h", "model/movavg.c", "model/movavg_kernel.c"):
            assert (d / rel).is_file(), rel
        m = json.loads((d / "edgernn_project.json").read_text())
        assert m["target"] == target and m["backend"] == "native" and m["name"] == "movavg"
        assert (m["timesteps"], m["features"], m["outputs"], m["vectors"]) == (T, F, F, 5)
        assert m["macro_prefix"] == "MOVAVG" and m["max_flash"] == 100_000 and m["max_ram"] is None
        assert Project.load(d).binary.name.startswith("movavg_selftest")
    mk = (tmp_path / "cortex-m4" / "Makefile").read_text()
    for flag in ("arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                 "--specs=rdimon.specs", "-nostartfiles", "mps2_an386.ld", "-Werror", "-pedantic"):
        assert flag in mk, flag
    startup = (tmp_path / "cortex-m4" / "src" / "startup.c").read_text()
    for part in ("__data_load__", "__bss_start__", "SCB_CPACR", "initialise_monitor_handles()", "0x18u"):
        assert part in startup, part
    host_mk = (tmp_path / "host" / "Makefile").read_text()
    assert "CC = gcc" in host_mk and "-std=c99" in host_mk and "-Wall -Wextra -Werror -pedantic" in host_mk


def test_every_cortex_m_board_has_its_memory_map_flags_and_clock(tmp_path):
    from edgernn.firmware.boards import BOARDS

    for target, board in BOARDS.items():
        d = project(tmp_path, target).dir
        ld = (d / board.linker_script).read_text()
        assert f"ORIGIN = 0x{board.flash_origin:08x}" in ld and f"ORIGIN = 0x{board.ram_origin:08x}" in ld
        assert f"LENGTH = {board.ram_bytes // 1024}K" in ld and f"STACK_SIZE = {board.stack_bytes};" in ld
        mk = (d / "Makefile").read_text()
        assert " ".join(board.cpu_flags) in mk and f"-M {board.machine}" in mk and board.linker_script in mk
        assert f"#define EDGERNN_CPU_HZ {board.clock_hz}u" in (d / "src" / "main.c").read_text()
        m = json.loads((d / "edgernn_project.json").read_text())
        assert (m["qemu_machine"], m["clock_hz"]) == (board.machine, board.clock_hz)
    # the micro:bit's 16 KiB of RAM: a smaller stack and heap by default
    assert BOARDS["cortex-m0plus"].stack_bytes + BOARDS["cortex-m0plus"].heap_bytes <= 8192


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m3", "cortex-m7", "cortex-m33", "cortex-m55"])
def test_each_cortex_m_board_runs_in_qemu_and_counts_instructions(tmp_path, target):
    """The self-test passes on each board, and SysTick under -icount runs at the clock boards.py
    gives (the calibration loop agrees with it to 1e-3, so instruction counts are exact)."""
    r = run_project(project(tmp_path, target).dir, timeout=120)
    assert r.passed, "\n".join(r.summary_lines())
    _, info = parse_output(r.output)
    cal, clock = info["calibration"], info["clock"]
    measured = (cal["ticks"] - cal["empty_ticks"]) / cal["instructions"]
    assert measured == pytest.approx(2 ** ICOUNT_SHIFT * clock["hz"] / 1e9, rel=1e-3)
    assert r.perf.unit == "instructions" and 0 < r.perf.per_inference < 20_000
    assert r.command[r.command.index("-M") + 1] == json.loads((r.project.dir / "edgernn_project.json").read_text())[
        "qemu_machine"]


def test_vectors_are_embedded_exactly(tmp_path):
    x, y = vectors(3, seed=7)
    p = project(tmp_path, "host", vectors=(x, y))
    text = re.sub(r"/\*.*?\*/", "", (p.dir / "src" / "edgernn_vectors.c").read_text(), flags=re.S)
    body_x, body_y = (part.split("= {", 1)[1] for part in text.split("const int8_t edgernn_vector_y")[:2])
    assert [int(v) for v in re.findall(r"-?\d+", body_x)] == x.reshape(-1).tolist()
    assert [int(v) for v in re.findall(r"-?\d+", body_y)] == y.reshape(-1).tolist()
    assert "#define EDGERNN_VECTOR_COUNT 3" in (p.dir / "src" / "edgernn_vectors.h").read_text()


@pytest.mark.parametrize("x_shape,y_shape,match", [
    ((2, T, F + 1), (2, F), r"3 outputs per vector.*8x3 inputs"),
    ((2, T, F), (2, F + 2), r"8x3 inputs and 3 outputs"),
    ((2, T, F), (3, F), r"same K"),
], ids=["features", "outputs", "count"])
def test_vector_shape_errors_name_both_shapes(tmp_path, x_shape, y_shape, match):
    with pytest.raises(EdgeRNNError, match=match):
        project(tmp_path, "host", vectors=(np.zeros(x_shape, np.int8), np.zeros(y_shape, np.int8)))


def test_input_errors(tmp_path):
    x, y = vectors(2)
    with pytest.raises(EdgeRNNError, match="--target 'esp32'.*host, cortex-m0plus, cortex-m3, cortex-m4, cortex-m7, "
                                           "cortex-m33, cortex-m55, arduino, zephyr"):
        project(tmp_path, "esp32")
    with pytest.raises(EdgeRNNError, match="int8"):
        project(tmp_path, "host", vectors=(x.astype(np.float32), y))
    with pytest.raises(EdgeRNNError, match="no other.h"):
        write_project(tmp_path / "o", target="host", name="other", vectors_x_int8=x, vectors_y_int8=y,
                      model_sources=SOURCES)
    with pytest.raises(EdgeRNNError, match="--max-ram -1"):
        project(tmp_path, "host", max_ram=-1)
    with pytest.raises(EdgeRNNError, match="stack_bytes=1001: must be a multiple of 8"):
        project(tmp_path, "cortex-m4", stack_bytes=1001)
    with pytest.raises(EdgeRNNError, match="no edgernn_project.json"):
        run_project(tmp_path)


def test_parse_output_reads_vectors_perf_and_checks_expected():
    text = ("noise\nEDGERNN_CLOCK counter=systick hz=25000000\n"
            "EDGERNN_VEC 0 PASS y=1,-2,3 run_ticks=10 stream_ticks=12 step_max_ticks=2\n"
            "EDGERNN_VEC 1 FAIL y=4,5,6 stream=4,5,7 rc=-1 run_ticks=11 stream_ticks=13 step_max_ticks=3\n"
            "EDGERNN_PERF overhead_ticks=3 runs=2 run_ticks=21 steps=16 stream_ticks=25 step_max_ticks=3\n"
            "EDGERNN_RESULT FAIL passed=1/2\n")
    expected = np.array([[1, -2, 3], [4, 5, 6]], np.int8)
    vecs, info = parse_output(text, expected)
    assert [v.passed for v in vecs] == [True, False] and vecs[1].rc == -1
    assert vecs[0].y.dtype == np.int8 and vecs[0].y.tolist() == [1, -2, 3] and vecs[0].matches
    assert vecs[1].y_stream.tolist() == [4, 5, 7] and vecs[1].matches is False  # the stream output differs
    assert info["result"] == "FAIL" and info["perf"]["run_ticks"] == 21 and info["clock"]["hz"] == 25_000_000
    assert vecs[0].ticks == {"run_ticks": 10, "stream_ticks": 12, "step_max_ticks": 2}


def test_tflm_project_needs_tflm_dir(tmp_path, monkeypatch):
    d = tmp_path / "tflm"
    d.mkdir()
    (d / "model_data.cc").write_text("// model\n")
    (d / "Makefile").write_text("ifndef TFLM_DIR\n$(error TFLM_DIR)\nendif\nmotion_selftest: main.cc\n")
    p = Project.load(d)
    assert (p.backend, p.target, p.name) == ("tflm", "host", "motion")
    monkeypatch.delenv("TFLM_DIR", raising=False)
    with pytest.raises(EdgeRNNError, match=r"TFLM_DIR pointing at a tflite-micro source tree \(TFLM_DIR=unset\)"):
        run_project(d)
    monkeypatch.setenv("TFLM_DIR", str(tmp_path))  # not a TFLM tree
    with pytest.raises(EdgeRNNError, match="TFLM_DIR"):
        build_project(d)
    # The same files through write_project: a manifest with the vectors, same TFLM_DIR check.
    x, y = vectors(2)
    files = [d / "model_data.cc", d / "Makefile"]
    p = write_project(tmp_path / "tflm2", target="host", backend="tflm", name="motion", vectors_x_int8=x,
                      vectors_y_int8=y, model_sources=files)
    assert p.manifest["binary"] == "motion_selftest" and np.array_equal(p.expected_outputs(), y)
    assert (tmp_path / "tflm2" / "Makefile").read_text() == files[1].read_text()
    with pytest.raises(EdgeRNNError, match="TFLM_DIR"):
        run_project(p.dir)
    with pytest.raises(EdgeRNNError, match="--target cortex-m4 with --backend tflm"):
        write_project(tmp_path / "tflm3", target="cortex-m4", backend="tflm", name="motion", vectors_x_int8=x,
                      vectors_y_int8=y, model_sources=files)


# ---------------------------------------------------------------- arduino and zephyr

ARDUINO_STUB = """#pragma once
#include <stdint.h>
struct SerialStub { void begin(unsigned long) {} void print(const char *) {} explicit operator bool() const { return true; } };
extern SerialStub Serial;
unsigned long micros(void);
"""
ZEPHYR_KERNEL_STUB = """#pragma once
#include <stdint.h>
uint32_t k_cycle_get_32(void);
uint32_t sys_clock_hw_cycles_per_sec(void);
"""
ZEPHYR_PRINTK_STUB = "#pragma once\nvoid printk(const char *fmt, ...);\n"
ARM = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Wall", "-Wextra", "-Werror"]


def _compile(cmd, cwd):
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_arduino_library_structure_and_sources_compile(tmp_path):
    p = project(tmp_path, "arduino")
    d = p.dir
    props = dict(l.split("=", 1) for l in (d / "library.properties").read_text().splitlines() if "=" in l)
    assert props["name"] == "movavg" and props["includes"] == "movavg.h" and props["architectures"] == "*"
    assert sorted(f.name for f in (d / "src").iterdir()) == sorted(s.name for s in SOURCES)
    ex = d / "examples" / "movavg_selftest"
    ino = (ex / "movavg_selftest.ino").read_text()
    assert "#include <movavg.h>" in ino and "edgernn_selftest_run()" in ino and "Serial.begin" in ino
    with pytest.raises(EdgeRNNError, match="runs on a board: build it with arduino-cli"):
        run_project(d)
    # The C sources as the Arduino core would build them for a Cortex-M4 board, and the sketch
    # as C++ against a stub Arduino.h.
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "Arduino.h").write_text(ARDUINO_STUB)
    for c in [*sorted((d / "src").glob("*.c")), *sorted(ex.glob("*.c"))]:
        _compile(["arm-none-eabi-gcc", *ARM, "-std=c99", "-pedantic", f"-I{d / 'src'}", f"-I{ex}", "-c", str(c),
                  "-o", str(tmp_path / (c.stem + ".o"))], d)
    _compile(["arm-none-eabi-g++", *ARM, "-x", "c++", f"-I{stub}", f"-I{d / 'src'}", f"-I{ex}", "-c",
              str(ex / "movavg_selftest.ino"), "-o", str(tmp_path / "ino.o")], d)


@pytest.mark.slow
def test_zephyr_application_structure_and_sources_compile(tmp_path):
    p = project(tmp_path, "zephyr")
    d = p.dir
    cmake = (d / "CMakeLists.txt").read_text()
    assert "find_package(Zephyr REQUIRED" in cmake and "project(movavg_selftest" in cmake
    listed = set(re.findall(r"^\s+(\S+\.c)$", cmake, re.M))
    assert listed == {"src/main.c", "src/edgernn_selftest.c", "src/edgernn_vectors.c", "model/movavg.c",
                      "model/movavg_kernel.c"}
    assert all((d / f).is_file() for f in listed)
    assert "CONFIG_PRINTK=y" in (d / "prj.conf").read_text()
    main = (d / "src" / "main.c").read_text()
    assert "#include <zephyr/kernel.h>" in main and "edgernn_selftest_run()" in main
    with pytest.raises(EdgeRNNError, match="runs on a board: build it with west"):
        run_project(d)
    stub = tmp_path / "stub" / "zephyr"
    (stub / "sys").mkdir(parents=True)
    (stub / "kernel.h").write_text(ZEPHYR_KERNEL_STUB)
    (stub / "sys" / "printk.h").write_text(ZEPHYR_PRINTK_STUB)
    for c in sorted(listed):
        _compile(["arm-none-eabi-gcc", *ARM, "-std=c99", "-pedantic", f"-I{stub.parent}", "-Isrc", "-Imodel", "-c",
                  c, "-o", str(tmp_path / (Path(c).stem + ".o"))], d)


def _shim(bin_dir: Path, tool: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / tool
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["arduino", "zephyr"])
def test_vendor_tools_build_arduino_and_zephyr_projects_when_installed(tmp_path, monkeypatch, m4_result, target):
    """arduino-cli / west stand-ins record their arguments and put an ELF where the real tools do."""
    p = project(tmp_path, target)
    monkeypatch.setenv("PATH", str(tmp_path / "nobin"))  # neither tool installed
    monkeypatch.delenv("ZEPHYR_BASE", raising=False)
    tool = "arduino-cli" if target == "arduino" else "west"
    want = ("arduino-cli on PATH.*`arduino-cli compile --fqbn arduino:mbed_nano:nano33ble --library "
            if target == "arduino" else r"west on PATH and ZEPHYR_BASE set.*`west build -b qemu_cortex_m3 ")
    with pytest.raises(EdgeRNNError, match=want):
        build_project(p.dir)
    bin_dir = tmp_path / "bin"
    elf = (p.dir / "build" / ("movavg_selftest.ino.elf" if target == "arduino" else "zephyr/zephyr.elf"))
    _shim(bin_dir, tool, f'echo "$@" > {tmp_path}/args\nmkdir -p {elf.parent}\ncp {m4_result.sizes.elf} {elf}\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("ZEPHYR_BASE", str(tmp_path))
    binary, _ = build_project(p.dir)
    args = (tmp_path / "args").read_text().split()
    if target == "arduino":
        assert args == ["compile", "--fqbn", "arduino:mbed_nano:nano33ble", "--library", str(p.dir), "--output-dir",
                        str(p.dir / "build"), str(p.dir / "examples" / "movavg_selftest")]
    else:
        assert args == ["build", "-b", "qemu_cortex_m3", "-d", str(p.dir / "build"), str(p.dir)]
    assert binary == elf and size_report(binary).flash == m4_result.sizes.flash
    _shim(bin_dir, tool, 'echo "sketch.ino:3:1: error: expected declaration" >&2\nexit 1\n')
    with pytest.raises(FirmwareBuildError, match="build failed: sketch.ino:3:1: error: expected declaration"):
        build_project(p.dir)


# ---------------------------------------------------------------- host and Cortex-M4 runs

@pytest.fixture(scope="module")
def m4_result(tmp_path_factory):
    root = tmp_path_factory.mktemp("m4")
    project(root, "cortex-m4")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # a relative project path, as `edgernn firmware run fw/` passes it
        return run_project("cortex-m4", timeout=60)


@pytest.mark.slow
def test_host_self_test_passes_every_vector(tmp_path):
    x, y = vectors(6, seed=1)
    p = project(tmp_path, "host", vectors=(x, y))
    r = run_project(p.dir, timeout=30)
    assert r.passed and r.device_passed and len(r.vectors) == 6
    assert np.array_equal(r.outputs, y) and r.outputs.dtype == np.int8
    assert all(v.matches for v in r.vectors)
    assert "gcc" in r.build_log and "-std=c99" in r.build_log
    assert r.sizes.flash > 0 and r.sizes.flash_parts["weights"] == F  # movavg_gain: F int8


@pytest.mark.slow
def test_cortex_m4_in_qemu_passes_every_vector(m4_result):
    r = m4_result
    assert r.passed and r.device_passed and r.failed_vectors == []
    assert np.array_equal(r.outputs, vectors()[1])
    assert r.command[0] == "qemu-system-arm" and "mps2-an386" in r.command
    assert "arm-none-eabi-gcc" in r.build_log


@pytest.mark.slow
def test_cortex_m4_counts_instructions(m4_result):
    r = m4_result
    _, info = parse_output(r.output)
    cal = info["calibration"]
    # With -icount shift=S every instruction advances QEMU's clock by 2**S ns and SysTick ticks
    # at 25 MHz: the calibration loop must show exactly that ratio.
    ticks_per_insn = (cal["ticks"] - cal["empty_ticks"]) / cal["instructions"]
    assert ticks_per_insn == pytest.approx(2 ** ICOUNT_SHIFT * QEMU_SYSTICK_HZ / 1e9, rel=1e-3)
    perf = r.perf
    assert perf.unit == "instructions" and perf.runs == 5 and perf.steps == 5 * T
    # movavg_step does F multiply-adds and F divisions: tens of instructions, not thousands.
    assert 20 < perf.per_step < 400 and perf.step_max >= perf.per_step
    # A whole run is T steps plus a reset: about T times a step.
    assert T * perf.per_step * 0.6 < perf.per_inference < T * perf.per_step * 1.6
    assert any("instructions per inference" in l for l in r.summary_lines())


def _arm_size(elf: Path) -> dict:
    """Berkeley totals and the section sizes (-A) of arm-none-eabi-size."""
    run = lambda *a: subprocess.run(["arm-none-eabi-size", *a, str(elf)], capture_output=True, text=True,  # noqa: E731
                                    check=True).stdout
    text, data, bss = (int(v) for v in run().splitlines()[1].split()[:3])
    sections = {line.split()[0]: int(line.split()[1]) for line in run("-A").splitlines()[2:]
                if line.startswith(".")}
    return dict(text=text, data=data, bss=bss, sections=sections)


@pytest.mark.slow
def test_size_report_equals_arm_none_eabi_size_and_ram_is_measured(m4_result):
    """text/data/bss are arm-none-eabi-size's to the byte; RAM is data + bss without the .stack and
    .heap reserves (-A's section sizes) + the stack peak and heap use the device measured."""
    s = m4_result.sizes
    ref = _arm_size(s.elf)
    assert (s.text, s.data, s.bss) == (ref["text"], ref["data"], ref["bss"])
    assert s.flash == ref["text"] + ref["data"] and s.ram_reserved == ref["data"] + ref["bss"]
    m = m4_result.project.manifest
    assert (s.stack_reserved, s.heap_reserved) == (ref["sections"][".stack"], ref["sections"][".heap"])
    assert (s.stack_reserved, s.heap_reserved) == (m["stack_bytes"], m["heap_bytes"])
    assert s.measured and s.ram == ref["data"] + ref["bss"] - s.stack_reserved - s.heap_reserved + s.stack_peak \
        + s.heap_used
    # The self-test's calls (selftest, model, newlib's printing) use a few hundred bytes of the 8 KiB;
    # newlib's stdio takes its buffers from the heap.
    assert 128 < s.stack_peak < 2048 and 0 < s.heap_used <= s.heap_reserved
    assert s.ram < s.ram_reserved
    assert s.flash_parts["weights"] == F  # const int8_t movavg_gain[F]
    assert s.ram_parts["kernels"] == 4 * F + 4  # movavg_acc (int32 x F) + movavg_steps
    assert (s.ram_parts["stack"], s.ram_parts["heap"]) == (s.stack_peak, s.heap_used)
    assert s.flash_parts["kernels"] > 0 and s.flash_parts["rest"] > 0
    assert sum(s.flash_parts.values()) == s.flash and sum(s.ram_parts.values()) == s.ram
    lines = m4_result.summary_lines()
    assert any(f"RAM {s.ram} bytes used" in l and f"stack peak {s.stack_peak}" in l and "reserved: stack 8192, heap 4096"
               in l for l in lines), lines
    d = m4_result.to_dict()["sizes"]
    assert (d["ram"], d["stack_peak"], d["stack_reserved"], d["heap_used"]) == (s.ram, s.stack_peak, 8192, s.heap_used)
    # the same numbers straight from the ELF, without a run: the reserves count in full
    again = size_report(s.elf)
    assert (again.flash, again.ram) == (s.flash, s.ram_reserved) and again.flash_parts["weights"] == 0
    assert not again.measured and again.ram_parts["stack"] == 8192


@pytest.mark.slow
def test_stack_peak_grows_by_a_local_array_the_model_touches(tmp_path, m4_result):
    """The painted stack catches what the model puts on it: a 2 KiB local array in movavg_run
    raises the measured peak by at least 2 KiB, and by not much more."""
    deep = tmp_path / "deep"
    deep.mkdir()
    sources = []
    for src in SOURCES:
        text = src.read_text()
        if src.name == "movavg.c":
            old = "int movavg_run(const int8_t *x, int T, int8_t *y) {\n    int t;\n"
            assert old in text
            text = text.replace(old, old + "    volatile uint8_t deep[2048];\n    size_t k;\n"
                                "    for (k = 0; k < sizeof deep; ++k) {\n        deep[k] = (uint8_t)k;\n    }\n")
            text = "#include <stddef.h>\n" + text
        (deep / src.name).write_text(text)
        sources.append(deep / src.name)
    r = run_project(project(tmp_path, "cortex-m4", sources=sources).dir, timeout=60)
    assert r.passed, "\n".join(r.summary_lines())
    base = m4_result.sizes.stack_peak
    assert r.sizes.stack_peak >= 2048 and 2048 <= r.sizes.stack_peak - base + 512
    assert r.sizes.stack_peak <= base + 2048 + 128
    assert r.sizes.ram - m4_result.sizes.ram == r.sizes.stack_peak - base  # the same image otherwise


@pytest.mark.slow
def test_stack_reserve_used_up_is_an_error(tmp_path):
    """A stack that reaches the bottom of its reserve may have overflowed: the run says so."""
    p = project(tmp_path, "cortex-m4", stack_bytes=512)
    with pytest.raises(EdgeRNNError, match=r"the stack used its whole 512-byte reserve.*stack_bytes"):
        run_project(p.dir, timeout=60)


@pytest.mark.slow
def test_budget_smaller_than_firmware_fails_with_both_numbers(m4_result):
    s = m4_result.sizes
    with pytest.raises(EdgeRNNError, match=rf"flash {s.flash} bytes > --max-flash 1000 bytes"):
        run_project(m4_result.project.dir, max_flash=1000)
    with pytest.raises(EdgeRNNError, match=rf"RAM {s.ram} bytes > --max-ram {s.ram - 1} bytes"):
        s.check_budget(max_flash=s.flash, max_ram=s.ram - 1)
    s.check_budget(max_flash=s.flash, max_ram=s.ram)  # exactly at the budget is fine


@pytest.mark.slow
def test_measure_project_sizes_arduino_as_a_cortex_m4_build(tmp_path, m4_result):
    p = project(tmp_path, "arduino")
    s = measure_project(p.dir)
    # Same model sources and vectors as the cortex-m4 project: the same image, not run: the
    # stack and heap reserves count in full.
    assert (s.flash, s.ram) == (m4_result.sizes.flash, m4_result.sizes.ram_reserved)
    assert s.flash_parts == m4_result.sizes.flash_parts and not s.measured
    with pytest.raises(EdgeRNNError, match=rf"movavg \(as a Cortex-M4F build\): over budget: RAM {s.ram} bytes "
                                           rf"> --max-ram 1024 bytes"):
        measure_project(p.dir, max_ram=1024)


@pytest.mark.slow
def test_firmware_build_verb_sizes_an_arduino_project_as_a_cortex_m4_build(tmp_path, m4_result, monkeypatch):
    """`edgernn firmware build`: the Cortex-M4F equivalent's sizes, arduino-cli named as not run."""
    from click.testing import CliRunner

    from edgernn.cli import main

    p = project(tmp_path, "arduino")
    monkeypatch.setenv("PATH", str(Path(shutil.which("arm-none-eabi-gcc")).parent))  # no arduino-cli
    r = CliRunner().invoke(main, ["firmware", "build", str(p.dir), "--json", str(tmp_path / "b.json")])
    assert r.exit_code == 0, r.output
    s = m4_result.sizes
    assert "compiled here as the equivalent Cortex-M4F build; arduino-cli not run" in r.output
    assert f"flash {s.flash} bytes" in r.output and f"RAM {s.ram_reserved} bytes at most" in r.output
    d = json.loads((tmp_path / "b.json").read_text())
    assert d["binary"] is None and d["sizes"]["flash"] == s.flash and d["sizes"]["stack_reserved"] == 8192


@pytest.mark.slow
def test_budget_recorded_by_write_project_is_enforced(tmp_path):
    p = project(tmp_path, "host", max_ram=64)
    with pytest.raises(EdgeRNNError, match=r"RAM \d+ bytes > --max-ram 64 bytes"):
        run_project(p.dir)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_mismatch_is_reported_not_hidden(tmp_path, target):
    x, y = vectors(3, seed=2)
    wrong = y.copy()
    wrong[1, 0] = wrong[1, 0] + 1 if wrong[1, 0] < 127 else 126
    p = project(tmp_path, target, vectors=(x, wrong))
    r = run_project(p.dir, timeout=60)
    assert not r.passed and not r.device_passed and r.failed_vectors == [1]
    assert np.array_equal(r.outputs, y)  # what the C computed, not what was expected
    assert r.summary_lines()[-1] == "RESULT FAIL 2/3 vectors"


@pytest.mark.slow
@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_broken_source_gives_the_compilers_message(tmp_path, target):
    broken = tmp_path / "src"
    broken.mkdir()
    for s in SOURCES:
        shutil.copy(s, broken / s.name)
    c = broken / "movavg_kernel.c"
    c.write_text(c.read_text().replace("acc[i] += (int32_t)x[i] * gain[i];", "acc[i] += undeclared_gain;"))
    p = project(tmp_path, target, sources=sorted(broken.iterdir()))
    with pytest.raises(FirmwareBuildError, match=r"movavg_kernel\.c:\d+:\d+: error: 'undeclared_gain' undeclared") as e:
        run_project(p.dir)
    assert "undeclared_gain" in e.value.log


@pytest.mark.slow
def test_hanging_firmware_times_out_in_qemu(tmp_path):
    hang = tmp_path / "src"
    hang.mkdir()
    for s in SOURCES:
        shutil.copy(s, hang / s.name)
    c = hang / "movavg.c"
    c.write_text(c.read_text().replace("    movavg_steps = 0;\n", "    movavg_steps = 0;\n    for (;;) {\n    }\n", 1))
    p = project(tmp_path, "cortex-m4", sources=sorted(hang.iterdir()))
    with pytest.raises(FirmwareTimeoutError, match=r"QEMU did not finish within 3 s \(last line: EDGERNN_CLOCK"):
        run_project(p.dir, timeout=3)


@pytest.mark.slow
def test_instruction_count_survives_systick_wraps(tmp_path, m4_result):
    """A run longer than SysTick's 24-bit range (2**24 ticks = 10.5 M instructions at 1.6 ticks each)."""
    loops = 8_000_000  # 2 instructions each (subs, bne): 16 M instructions, more than one wrap
    slow = tmp_path / "src"
    slow.mkdir()
    for s in SOURCES:
        shutil.copy(s, slow / s.name)
    c = slow / "movavg.c"
    busy = (f'    __asm__ volatile("mov r3, %0\\n1:\\n\\tsubs r3, r3, #1\\n\\tbne 1b" : : "r"({loops}u) : "r3", "cc");\n'
            "    movavg_reset();\n")
    c.write_text(c.read_text().replace("    movavg_reset();\n    for (t = 0;", busy + "    for (t = 0;", 1))
    r = run_project(project(tmp_path, "cortex-m4", sources=sorted(slow.iterdir())).dir, timeout=120)
    assert r.passed
    extra = r.perf.per_inference - m4_result.perf.per_inference
    assert extra == pytest.approx(2 * loops + 1, abs=8)  # the loop, plus mov, give or take a register move


@pytest.mark.slow
def test_broken_float_wrapper_fails_the_vector(tmp_path):
    bad = tmp_path / "src"
    bad.mkdir()
    for s in SOURCES:
        shutil.copy(s, bad / s.name)
    c = bad / "movavg.c"
    c.write_text(c.read_text().replace("y[i] = (yq[i] - MOVAVG_OUTPUT_ZERO_POINT) * MOVAVG_OUTPUT_SCALE;",
                                       "y[i] = (yq[i] - MOVAVG_OUTPUT_ZERO_POINT + 1) * MOVAVG_OUTPUT_SCALE;"))
    x, y = vectors(2)
    r = run_project(project(tmp_path, "host", vectors=(x, y), sources=sorted(bad.iterdir())).dir)
    assert not r.passed and r.failed_vectors == [0, 1]
    assert all(not v.float_api_ok and v.matches for v in r.vectors)  # int8 API still right
    assert "f32=FAIL" in r.output


@pytest.mark.slow
def test_firmware_larger_than_the_boards_ram_is_a_link_error(tmp_path):
    p = project(tmp_path, "cortex-m4", stack_bytes=5 * 1024 * 1024)  # mps2-an386 has 4 MiB of SSRAM2/3
    with pytest.raises(FirmwareBuildError, match=r"build failed: .*region `RAM' overflowed by \d+ bytes"):
        run_project(p.dir)


@pytest.mark.slow
def test_host_reports_time_per_inference(tmp_path):
    r = run_project(project(tmp_path, "host").dir)
    f = r.perf
    assert f.unit == "seconds" and f.counter == "monotonic_ns" and f.counter_hz == 1_000_000_000
    # movavg is a handful of operations per step: well under a millisecond, more than nothing.
    assert 0 < f.per_step < 1e-3 and 0 < f.per_inference < 1e-2
    assert any(l.startswith("host time per inference") for l in r.summary_lines())
