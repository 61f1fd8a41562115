"""Firmware projects around a model's C sources: write, build, run, measure.

``write_project`` renders a buildable project for a target (host, the Cortex-M boards of
:mod:`.boards`, arduino, zephyr)
with embedded self-test vectors; ``run_project`` builds it (gcc or arm-none-eabi-gcc through
its Makefile), runs it (directly, or in QEMU's mps2-an386 for the Cortex-M4), parses what the
device printed and reports pass/fail per vector, flash/RAM and instructions per inference::

    from edgernn.backends.native import emit_native
    from edgernn.firmware import write_project, run_project

    sources = emit_native("model.tflite", "scratch/", "motion")
    write_project("fw/", target="cortex-m4", name="motion", model_sources=sources,
                  vectors_x_int8=x_q, vectors_y_int8=simulator_outputs, max_flash=64 * 1024)
    result = run_project("fw/", timeout=120)
    print("\\n".join(result.summary_lines()))      # per vector PASS/FAIL, flash/RAM, instructions
    result.passed, result.outputs, result.sizes.flash, result.perf.per_inference
    result.sizes.ram                               # data + bss + measured stack peak + heap used
    result.sizes.stack_peak, result.sizes.stack_reserved, result.sizes.heap_used, result.sizes.heap_reserved

``measure_project`` builds without running (Arduino and Zephyr projects as the equivalent
Cortex-M4F build, since their own tools are seldom installed): the stack and heap reserves then
count in full.
"""

from .project import BACKENDS, MANIFEST, TARGETS, Project, write_project
from .runner import (FirmwareBuildError, FirmwareResult, FirmwareTimeoutError, Perf, VectorResult, build_project,
                     measure_project, parse_output, run_project, vendor_tools_missing)
from .sizes import SizeReport, size_report

__all__ = ["BACKENDS", "MANIFEST", "TARGETS", "Project", "write_project", "run_project", "build_project", "measure_project",
           "parse_output", "FirmwareResult", "VectorResult", "Perf", "FirmwareBuildError", "FirmwareTimeoutError",
           "SizeReport", "size_report", "vendor_tools_missing"]
