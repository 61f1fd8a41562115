"""Write the native C99 sources for an int8 .tflite.

``emit_native(tflite, out_dir, name)`` writes ``NAME.h`` / ``NAME.c`` (rendered from the Jinja2
templates in ``firmware_templates/native/``) and copies the hand-written kernels
``edgernn_kernels.h`` / ``edgernn_kernels.c`` next to them. The generated code needs nothing
but a C99 compiler.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ... import __version__
from ...errors import EdgeRNNError
from ...paths import TEMPLATES_DIR
from ...tflite_model import TFLiteModel, read
from ..codegen import c_identifier
from .plan import NativePlan, build_plan

TEMPLATE_DIR = TEMPLATES_DIR / "native"
KERNEL_FILES = ("edgernn_kernels.h", "edgernn_kernels.c")


def c_float_literal(value: float) -> str:
    """A C float literal that round-trips the float32 value (always with a '.' or exponent).

    >>> c_float_literal(1.0)
    '1.0f'
    >>> c_float_literal(0.00390625)
    '0.00390625f'
    """
    text = f"{float(np.float32(value)):.9g}"
    if not any(ch in text for ch in ".en"):
        text += ".0"
    return text + "f"


def c_initializer(values: np.ndarray, indent: str = "    ", per_line: int = 16) -> str:
    """The body of a C array initializer, ``per_line`` values a line."""
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    lines = [indent + ", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n".join(lines)


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["cfloat"] = c_float_literal
    env.filters["carray"] = c_initializer
    return env


def _context(plan: NativePlan, name: str) -> dict:
    return dict(plan=plan, name=name, macro=name.upper(), guard=f"{name.upper()}_H", version=__version__)


def load_plan(tflite) -> NativePlan:
    m = tflite if isinstance(tflite, TFLiteModel) else read(tflite)
    return build_plan(m)


def emit_native(tflite_path, out_dir, name: str = "model", *, harness: bool = False) -> list[Path]:
    """Generate ``NAME.h``, ``NAME.c`` and the kernel sources in ``out_dir``; return their paths.

    ``harness=True`` also writes ``host_harness.c``, the stdin/stdout driver used by
    :func:`edgernn.backends.native.host.run_native`.
    """
    ident = c_identifier(name)
    if ident != name:
        raise EdgeRNNError(f"--name {name!r}: not a C identifier; try --name {ident}")
    if ident.lower().startswith("edgernn"):
        raise EdgeRNNError(f"--name {name!r}: the prefix 'edgernn' is reserved for the kernels; pick another name")
    plan = load_plan(tflite_path)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise EdgeRNNError(f"{out}: exists and is not a directory; pass a directory to -o")
    out.mkdir(parents=True, exist_ok=True)
    env = _env()
    env.filters["cexpr"] = lambda expr: str(expr).replace("$", f"{name}_")
    ctx = _context(plan, name)
    written = []
    for template, filename in (("model.h.j2", f"{name}.h"), ("model.c.j2", f"{name}.c")) + \
            ((("host_harness.c.j2", "host_harness.c"),) if harness else ()):
        path = out / filename
        path.write_text(env.get_template(template).render(**ctx), encoding="utf-8")
        written.append(path)
    for filename in KERNEL_FILES:
        shutil.copyfile(TEMPLATE_DIR / filename, out / filename)
        written.append(out / filename)
    return written
