"""Compile the native C on the host and run it: validation, tests and benchmarks.

:func:`run_native` emits the model into a temporary directory, compiles it with a small
stdin/stdout harness (``gcc -std=c99 -O2 -Wall -Wextra -Werror``) and runs every sample
through ``NAME_run`` in one process. :class:`NativeBuild` keeps one build around for several
calls (``step`` mode, timing). :func:`object_sizes` compiles the model for a target
(e.g. ``arm-none-eabi-gcc``) and reads the section sizes of the object with pyelftools.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import EdgeRNNError
from .emit import emit_native, load_plan, resolve_kernel
from .plan import NativePlan

C_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")
CORTEX_M4_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
HARNESS_TIMEOUT_S = 600


def _compiler(cc: str) -> str:
    path = shutil.which(cc)
    if path is None:
        raise EdgeRNNError(f"C compiler '{cc}' not found on PATH; install it (e.g. apt-get install gcc) "
                           "to use the native engine")
    return path


def compile_c(cc: str, sources: list[Path], output: Path, flags=C_FLAGS, *, compile_only: bool = False) -> None:
    """Run the compiler; raise EdgeRNNError with its first error lines if it fails."""
    cmd = [_compiler(cc), *flags, *(["-c"] if compile_only else []), *map(str, sources), "-o", str(output)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(output.parent))
    if proc.returncode != 0 or not output.exists():
        lines = [l for l in (proc.stderr + proc.stdout).splitlines() if l.strip()]
        msg = " | ".join(lines[:4]) or f"exit status {proc.returncode}"
        raise EdgeRNNError(f"{cc} failed to compile the generated native C ({output.parent}): {msg[:600]}")


@dataclass
class NativeBuild:
    """The model emitted and compiled with the host harness in ``directory``."""

    directory: Path
    name: str
    plan: NativePlan
    executable: Path

    @classmethod
    def create(cls, tflite_path, directory, name: str = "model", cc: str = "gcc", *, target: str = "host",
               kernel: str | None = None, flags=C_FLAGS) -> NativeBuild:
        """Emit for ``target`` (or the LSTM ``kernel`` given) and compile with the host harness."""
        directory = Path(directory)
        files = emit_native(tflite_path, directory, name, harness=True, target=target, kernel=kernel)
        sources = [f for f in files if f.suffix == ".c"]
        exe = directory / "harness"
        compile_c(cc, sources, exe, flags)
        return cls(directory=directory, name=name, plan=load_plan(tflite_path, resolve_kernel(target, kernel)),
                   executable=exe)

    def _check_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.int8:
            raise EdgeRNNError(f"native engine: input dtype {x.dtype}; quantize to int8 with the model's "
                               f"input scale {self.plan.input_scale:g} and zero point {self.plan.input_zero_point}")
        if x.ndim == 2:
            x = x[None]
        if x.ndim > 3 and x.shape[0] >= 1 and x.shape[1] >= 1:  # (N, T, F, C...) images: rows of F x C values
            x = x.reshape(x.shape[0], x.shape[1], -1)
        if x.ndim != 3 or x.shape[2] != self.plan.features or x.shape[1] < 1 or x.shape[0] < 1:
            raise EdgeRNNError(f"native engine: input shape {x.shape}; expected (N, T, {self.plan.features})")
        return np.ascontiguousarray(x)

    def _exec(self, args: list[str], data: bytes) -> bytes:
        proc = subprocess.run([str(self.executable), *args], input=data, capture_output=True,
                              timeout=HARNESS_TIMEOUT_S)
        if proc.returncode != 0:
            raise EdgeRNNError(f"native harness '{' '.join(args)}' failed with status {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace').strip()[:300]}")
        return proc.stdout

    def run(self, x) -> np.ndarray:
        """``NAME_run`` on each sample: (N, STEP_OUTPUTS), or (N, T, STEP_OUTPUTS) for per-step models."""
        x = self._check_input(x)
        n, t, _ = x.shape
        out = np.frombuffer(self._exec(["run", str(n), str(t)], x.tobytes()), np.int8)
        k = self.plan.step_outputs
        graph = self.plan.graph
        if graph is not None and (not graph.streaming or t == self.plan.timesteps):
            shape = tuple(graph.output_shape)  # the model output's shape (without its batch of 1), as TFLM's
            return out.reshape((n,) + (shape[1:] if shape and shape[0] == 1 else shape))
        return out.reshape(n, k) if self.plan.last_step_only else out.reshape(n, t, k)

    def steps(self, x) -> np.ndarray:
        """``NAME_reset`` then ``NAME_step`` over each sample: every step's output, (N, T, STEP_OUTPUTS)."""
        x = self._check_input(x)
        n, t, _ = x.shape
        out = np.frombuffer(self._exec(["step", str(n), str(t)], x.tobytes()), np.int8)
        return out.reshape(n, t, self.plan.step_outputs)

    def run_f32(self, x) -> np.ndarray:
        """``NAME_run_f32`` on float32 samples."""
        x = np.ascontiguousarray(np.asarray(x, np.float32))
        if x.ndim != 3 or x.shape[2] != self.plan.features:
            raise EdgeRNNError(f"native engine: input shape {x.shape}; expected (N, T, {self.plan.features})")
        n, t, _ = x.shape
        out = np.frombuffer(self._exec(["f32", str(n), str(t)], x.tobytes()), np.float32)
        k = self.plan.step_outputs
        return out.reshape(n, k) if self.plan.last_step_only else out.reshape(n, t, k)

    def time_per_inference_ns(self, x, repeats: int = 100) -> float:
        """Mean CPU time (ns) of one ``NAME_run`` call, timed inside the harness over ``repeats`` passes
        (process CPU time, so other processes on the machine do not inflate it)."""
        x = self._check_input(x)
        n, t, _ = x.shape
        return float(self._exec(["bench", str(n), str(t), str(int(repeats))], x.tobytes()).decode().strip())


def run_native(tflite_path, x_int8, *, name: str = "model", cc: str = "gcc", kernel: str | None = None) -> np.ndarray:
    """Int8 outputs of the compiled native C for int8 inputs ``x_int8`` (N, T, F).

    Emits and compiles in a temporary directory; all N samples run in one process. Returns
    (N, outputs) (or (N, T, outputs) for models with an output per step).
    """
    with tempfile.TemporaryDirectory(prefix="edgernn-native-") as tmp:
        return NativeBuild.create(tflite_path, tmp, name=name, cc=cc, kernel=kernel).run(x_int8)


def section_sizes(obj: Path) -> dict[str, int]:
    """Bytes per allocated section family of an ELF object: text, rodata, data, bss."""
    from elftools.elf.elffile import ELFFile

    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    with open(obj, "rb") as fh:
        for sec in ELFFile(fh).iter_sections():
            name = sec.name
            for family in sizes:
                if name == f".{family}" or name.startswith(f".{family}."):
                    sizes[family] += int(sec["sh_size"])
    return sizes


def object_sizes(tflite_path, directory, *, name: str = "model", cc: str = "arm-none-eabi-gcc",
                 flags=(*C_FLAGS[:1], "-Os", *C_FLAGS[2:], *CORTEX_M4_FLAGS),
                 target: str = "cortex-m4") -> dict[str, dict[str, int]]:
    """Compile the model and kernels to objects with ``cc`` and return each one's section sizes."""
    directory = Path(directory)
    files = emit_native(tflite_path, directory, name, target=target)
    result = {}
    for src in (f for f in files if f.suffix == ".c"):
        obj = src.with_suffix(".o")
        compile_c(cc, [src], obj, flags, compile_only=True)
        result[src.name] = section_sizes(obj)
    return result


def undefined_symbols(obj: Path) -> set[str]:
    """Names the object needs from elsewhere (e.g. to check that no ``malloc`` is called)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    names = set()
    with open(obj, "rb") as fh:
        for sec in ELFFile(fh).iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym.name and sym["st_shndx"] == "SHN_UNDEF":
                        names.add(sym.name)
    return names


def tflite_with_timesteps(raw: bytes, timesteps: int) -> bytes:
    """The same int8 flatbuffer (same weights) for sequences of ``timesteps`` steps.

    Rewrites the time axis of every (1, T, ...) tensor of the main graph, which is all the
    fused UNIDIRECTIONAL_SEQUENCE_LSTM graphs need (their STRIDED_SLICE takes step -1).
    Used to compare the native C with TFLM at any T and by the T sweep of the benchmark.
    """
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(raw), 0)
    sg = model.subgraphs[0]
    old = int(sg.tensors[sg.inputs[0]].shape[1])
    for t in sg.tensors:
        for attr in ("shape", "shapeSignature"):
            shape = getattr(t, attr)
            if shape is not None and len(shape) == 3 and int(shape[0]) == 1 and int(shape[1]) == old:
                shape = [int(d) for d in shape]
                shape[1] = int(timesteps)
                setattr(t, attr, shape)
    builder = flatbuffers.Builder(len(raw) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
