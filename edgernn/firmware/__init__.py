"""Firmware projects around a model's C sources: write, build, run, measure.

``write_project`` renders a buildable project for a target (host, cortex-m4, arduino, zephyr)
with embedded self-test vectors; ``run_project`` builds it (gcc or arm-none-eabi-gcc through
its Makefile), runs it (directly, or in QEMU's mps2-an386 for the Cortex-M4), parses what the
device printed and reports pass/fail per vector, flash/RAM and instructions per inference.
"""

from .project import BACKENDS, MANIFEST, TARGETS, Project, write_project
from .runner import (FirmwareBuildError, FirmwareResult, FirmwareTimeoutError, Perf, VectorResult, build_project,
                     measure_project, parse_output, run_project)
from .sizes import SizeReport, size_report

__all__ = ["BACKENDS", "MANIFEST", "TARGETS", "Project", "write_project", "run_project", "build_project", "measure_project",
           "parse_output", "FirmwareResult", "VectorResult", "Perf", "FirmwareBuildError", "FirmwareTimeoutError",
           "SizeReport", "size_report"]
