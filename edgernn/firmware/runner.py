"""Build a written project, run it (natively or in QEMU), and read what the device printed.

The device speaks a line protocol (see ``firmware_templates/selftest/edgernn_selftest.c.j2``)::

    EDGERNN_CALIBRATION instructions=<n> ticks=<n> empty_ticks=<n>   (Cortex-M targets only)
    EDGERNN_CLOCK counter=<name> hz=<n>
    EDGERNN_VEC <k> PASS|FAIL y=<int8,...> [stream=<int8,...>] [rc=<n>] run_ticks=<n> ...
    EDGERNN_PERF overhead_ticks=<n> runs=<n> run_ticks=<n> steps=<n> stream_ticks=<n> step_max_ticks=<n>
    EDGERNN_RESULT PASS|FAIL passed=<n>/<k>
    EDGERNN_MEMORY stack_peak=<n> stack_size=<n> heap_used=<n> heap_size=<n>   (Cortex-M targets only)
    EDGERNN_FAULT <exception>                                         (the firmware crashed)

The TFLM harness prints the EDGERNN_VEC and EDGERNN_RESULT lines in the same form.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import EdgeRNNError
from .boards import BOARDS
from .project import CORTEX_M, ICOUNT_SHIFT, Project
from .sizes import SizeReport, size_report

_TOOLS = {"host": ("make", "gcc"), **{t: ("make", "arm-none-eabi-gcc", "qemu-system-arm") for t in CORTEX_M}}
_PACKAGES = {"make": "make", "gcc": "gcc", "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
             "qemu-system-arm": "qemu-system-arm"}


class FirmwareBuildError(EdgeRNNError):
    """The compiler or linker failed; ``log`` holds the whole build output."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


class FirmwareTimeoutError(EdgeRNNError):
    """The firmware did not finish in time; ``output`` holds what it printed so far."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


@dataclass
class VectorResult:
    index: int
    passed: bool  # the device's verdict (run and streaming outputs both equal the expected ones)
    y: np.ndarray  # int8 outputs the device computed for the whole sequence
    y_stream: np.ndarray | None = None  # streaming outputs, printed only when they differ from y
    expected: np.ndarray | None = None  # the recorded expected outputs (TFLM's, from edgernn emit)
    rc: int = 0
    float_api_ok: bool = True  # NAME_run_f32 gave the expected outputs within half a step
    ticks: dict = field(default_factory=dict)  # run_ticks, stream_ticks, step_max_ticks

    @property
    def matches(self) -> bool | None:
        """Whether the outputs equal the expected ones bit for bit, checked on this side too."""
        if self.expected is None:
            return None
        same = self.y.shape == self.expected.shape and bool(np.array_equal(self.y, self.expected))
        return same and (self.y_stream is None or bool(np.array_equal(self.y_stream, self.expected)))


@dataclass
class Perf:
    """Cost of one inference: instructions under QEMU -icount, or seconds on the host."""

    unit: str  # "instructions" or "seconds"
    per_inference: float  # NAME_run() over a whole sequence
    per_step: float  # NAME_step(), mean over every step of every vector
    step_max: float  # the slowest single NAME_step()
    runs: int
    steps: int
    counter: str
    counter_hz: int

    def to_dict(self) -> dict:
        return dict(unit=self.unit, per_inference=self.per_inference, per_step=self.per_step,
                    step_max=self.step_max, runs=self.runs, steps=self.steps, counter=self.counter,
                    counter_hz=self.counter_hz)


@dataclass
class FirmwareResult:
    project: Project
    passed: bool
    vectors: list[VectorResult]
    device_passed: bool  # the EDGERNN_RESULT line
    build_log: str
    output: str  # everything the device printed
    command: list[str]
    sizes: SizeReport | None = None
    perf: Perf | None = None

    @property
    def target(self) -> str:
        return self.project.target

    @property
    def backend(self) -> str:
        return self.project.backend

    @property
    def outputs(self) -> np.ndarray:
        """(K, outputs) int8: what the device computed for each self-test vector."""
        return np.stack([v.y for v in self.vectors]) if self.vectors else np.zeros((0, 0), np.int8)

    @property
    def failed_vectors(self) -> list[int]:
        return [v.index for v in self.vectors if not v.passed or v.matches is False]

    def summary_lines(self) -> list[str]:
        """Human-readable lines for `edgernn firmware run`."""
        p = self.project
        lines = [f"{p.dir}: {p.backend} backend, target {p.target}, model {p.name}"]
        for v in self.vectors:
            verdict = "PASS" if v.passed and v.matches is not False else "FAIL"
            extra = "" if v.expected is None or v.matches else f" expected={','.join(map(str, v.expected.tolist()))}"
            stream = "" if v.y_stream is None else f" stream={','.join(map(str, v.y_stream.tolist()))}"
            stream += "" if v.float_api_ok else " (float API differs)"
            lines.append(f"vector {v.index}: {verdict} y={','.join(map(str, v.y.tolist()))}{stream}{extra}")
        if self.sizes is not None:
            lines.extend(self.sizes.describe())
        if self.perf is not None:
            f = self.perf
            if f.unit == "instructions":
                lines.append(f"instructions per inference {f.per_inference:.0f}, per time step {f.per_step:.1f} "
                             f"(slowest step {f.step_max:.0f})")
            else:
                lines.append(f"host time per inference {f.per_inference * 1e6:.1f} us, per time step "
                             f"{f.per_step * 1e6:.2f} us ({f.counter})")
        good = len(self.vectors) - len(self.failed_vectors)
        lines.append(f"RESULT {'PASS' if self.passed else 'FAIL'} {good}/{len(self.vectors)} vectors")
        return lines

    def to_dict(self) -> dict:
        return dict(project=str(self.project.dir), target=self.project.target, backend=self.project.backend,
                    name=self.project.name, passed=self.passed, device_passed=self.device_passed,
                    vectors=[dict(index=v.index, passed=v.passed, matches=v.matches, y=v.y.tolist(),
                                  y_stream=None if v.y_stream is None else v.y_stream.tolist(), rc=v.rc,
                                  float_api_ok=v.float_api_ok,
                                  ticks=v.ticks) for v in self.vectors],
                    sizes=None if self.sizes is None else self.sizes.to_dict(),
                    perf=None if self.perf is None else self.perf.to_dict())


def _check_tools(target: str) -> None:
    for tool in _TOOLS.get(target, ()):
        if shutil.which(tool) is None:
            raise EdgeRNNError(f"{tool} not found on PATH: the {target} target needs it "
                               f"(Debian/Ubuntu: apt-get install {_PACKAGES[tool]}; or run scripts/setup.sh)")


def _compiler_errors(log: str) -> str:
    """The compiler's or linker's own words: its error lines, collect2's summary last."""
    lines = [l.strip() for l in log.splitlines()]
    errs = [l for l in lines if re.search(r"\b(error|undefined reference|overflowed|will not fit|multiple definition)\b", l)
            and not l.startswith(("collect2:", "make:", "make["))]
    if not errs:
        errs = [l for l in lines if l][-3:]
    return " | ".join(errs[:3])


ARDUINO_FQBN = "arduino:mbed_nano:nano33ble"  # a Cortex-M4F board; override with EDGERNN_ARDUINO_FQBN
ZEPHYR_BOARD = "qemu_cortex_m3"  # override with EDGERNN_ZEPHYR_BOARD


def vendor_tools_missing(project) -> str | None:
    """What an Arduino or Zephyr project's own build still needs here (None: the tools are installed)."""
    p = project if isinstance(project, Project) else Project.load(project)
    if p.target == "arduino":
        return None if shutil.which("arduino-cli") else "arduino-cli on PATH"
    if p.target == "zephyr":
        ready = shutil.which("west") is not None and bool(os.environ.get("ZEPHYR_BASE"))
        return None if ready else "west on PATH and ZEPHYR_BASE set (a Zephyr workspace)"
    return None


def _vendor_build(p: Project, timeout: float) -> tuple[Path, str]:
    """Arduino and Zephyr projects: compiled with arduino-cli / west when they are installed."""
    if p.target == "arduino":
        tool = shutil.which("arduino-cli")
        fqbn = os.environ.get("EDGERNN_ARDUINO_FQBN", ARDUINO_FQBN)
        sketch = p.dir / "examples" / f"{p.name}_selftest"
        cmd = [tool or "arduino-cli", "compile", "--fqbn", fqbn, "--library", str(p.dir), "--output-dir",
               str(p.dir / "build"), str(sketch)]
        binary = p.dir / "build" / f"{p.name}_selftest.ino.elf"
        ready = tool is not None
    else:
        tool = shutil.which("west")
        board = os.environ.get("EDGERNN_ZEPHYR_BOARD", ZEPHYR_BOARD)
        cmd = [tool or "west", "build", "-b", board, "-d", str(p.dir / "build"), str(p.dir)]
        binary = p.dir / "build" / "zephyr" / "zephyr.elf"
        ready = tool is not None and bool(os.environ.get("ZEPHYR_BASE"))
    if not ready:
        need = vendor_tools_missing(p)
        raise EdgeRNNError(f"{p.dir}: a {p.target} project is built with its own tools ({need}): "
                           f"`{' '.join(cmd)}`; use measure_project() for its Cortex-M4F flash/RAM")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, LC_ALL="C"))
    except subprocess.TimeoutExpired:
        raise EdgeRNNError(f"{p.dir}: `{' '.join(cmd)}` took longer than {timeout:.0f} s") from None
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise FirmwareBuildError(f"{p.dir}: build failed: {_compiler_errors(log)}", log)
    if not binary.is_file():
        raise FirmwareBuildError(f"{p.dir}: `{' '.join(cmd)}` succeeded but wrote no {binary.name}", log)
    return binary, log


def build_project(project: Project | str | os.PathLike, *, timeout: float = 600) -> tuple[Path, str]:
    """Build the project; return (the built binary, the build log).

    Host and Cortex-M projects (and TFLM projects, given ``TFLM_DIR``) through their Makefile;
    Arduino projects with ``arduino-cli compile`` and Zephyr projects with ``west build`` when
    those tools are installed (board from ``EDGERNN_ARDUINO_FQBN`` / ``EDGERNN_ZEPHYR_BOARD``).
    """
    p = project if isinstance(project, Project) else Project.load(project)
    if p.target in ("arduino", "zephyr"):
        return _vendor_build(p, timeout)
    cmd = ["make", "-C", str(p.dir)]
    env = dict(os.environ, LC_ALL="C")  # plain ASCII quotes in compiler messages
    if p.backend == "tflm":
        tflm = env.get("TFLM_DIR")
        if not tflm or not Path(tflm, "tensorflow", "lite", "micro").is_dir():
            raise EdgeRNNError(f"{p.dir}: a TFLM project needs TFLM_DIR pointing at a tflite-micro source tree "
                               f"(TFLM_DIR={tflm or 'unset'}); e.g. git clone https://github.com/tensorflow/"
                               "tflite-micro and export TFLM_DIR=$PWD/tflite-micro, or emit with --backend native")
        cmd.append(f"TFLM_DIR={tflm}")
    _check_tools(p.target)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise EdgeRNNError(f"{p.dir}: the build took longer than {timeout:.0f} s; "
                           "run `make` there to see where it stops") from None
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise FirmwareBuildError(f"{p.dir}: build failed: {_compiler_errors(log)}", log)
    binary = p.binary
    if not binary.is_file():
        raise FirmwareBuildError(f"{p.dir}: make succeeded but did not produce {binary.name}", log)
    return binary, log


def run_command(p: Project, binary: Path) -> list[str]:
    """The command that runs the built firmware."""
    if p.target in CORTEX_M:
        shift = int(p.manifest.get("icount_shift", ICOUNT_SHIFT))
        machine = p.manifest.get("qemu_machine", BOARDS[p.target].machine)
        return ["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
                "-semihosting-config", "enable=on,target=native",
                "-icount", f"shift={shift},align=off,sleep=off", "-kernel", str(binary.resolve())]
    return [str(binary.resolve())]


# Below this many counter ticks in total, host timings (clock() has microseconds at best) are noise.
_MIN_CLOCK_TICKS = 100
_KV = re.compile(r"(\w+)=(\S+)")


def _int8s(text: str) -> np.ndarray:
    return np.array([int(v) for v in text.split(",") if v != ""], dtype=np.int8)


def parse_output(text: str, expected: np.ndarray | None = None) -> tuple[list[VectorResult], dict]:
    """Parse the device's lines: (vectors, {'result':..., 'perf':..., 'clock':..., 'calibration':..., 'fault':...})."""
    vectors, info = [], {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("EDGERNN_VEC "):
            parts = line.split()
            if len(parts) < 3 or not parts[1].isdigit() or parts[2] not in ("PASS", "FAIL"):
                continue
            kv = dict(_KV.findall(line))
            k = int(parts[1])
            exp = expected[k] if expected is not None and k < len(expected) else None
            vectors.append(VectorResult(
                index=k, passed=parts[2] == "PASS", y=_int8s(kv.get("y", "")),
                y_stream=_int8s(kv["stream"]) if "stream" in kv else None, expected=exp, rc=int(kv.get("rc", 0)),
                float_api_ok=kv.get("f32", "PASS") != "FAIL",
                ticks={key: int(v) for key, v in kv.items() if key.endswith("ticks")}))
        elif line.startswith("EDGERNN_RESULT "):
            info["result"] = line.split()[1]
        elif line.startswith("EDGERNN_FAULT"):
            info["fault"] = line[len("EDGERNN_FAULT"):].strip() or "fault"
        else:
            for tag in ("PERF", "CLOCK", "CALIBRATION", "MEMORY"):
                if line.startswith(f"EDGERNN_{tag} ") or line == f"EDGERNN_{tag}":
                    info[tag.lower()] = {key: (int(v) if v.isdigit() else v) for key, v in _KV.findall(line)}
    return vectors, info


def _perf(target: str, info: dict, icount_shift: int = ICOUNT_SHIFT) -> Perf | None:
    perf, clock = info.get("perf"), info.get("clock", {})
    if not perf or not perf.get("runs") or not perf.get("steps"):
        return None
    if target in CORTEX_M and "calibration" in info:
        cal = info["calibration"]
        measured = (cal["ticks"] - cal["empty_ticks"]) / cal["instructions"]  # ticks per instruction
        # Under -icount shift=S an instruction lasts 2**S ns of virtual time and SysTick ticks at
        # the board's clock: the exact ratio, when the calibration loop confirms it (its own
        # edges make it a few ppm off); otherwise QEMU clocks SysTick differently: use the loop.
        exact = 2 ** icount_shift * clock.get("hz", 0) / 1e9
        per_insn = exact if exact and abs(measured / exact - 1) < 1e-3 else measured
        scale, unit = 1.0 / per_insn, "instructions"
    elif clock.get("hz") and perf["run_ticks"] >= _MIN_CLOCK_TICKS:
        scale, unit = 1.0 / clock["hz"], "seconds"
    else:
        return None
    per_inf = perf["run_ticks"] * scale / perf["runs"]
    return Perf(unit=unit, per_inference=round(per_inf) if unit == "instructions" else per_inf,
                per_step=perf["stream_ticks"] * scale / perf["steps"], step_max=perf["step_max_ticks"] * scale,
                runs=perf["runs"], steps=perf["steps"], counter=str(clock.get("counter", "")),
                counter_hz=int(clock.get("hz", 0)))


def _project_sizes(p: Project, binary: Path) -> SizeReport:
    m = p.manifest
    objects = sorted((p.dir / "build").rglob("*.o")) if (p.dir / "build").is_dir() else []
    return size_report(binary, weight_sources=m.get("weight_sources", ()), kernel_sources=m.get("kernel_sources", ()),
                       objects=objects, weight_symbols=m.get("weight_symbols", ()),
                       kernel_symbol_pattern=r"tflite" if p.backend == "tflm" else None)


def _measured(sizes: SizeReport, memory: dict | None, binary: Path) -> SizeReport:
    """The size report with the stack peak and heap use the device printed (EDGERNN_MEMORY)."""
    if not memory or not all(isinstance(memory.get(k), int) for k in ("stack_peak", "stack_size", "heap_used")):
        return sizes
    if memory["stack_size"] != sizes.stack_reserved:
        raise EdgeRNNError(f"{binary}: the device reports a {memory['stack_size']}-byte stack, the ELF's .stack "
                           f"section has {sizes.stack_reserved}; rebuild the project (make clean; make)")
    if memory["stack_peak"] >= memory["stack_size"]:
        raise EdgeRNNError(f"{binary}: the stack used its whole {memory['stack_size']}-byte reserve (the painted "
                           "bottom word was overwritten), so it may have overflowed into the heap; raise it "
                           "(write_project(stack_bytes=...)) and run again")
    return sizes.with_measurement(memory["stack_peak"], memory["heap_used"])


def measure_project(project_dir, *, max_flash: int | None = None, max_ram: int | None = None,
                    build_timeout: float = 600.0) -> SizeReport:
    """Build the project (without running it) and return its flash/RAM, checking the budgets.

    Host and Cortex-M projects are built as they are. Arduino and Zephyr projects are built
    with their tools elsewhere, so their model sources and vectors are built here as the
    equivalent cortex-m4 self-test (arm-none-eabi-gcc, Cortex-M4F) in a temporary directory:
    the numbers are those of a Cortex-M4F build of the same code. Budgets default to the ones
    recorded by ``write_project``; exceeding one raises :class:`EdgeRNNError` with both numbers.
    """
    import tempfile

    from .project import write_project

    p = Project.load(project_dir)
    budgets = (max_flash if max_flash is not None else p.manifest.get("max_flash"),
               max_ram if max_ram is not None else p.manifest.get("max_ram"))
    if p.target in ("arduino", "zephyr"):
        with np.load(p.dir / p.manifest["vectors_file"], allow_pickle=False) as z:
            x, y = z["x"], z["y"]
        with tempfile.TemporaryDirectory(prefix="edgernn-size-") as tmp:
            m4 = write_project(Path(tmp) / "m4", target="cortex-m4", backend=p.backend, name=p.name,
                               vectors_x_int8=x, vectors_y_int8=y,
                               model_sources=[p.dir / s for s in p.manifest["model_sources"]],
                               source=p.manifest.get("source", ""), stack_bytes=p.manifest.get("stack_bytes", 8192),
                               heap_bytes=p.manifest.get("heap_bytes", 4096))
            binary, _ = build_project(m4, timeout=build_timeout)
            sizes = _project_sizes(m4, binary)
            sizes.elf = p.dir / f"{p.name} (as a Cortex-M4F build)"
    else:
        binary, _ = build_project(p, timeout=build_timeout)
        sizes = _project_sizes(p, binary)
    sizes.check_budget(*budgets)
    return sizes


def run_project(project_dir, *, timeout: float = 120.0, build_timeout: float = 600.0,
                max_flash: int | None = None, max_ram: int | None = None) -> FirmwareResult:
    """Build the project in ``project_dir``, run its self-test, and return what it found.

    Builds with the project's Makefile (gcc for ``host``, arm-none-eabi-gcc for the Cortex-M targets,
    TFLM projects only when ``TFLM_DIR`` is set), runs the program (QEMU mps2-an386 with
    ``-icount`` on the target's board, :mod:`.boards`) for at most ``timeout`` seconds, parses its lines and checks
    the outputs against the expected ones recorded in the project (TFLM's, from ``edgernn emit``). ``max_flash`` /
    ``max_ram`` (bytes; default: the budgets given to ``write_project``) raise
    :class:`EdgeRNNError` with both numbers when exceeded. A mismatch does not raise: look at
    ``result.passed`` (the CLI exits non-zero on it).
    """
    p = Project.load(project_dir)
    if p.target in ("arduino", "zephyr"):
        raise EdgeRNNError(f"{p.dir}: a {p.target} project runs on a board: build it with "
                           f"{'arduino-cli' if p.target == 'arduino' else 'west'} (see its README.md) and read the "
                           "EDGERNN_ lines from its console; edgernn runs host and Cortex-M projects")
    binary, build_log = build_project(p, timeout=build_timeout)
    m = p.manifest
    sizes = _project_sizes(p, binary)
    sizes.check_budget(max_flash if max_flash is not None else m.get("max_flash"))  # RAM: after the run measured it

    cmd = run_command(p, binary)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              cwd=p.dir)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        last = out.strip().splitlines()[-1] if out.strip() else "nothing printed"
        where = "QEMU" if p.target in CORTEX_M else binary.name
        raise FirmwareTimeoutError(f"{p.dir}: {where} did not finish within {timeout:.0f} s (last line: {last}); "
                                   "the firmware hangs or needs a longer timeout", out) from None
    output = proc.stdout
    expected = p.expected_outputs()
    vectors, info = parse_output(output, expected)
    if "fault" in info:
        raise EdgeRNNError(f"{binary}: the firmware crashed ({info['fault']}) after {len(vectors)} vectors; "
                           "check the stack size (write_project(stack_bytes=...))")
    if "result" not in info:
        tail = " | ".join((output + proc.stderr).strip().splitlines()[-3:]) or "nothing printed"
        raise EdgeRNNError(f"{binary}: ended (exit status {proc.returncode}) without an EDGERNN_RESULT line; "
                           f"last output: {tail}")
    device_passed = info["result"] == "PASS"
    count = m.get("vectors", len(expected) if expected is not None else len(vectors))
    passed = (device_passed and len(vectors) == count and all(v.passed and v.matches is not False for v in vectors)
              and proc.returncode == 0)
    perf = _perf(p.target, info, int(m.get("icount_shift", ICOUNT_SHIFT)))
    sizes = _measured(sizes, info.get("memory"), binary)
    sizes.check_budget(max_ram=max_ram if max_ram is not None else m.get("max_ram"))
    return FirmwareResult(project=p, passed=passed, vectors=vectors, device_passed=device_passed,
                          build_log=build_log, output=output, command=cmd, sizes=sizes, perf=perf)
