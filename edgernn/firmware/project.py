"""Write a buildable firmware project around a model's C sources, with embedded self-test vectors.

A project is a directory with a manifest (``edgernn_project.json``) saying what it holds, so that
:func:`edgernn.firmware.run_project` can build and run it later without being told again:

* ``host``: ``Makefile`` (gcc, ``-std=c99 -Wall -Wextra -Werror -pedantic``), ``src/``, ``model/``;
* ``cortex-m0plus``, ``cortex-m3``, ``cortex-m4``, ``cortex-m7``, ``cortex-m33``, ``cortex-m55``:
  the same for ``arm-none-eabi-gcc`` plus ``src/startup.c`` and the board's linker script, for
  the QEMU board of :mod:`.boards` (``firmware_templates/cortex-m/``); output through
  semihosting;
* ``arduino``: a library (``library.properties``, ``src/`` with the model, an example sketch
  ``examples/<name>_selftest/`` with the self-test);
* ``zephyr``: an application (``CMakeLists.txt``, ``prj.conf``, ``src/main.c``, ``model/``).

Templates live in ``firmware_templates/<target>/`` and ``firmware_templates/selftest/`` (the
self-test harness every target shares).
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .._version import __version__
from ..backends.codegen import c_array, c_identifier, render
from ..errors import EdgeRNNError
from ..paths import TEMPLATES_DIR
from .boards import BOARDS

CORTEX_M = tuple(BOARDS)  # the targets built with arm-none-eabi-gcc and run in QEMU
TARGETS = ("host", *CORTEX_M, "arduino", "zephyr")
BACKENDS = ("native", "tflm")
MANIFEST = "edgernn_project.json"
VECTORS_NPZ = "edgernn_vectors.npz"
MANIFEST_FORMAT = 1

# QEMU -icount shift: the virtual clock advances 2**shift ns per instruction. With a 25 MHz
# SysTick (40 ns a tick), shift 6 gives 1.6 ticks per instruction: exact counts (boards.py).
ICOUNT_SHIFT = 6

_SELFTEST_FILES = ("edgernn_platform.h", "edgernn_selftest.h", "edgernn_selftest.c", "edgernn_vectors.h",
                   "edgernn_vectors.c")


@dataclass
class Project:
    """A written project: where it is and what :func:`run_project` needs to know about it."""

    dir: Path
    target: str
    backend: str
    name: str
    files: list[Path] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)

    @classmethod
    def load(cls, project_dir) -> "Project":
        """Read ``DIR/edgernn_project.json`` (or recognise a TFLM project the lead's emit wrote)."""
        d = Path(project_dir).absolute()  # results stay valid when the working directory changes
        if not d.is_dir():
            raise EdgeRNNError(f"{d}: not a directory; pass the directory `edgernn emit` wrote")
        mpath = d / MANIFEST
        if mpath.exists():
            try:
                m = json.loads(mpath.read_text())
            except json.JSONDecodeError as e:
                raise EdgeRNNError(f"{mpath}: not valid JSON ({e}); re-run `edgernn emit`") from None
            if m.get("format") != MANIFEST_FORMAT:
                raise EdgeRNNError(f"{mpath}: format {m.get('format')!r}, this edgernn reads format "
                                   f"{MANIFEST_FORMAT}; re-run `edgernn emit`")
            return cls(dir=d, target=m["target"], backend=m["backend"], name=m["name"], manifest=m)
        guessed = _guess_tflm_project(d)
        if guessed is not None:
            return guessed
        raise EdgeRNNError(f"{d}: no {MANIFEST} and no TFLM Makefile; pass a directory `edgernn emit` wrote")

    @property
    def binary(self) -> Path:
        return self.dir / self.manifest["binary"]

    def expected_outputs(self) -> np.ndarray | None:
        """The (K, outputs) int8 outputs expected (TFLM's, from ``edgernn emit``), if the project recorded them."""
        p = self.dir / self.manifest.get("vectors_file", VECTORS_NPZ)
        if not p.exists():
            return None
        with np.load(p, allow_pickle=False) as z:
            return z["y"]


def _guess_tflm_project(d: Path) -> Project | None:
    """A TFLM project written by ``edgernn.backends.tflm.emit`` without a manifest (host build)."""
    mk = d / "Makefile"
    if not ((d / "model_data.cc").exists() and mk.exists() and "TFLM_DIR" in mk.read_text()):
        return None
    m = re.search(r"^(\w+)_selftest:", mk.read_text(), re.M)
    name = m.group(1) if m else "model"
    manifest = dict(format=MANIFEST_FORMAT, target="host", backend="tflm", name=name, binary=f"{name}_selftest",
                    weight_symbols=[f"g_{name}_model_data"])
    return Project(dir=d, target="host", backend="tflm", name=name, manifest=manifest)


@dataclass(frozen=True)
class ModelHeader:
    """What the self-test reads from the native backend's ``NAME.h``."""

    prefix: str  # the macros' prefix: PREFIX_TIMESTEPS, ...
    timesteps: int
    features: int
    outputs: int


def read_model_header(path: Path, name: str) -> ModelHeader:
    """Find ``<PREFIX>_TIMESTEPS``/``_FEATURES``/``_OUTPUTS`` and the step/run/reset API in ``path``."""
    text = path.read_text()
    for fn in ("reset", "step", "run"):
        if not re.search(rf"\b{re.escape(name)}_{fn}\s*\(", text):
            raise EdgeRNNError(f"{path}: does not declare {name}_{fn}(); the self-test needs the native API "
                               f"{name}_reset/_step/_run (is --name {name!r} the name the model was emitted with?)")
    values = {}
    prefix = None
    for key in ("TIMESTEPS", "FEATURES", "OUTPUTS"):
        m = None
        for cand in (name.upper(), name):
            m = re.search(rf"^\s*#\s*define\s+({re.escape(cand)})_{key}\s+\(?\s*(\d+)[uU]?\s*\)?", text, re.M)
            if m:
                break
        if not m:
            raise EdgeRNNError(f"{path}: no `#define {name.upper()}_{key} <n>`; the self-test needs the model's "
                               "TIMESTEPS, FEATURES and OUTPUTS macros")
        prefix = m.group(1)
        values[key] = int(m.group(2))
    return ModelHeader(prefix=prefix, timesteps=values["TIMESTEPS"], features=values["FEATURES"],
                       outputs=values["OUTPUTS"])


def _check_vectors(x, y, header: ModelHeader | None, header_path) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype != np.int8 or y.dtype != np.int8:
        raise EdgeRNNError(f"self-test vectors are {x.dtype}/{y.dtype}; pass int8 inputs and int8 expected outputs "
                           "(quantize with the model's input scale and zero point)")
    if x.ndim < 2 or len(x) < 1 or len(x) != len(y):
        raise EdgeRNNError(f"self-test vectors: inputs {x.shape} and outputs {y.shape} must be (K, T, F) and "
                           "(K, outputs) with the same K >= 1")
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    if header is not None:
        want_x = header.timesteps * header.features
        if x.shape[1] != want_x or y.shape[1] != header.outputs:
            raise EdgeRNNError(f"self-test vectors: {x.shape[1]} inputs and {y.shape[1]} outputs per vector, but "
                               f"{header_path} has {header.timesteps}x{header.features} inputs and "
                               f"{header.outputs} outputs; pass vectors shaped (K, {header.timesteps}, "
                               f"{header.features}) and (K, {header.outputs})")
    return x, y


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)
    return dst


def write_project(out_dir, *, target: str, name: str, vectors_x_int8, vectors_y_int8,
                  model_sources: Sequence, backend: str = "native", source: str = "",
                  max_flash: int | None = None, max_ram: int | None = None,
                  stack_bytes: int | None = None, heap_bytes: int | None = None, opt: str = "-O2") -> Project:
    """Write a firmware project for ``target`` into ``out_dir`` (created if needed) and return it.

    ``model_sources``: the backend's files; for ``native`` the ``NAME.h``/``NAME.c`` that
    ``emit_native`` wrote plus its kernel sources (``.c``/``.h``), for ``tflm`` the files
    ``edgernn.backends.tflm.emit`` wrote (copied as they are; host target only).
    ``vectors_x_int8``: (K, T, F) int8 inputs; ``vectors_y_int8``: (K, outputs) int8 outputs the
    reference computed (``edgernn emit`` records the TFLM interpreter's; edgernn's simulator is
    bit-exact with it). ``max_flash``/``max_ram`` (bytes) are recorded and enforced by
    :func:`run_project`. ``stack_bytes``/``heap_bytes`` size the Cortex-M linker script (default:
    the board's, 8 KiB + 4 KiB, 4 KiB + 2 KiB on the 16 KiB micro:bit).
    """
    if target not in TARGETS:
        raise EdgeRNNError(f"--target {target!r}: use one of {', '.join(TARGETS)}")
    if backend not in BACKENDS:
        raise EdgeRNNError(f"--backend {backend!r}: use one of {', '.join(BACKENDS)}")
    name = c_identifier(name)
    board = BOARDS.get(target, BOARDS["cortex-m4"])  # arduino/zephyr projects are sized as a Cortex-M4F build
    stack_bytes = board.stack_bytes if stack_bytes is None else stack_bytes
    heap_bytes = board.heap_bytes if heap_bytes is None else heap_bytes
    for label, value in (("--max-flash", max_flash), ("--max-ram", max_ram)):
        if value is not None and int(value) <= 0:
            raise EdgeRNNError(f"{label} {value}: must be a positive number of bytes")
    for label, value, least in (("stack_bytes", stack_bytes, 512), ("heap_bytes", heap_bytes, 0)):
        if int(value) < least or int(value) % 8:
            raise EdgeRNNError(f"{label}={value}: must be a multiple of 8 bytes, at least {least} "
                               "(the Cortex-M stack pointer is 8-byte aligned)")
    srcs = [Path(p) for p in model_sources]
    missing = [str(p) for p in srcs if not p.is_file()]
    if missing or not srcs:
        raise EdgeRNNError(f"model_sources: {', '.join(missing) or 'empty'}: need the files the backend wrote")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    budgets = {"max_flash": max_flash, "max_ram": max_ram}
    if backend == "tflm":
        return _write_tflm(out, target, name, srcs, vectors_x_int8, vectors_y_int8, budgets)

    header_path = next((p for p in srcs if p.name == f"{name}.h"), None)
    if header_path is None:
        raise EdgeRNNError(f"model_sources: no {name}.h among {', '.join(p.name for p in srcs)}; pass the files "
                           f"emit_native wrote for name {name!r}")
    header = read_model_header(header_path, name)
    x, y = _check_vectors(vectors_x_int8, vectors_y_int8, header, header_path)

    model_dir = {"arduino": "src"}.get(target, "model")
    app_dir = f"examples/{name}_selftest" if target == "arduino" else "src"
    files: list[Path] = [_copy(p, out / model_dir / p.name) for p in srcs]
    model_c = [f"{model_dir}/{p.name}" for p in srcs if p.suffix == ".c"]
    binary = f"build/{name}_selftest" if target == "host" else f"build/{name}_selftest.elf" if target in CORTEX_M else ""
    ctx = dict(name=name, version=__version__, source=source or name, backend=backend, target=target,
               P=header.prefix, header=header_path.name, count=len(x), timesteps=header.timesteps,
               features=header.features, outputs=header.outputs, model_c=model_c, binary=binary, opt=opt,
               stack_bytes=int(stack_bytes), heap_bytes=int(heap_bytes), icount_shift=ICOUNT_SHIFT, board=board,
               xs=[textwrap.indent(c_array(v, per_line=header.features * max(1, 24 // header.features)), " " * 8)
                   for v in x],
               ys=[c_array(v, per_line=max(len(v), 1)) for v in y])

    for fname in _SELFTEST_FILES:
        files.append(_render_to(out / app_dir / fname, f"selftest/{fname}.j2", ctx))
    tname = "cortex-m" if target in CORTEX_M else target
    tdir = TEMPLATES_DIR / tname
    for tpl in sorted(tdir.rglob("*.j2")):
        rel = tpl.relative_to(tdir).as_posix()[:-len(".j2")].replace("__name__", name)
        dest = out / (board.linker_script if rel == "board.ld" else rel)
        if (target == "host" or target in CORTEX_M) and rel in ("main.c", "startup.c"):
            dest = out / "src" / rel
        files.append(_render_to(dest, f"{tname}/{tpl.relative_to(tdir).as_posix()}", ctx))

    np.savez(out / VECTORS_NPZ, x=x, y=y)
    model_stem = header_path.stem
    manifest = dict(
        format=MANIFEST_FORMAT, generator=f"edgernn {__version__}", source=ctx["source"], target=target,
        backend=backend, name=name, macro_prefix=header.prefix, timesteps=header.timesteps,
        features=header.features, outputs=header.outputs, vectors=len(x), vectors_file=VECTORS_NPZ,
        binary=binary, model_sources=[f"{model_dir}/{p.name}" for p in srcs],
        # Size report: const data defined in NAME.c are the weights; everything else the model
        # sources define (code, state, kernel tables) counts as kernels.
        weight_sources=[f"{model_dir}/{model_stem}.c"], kernel_sources=model_c,
        stack_bytes=int(stack_bytes), heap_bytes=int(heap_bytes), icount_shift=ICOUNT_SHIFT,
        **({"qemu_machine": board.machine, "clock_hz": board.clock_hz} if target in CORTEX_M else {}), **budgets)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    files.append(out / MANIFEST)
    return Project(dir=out, target=target, backend=backend, name=name, files=files, manifest=manifest)


def _render_to(dest: Path, template: str, ctx: dict) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(render(template, **ctx))
    return dest


def _write_tflm(out: Path, target: str, name: str, srcs: list[Path], x, y, budgets: dict) -> Project:
    if target != "host":
        raise EdgeRNNError(f"--target {target} with --backend tflm: edgernn builds TFLM projects for the host only; "
                           "use --backend native for the Cortex-M targets, arduino and zephyr")
    files = [_copy(p, out / p.name) for p in srcs]
    if not (out / "Makefile").exists():
        raise EdgeRNNError(f"model_sources: no Makefile among {', '.join(p.name for p in srcs)}; pass every file "
                           "edgernn.backends.tflm.emit wrote")
    x, y = _check_vectors(x, y, None, None)
    np.savez(out / VECTORS_NPZ, x=x, y=y)
    manifest = dict(format=MANIFEST_FORMAT, generator=f"edgernn {__version__}", target=target, backend="tflm",
                    name=name, vectors=len(x), vectors_file=VECTORS_NPZ, binary=f"{name}_selftest",
                    weight_symbols=[f"g_{name}_model_data"], model_sources=[p.name for p in srcs], **budgets)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    files.append(out / MANIFEST)
    return Project(dir=out, target=target, backend="tflm", name=name, files=files, manifest=manifest)
