"""Flash and RAM of a linked ELF, read with pyelftools, split into weights, kernels and the rest.

Totals follow ``size`` (Berkeley format) exactly: every allocated section counts as ``text``
when it is code or read-only, ``data`` when it is writable with contents, ``bss`` otherwise.
Flash is text + data (the initial values of .data are stored in flash).

RAM is what the program uses, not what it reserves: data + bss without the linker script's
``.stack`` and ``.heap`` reserves (NOBITS, so ``size`` counts them in bss), plus the stack's
high-water mark and the heap newlib's malloc claimed, both measured on the device after the
self-test (the Cortex-M start-up code paints the stack reserve; ``EDGERNN_MEMORY`` line). The
reserves are reported apart. Until a run has measured them (``measure_project``, host builds)
the reserves count in full, an upper bound, and ``measured`` is False.

The split uses the symbol table: a local symbol belongs to the source named by the preceding
``STT_FILE`` symbol, a global one to the object file that defines it. Read-only data defined in
the model's weight source (``NAME.c``) are *weights*; everything else the model and kernel
sources define (code, state, lookup tables) is *kernels*; the rest is the harness, start-up code
and the C library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import EdgeRNNError

_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 0x1, 0x2, 0x4


@dataclass
class SizeReport:
    """Bytes of flash and RAM an ELF needs, with the parts that make them up."""

    elf: Path
    text: int  # code + read-only data, as `size` reports it
    data: int  # initialised data (in RAM, with its initial image in flash)
    bss: int  # zeroed data and the heap and stack reserves (RAM only), as `size` reports it
    flash_parts: dict[str, int] = field(default_factory=dict)  # weights, kernels, rest
    static_parts: dict[str, int] = field(default_factory=dict)  # data + bss without the reserves: kernels, rest
    stack_reserved: int = 0  # the linker script's .stack section
    heap_reserved: int = 0  # the linker script's .heap section
    stack_peak: int | None = None  # measured high-water mark of the stack (bytes), after a run
    heap_used: int | None = None  # bytes newlib's malloc claimed from the heap (sbrk), after a run

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def measured(self) -> bool:
        """Whether the stack and heap figures were measured on the device (else: the reserves)."""
        return self.stack_peak is not None and self.heap_used is not None

    @property
    def ram_static(self) -> int:
        """data + bss without the stack and heap reserves: the variables the linker places."""
        return self.data + self.bss - self.stack_reserved - self.heap_reserved

    @property
    def ram(self) -> int:
        """RAM used: data + bss + measured stack peak + heap used (the reserves until measured)."""
        if self.measured:
            return self.ram_static + self.stack_peak + self.heap_used
        return self.ram_static + self.stack_reserved + self.heap_reserved

    @property
    def ram_reserved(self) -> int:
        """data + bss as `size` reports them: the RAM the image sets aside, reserves in full."""
        return self.data + self.bss

    @property
    def ram_parts(self) -> dict[str, int]:
        """What makes up :attr:`ram`: the static parts, then the stack and heap (used, or reserved)."""
        return {**self.static_parts,
                "stack": self.stack_peak if self.measured else self.stack_reserved,
                "heap": self.heap_used if self.measured else self.heap_reserved}

    def with_measurement(self, stack_peak: int, heap_used: int) -> "SizeReport":
        """This report with the device's stack high-water mark and heap use filled in."""
        from dataclasses import replace

        return replace(self, stack_peak=int(stack_peak), heap_used=int(heap_used))

    def check_budget(self, max_flash: int | None = None, max_ram: int | None = None) -> None:
        """Raise :class:`EdgeRNNError` naming both numbers when a budget is exceeded."""
        over = []
        if max_flash is not None and self.flash > max_flash:
            over.append(f"flash {self.flash} bytes > --max-flash {max_flash} bytes "
                        f"(weights {self.flash_parts.get('weights', 0)}, kernels {self.flash_parts.get('kernels', 0)})")
        if max_ram is not None and self.ram > max_ram:
            how = ("stack peak {}, heap used {}" if self.measured else
                   "stack {} and heap {} reserves counted in full: `edgernn firmware run` measures them")
            over.append(f"RAM {self.ram} bytes > --max-ram {max_ram} bytes "
                        f"(data+bss {self.ram_static}, {how.format(self.ram_parts['stack'], self.ram_parts['heap'])})")
        if over:
            raise EdgeRNNError(f"{self.elf.name}: over budget: {'; '.join(over)}; shrink the model (fewer units) "
                               "or raise the budget")

    def to_dict(self) -> dict:
        return dict(elf=str(self.elf), flash=self.flash, ram=self.ram, text=self.text, data=self.data,
                    bss=self.bss, ram_static=self.ram_static, ram_measured=self.measured,
                    stack_peak=self.stack_peak, heap_used=self.heap_used, stack_reserved=self.stack_reserved,
                    heap_reserved=self.heap_reserved, ram_reserved=self.ram_reserved,
                    flash_parts=dict(self.flash_parts), ram_parts=dict(self.ram_parts))

    def describe(self) -> list[str]:
        """Lines for `edgernn firmware run/build`: flash, RAM used and the reserves apart."""
        fp = self.flash_parts
        static = ", ".join(f"{k} {v}" for k, v in self.static_parts.items())
        lines = [f"flash {self.flash} bytes (weights {fp.get('weights', 0)}, kernels {fp.get('kernels', 0)}, "
                 f"rest {fp.get('rest', 0)})"]
        if self.measured:
            lines.append(f"RAM {self.ram} bytes used = data+bss {self.ram_static} ({static}) + stack peak "
                         f"{self.stack_peak} + heap used {self.heap_used}; reserved: stack {self.stack_reserved}, "
                         f"heap {self.heap_reserved}")
        elif self.stack_reserved or self.heap_reserved:
            lines.append(f"RAM {self.ram} bytes at most = data+bss {self.ram_static} ({static}) + stack reserve "
                         f"{self.stack_reserved} + heap reserve {self.heap_reserved} (not measured: "
                         "`edgernn firmware run` reads the stack peak)")
        else:
            lines.append(f"RAM {self.ram} bytes = data+bss ({static}); stack and heap not counted")
        return lines

    def rows(self) -> list[tuple[str, int, int]]:
        """(part, flash bytes, RAM bytes) rows, for a table."""
        parts = list(dict.fromkeys([*self.flash_parts, *self.ram_parts]))
        rows = [(p, self.flash_parts.get(p, 0), self.ram_parts.get(p, 0)) for p in parts]
        return rows + [("total", self.flash, self.ram)]


@dataclass
class _Symbol:
    name: str
    size: int
    section: str
    flags: int
    nobits: bool
    is_object: bool
    owner: str | None  # basename of the source file that defined it, when known


def _source_key(path: str) -> str:
    """'model/lstm.c', 'lstm.o', 'build/model/lstm.o' -> 'lstm' (what STT_FILE and objects share)."""
    return re.sub(r"\.(c|cc|cpp|cxx|o|obj)$", "", Path(path).name)


def _global_owners(objects: Iterable[Path]) -> dict[str, str]:
    from elftools.elf.elffile import ELFFile

    owners: dict[str, str] = {}
    for obj in objects:
        with open(obj, "rb") as f:
            symtab = ELFFile(f).get_section_by_name(".symtab")
            if symtab is None:
                continue
            for sym in symtab.iter_symbols():
                if (sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK") and sym["st_shndx"] not in ("SHN_UNDEF",)
                        and sym.name):
                    owners[sym.name] = _source_key(str(obj))
    return owners


def _symbols(elf, globals_by_name: dict[str, str]) -> list[_Symbol]:
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        raise EdgeRNNError(f"{elf.stream.name}: has no symbol table (stripped); build without -s to get the "
                           "weights/kernels split")
    sections = list(elf.iter_sections())
    out, seen, current_file = [], set(), None
    for sym in symtab.iter_symbols():
        kind = sym["st_info"]["type"]
        if kind == "STT_FILE":
            current_file = _source_key(sym.name)
            continue
        shndx = sym["st_shndx"]
        if kind not in ("STT_OBJECT", "STT_FUNC") or sym["st_size"] == 0 or not isinstance(shndx, int):
            continue
        sec = sections[shndx]
        if not sec["sh_flags"] & _SHF_ALLOC:
            continue
        key = (shndx, sym["st_value"] & ~1, sym["st_size"])  # aliases share address and size
        if key in seen:
            continue
        seen.add(key)
        local = sym["st_info"]["bind"] == "STB_LOCAL"
        owner = current_file if local else globals_by_name.get(sym.name)
        out.append(_Symbol(sym.name, sym["st_size"], sec.name, sec["sh_flags"], sec["sh_type"] == "SHT_NOBITS",
                           kind == "STT_OBJECT", owner))
    return out


def size_report(elf_path, *, weight_sources: Iterable = (), kernel_sources: Iterable = (),
                objects: Iterable = (), weight_symbols: Iterable[str] = (),
                kernel_symbol_pattern: str | None = None) -> SizeReport:
    """Read ``elf_path`` and split its flash and RAM.

    ``weight_sources``/``kernel_sources``: source (or object) paths whose symbols are the model's;
    read-only data objects of a weight source are weights, the other symbols of either are
    kernels. ``objects``: the object files of the build, to attribute global symbols.
    ``weight_symbols``: names always counted as weights (the TFLM flatbuffer array);
    ``kernel_symbol_pattern``: a regular expression for kernel symbols not found by source.
    """
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    path = Path(elf_path)
    if not path.is_file():
        raise EdgeRNNError(f"{path}: no such ELF file; build the project first (make)")
    weight_keys = {_source_key(str(p)) for p in weight_sources}
    kernel_keys = {_source_key(str(p)) for p in kernel_sources} | weight_keys
    weight_names = set(weight_symbols)
    kernel_re = re.compile(kernel_symbol_pattern) if kernel_symbol_pattern else None
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            text = data = bss = 0
            stack = heap = 0
            for sec in elf.iter_sections():
                flags = sec["sh_flags"]
                if not flags & _SHF_ALLOC:
                    continue
                size = sec["sh_size"]
                if flags & _SHF_EXECINSTR or not flags & _SHF_WRITE:
                    text += size
                elif sec["sh_type"] != "SHT_NOBITS":
                    data += size
                else:
                    bss += size
                    if sec.name == ".stack":
                        stack += size
                    elif sec.name == ".heap":
                        heap += size
            symbols = _symbols(elf, _global_owners(Path(o) for o in objects if Path(o).is_file()))
    except ELFError as e:
        raise EdgeRNNError(f"{path}: not an ELF file ({e}); pass the linked firmware image") from None

    flash_parts = {"weights": 0, "kernels": 0}
    ram_parts = {"weights": 0, "kernels": 0}
    for s in symbols:
        read_only = not s.flags & _SHF_WRITE
        if s.name in weight_names or (s.owner in weight_keys and s.is_object and read_only):
            part = "weights"
        elif s.owner in kernel_keys or (kernel_re is not None and kernel_re.search(s.name)):
            part = "kernels"
        else:
            continue
        if not s.nobits:
            flash_parts[part] += s.size
        if not read_only:
            ram_parts[part] += s.size
    flash_parts["rest"] = text + data - flash_parts["weights"] - flash_parts["kernels"]
    if not ram_parts["weights"]:
        del ram_parts["weights"]
    ram_parts["rest"] = data + bss - stack - heap - sum(ram_parts.values())
    return SizeReport(elf=path, text=text, data=data, bss=bss, flash_parts=flash_parts, static_parts=ram_parts,
                      stack_reserved=stack, heap_reserved=heap)
