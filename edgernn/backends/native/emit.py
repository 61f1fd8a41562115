"""Write the native C99 sources for an int8 .tflite.

``emit_native(tflite, out_dir, name)`` writes ``NAME.h`` / ``NAME.c`` (rendered from the Jinja2
templates in ``firmware_templates/native/``) and copies the hand-written kernels
``edgernn_kernels.h`` / ``edgernn_kernels.c`` next to them. The generated code needs nothing
but a C99 compiler.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path


from ..._version import __version__
from ...errors import EdgeRNNError, UnsupportedLayerError
from ...paths import TEMPLATES_DIR
from ...tflite_model import TFLiteModel, read
from ..codegen import c_identifier, render
from .fastlstm import KERNELS, kernel_for_target
from .fastloop import apply_fast_loops
from .fcinput8 import fold_input_casts
from .program import build_graph_model
from .loop_model import build_loop_model
from .lstm import build_lstm_model
from .plan import NativePlan
from .tables import activation_tables

TEMPLATE_DIR = TEMPLATES_DIR / "native"
KERNEL_FILES = ("edgernn_kernels.h", "edgernn_kernels.c", "edgernn_fast.h", "edgernn_pairs.h", "edgernn_rows.h",
                "edgernn_fc16w.h", "edgernn_mve_fc.h")
TENSOR_KERNEL_FILES = ("edgernn_tensor.h", "edgernn_tensor.c", "edgernn_mve_conv.h")  # models with tensor ops only
MVE_LOOP_FILES = ("edgernn_mve_ew.h",)  # loop steps with Helium elementwise runs (fastloop_mve.py) only


def _context(plan: NativePlan, name: str) -> dict:
    return dict(plan=plan, name=name, macro=name.upper(), guard=f"{name.upper()}_H", version=__version__)


def build_plan(m: TFLiteModel, kernel: str = "reference") -> NativePlan:
    """The plan of ``m``: a chain of recurrent layers and a head is read by :mod:`.loop` (WHILE-loop
    models: GRU, SimpleRNN, Bidirectional, mixed stacks; their steps made fast by :mod:`.fastloop`
    unless ``kernel`` is "reference") or :mod:`.lstm` (fused LSTMs, their layers on ``kernel``);
    any other graph of supported ops (convolutional front-ends, pooling heads, foreign .tflite
    files) by :mod:`.program`. A damaged file gives one :class:`EdgeRNNError`."""
    try:
        try:
            if "WHILE" not in m.op_counts:
                return build_lstm_model(m, kernel)
            plan = build_loop_model(m)
        except UnsupportedLayerError:
            return build_graph_model(m, kernel)
        apply_fast_loops(plan, kernel)
        fold_input_casts(plan)
        _drop_unused_loop_scratch(plan)
        return plan
    except EdgeRNNError:
        raise
    except (IndexError, KeyError, TypeError, AttributeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        # an operator the reader accepted but no TFLite writer makes (wrong tensor types or
        # counts, missing options, zero scales)
        raise EdgeRNNError(f"{m.path}: the native backend cannot read this model ({type(exc).__name__}: {exc}); "
                           "the file is damaged or was not written by `edgernn convert`") from None


def _drop_unused_loop_scratch(plan: NativePlan) -> None:
    """Leave out the loop steps' shared int16 pool when no generated line reads it (fused gate
    kernels keep every intermediate of an int8 SimpleRNN step in registers): the model is rendered
    once and the pool counted as used unless its declaration and the size check are the only
    lines naming it. Saves its RAM and clang's -Wunneeded-internal-declaration."""
    if not plan.loop_scratch:
        return
    text = render("native/model.c.j2", filters={"cexpr": lambda expr: str(expr).replace("$", "m_")},
                  **_context(plan, "m"))
    if len(re.findall(r"\bm_scratch\b", text)) <= 2:
        plan.loop_scratch_unused = True


def resolve_kernel(target: str = "host", kernel: str | None = None) -> str:
    """The LSTM kernel of a build: ``kernel`` when given, else the target's default."""
    if kernel is None:
        return kernel_for_target(target)
    if kernel not in KERNELS:
        raise EdgeRNNError(f"kernel {kernel!r}: use one of {', '.join(KERNELS)}")
    return kernel


def load_plan(tflite, kernel: str = "reference") -> NativePlan:
    m = tflite if isinstance(tflite, TFLiteModel) else read(tflite)
    return build_plan(m, kernel)


def emit_native(tflite_path, out_dir, name: str = "model", *, harness: bool = False, target: str = "host",
                kernel: str | None = None) -> list[Path]:
    """Generate ``NAME.h``, ``NAME.c`` and the kernel sources in ``out_dir``; return their paths.

    ``target`` picks the LSTM kernels' layout (:data:`.fastlstm.TARGET_KERNELS`), ``kernel``
    overrides it (``reference``, ``pairs``, ``rows``): every layout compiles and gives the same
    bits on any C99 compiler, the target only decides which one is fast there.
    ``harness=True`` also writes ``host_harness.c``, the stdin/stdout driver used by
    :func:`edgernn.backends.native.host.run_native`.
    """
    ident = c_identifier(name)
    if ident != name:
        raise EdgeRNNError(f"--name {name!r}: not a C identifier; try --name {ident}")
    if ident.lower().startswith("edgernn"):
        raise EdgeRNNError(f"--name {name!r}: the prefix 'edgernn' is reserved for the kernels; pick another name")
    plan = load_plan(tflite_path, resolve_kernel(target, kernel))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise EdgeRNNError(f"{out}: exists and is not a directory; pass a directory to -o")
    out.mkdir(parents=True, exist_ok=True)
    filters = {"cexpr": lambda expr: str(expr).replace("$", f"{name}_")}
    ctx = _context(plan, name)
    written = []
    for template, filename in (("model.h.j2", f"{name}.h"), ("model.c.j2", f"{name}.c")) + \
            ((("host_harness.c.j2", "host_harness.c"),) if harness else ()):
        path = out / filename
        path.write_text(render(f"native/{template}", filters=filters, **ctx), encoding="utf-8")
        written.append(path)
    mve = any(layer.fast.mve for layer in plan.fast_loops)
    for filename in KERNEL_FILES + (TENSOR_KERNEL_FILES if plan.graph is not None else ()) + (MVE_LOOP_FILES if mve else ()):
        shutil.copyfile(TEMPLATE_DIR / filename, out / filename)
        written.append(out / filename)
    tables = out / "edgernn_tables.c"
    tables.write_text(render("native/edgernn_tables.c.j2", version=__version__, tables=activation_tables()),
                      encoding="utf-8")
    written.append(tables)
    return written
