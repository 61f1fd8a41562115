"""Flash and RAM of a linked ELF, read with pyelftools, split into weights, kernels and the rest.

Totals follow ``size`` (Berkeley format) exactly: every allocated section counts as ``text``
when it is code or read-only, ``data`` when it is writable with contents, ``bss`` otherwise.
Flash is text + data (the initial values of .data are stored in flash), RAM is data + bss (the
linker script's ``.heap`` and ``.stack`` sections are NOBITS, so they are in bss).

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
    bss: int  # zeroed data, heap and stack (RAM only)
    flash_parts: dict[str, int] = field(default_factory=dict)  # weights, kernels, rest
    ram_parts: dict[str, int] = field(default_factory=dict)  # kernels, stack, heap, rest (+ weights if not const)

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss

    def check_budget(self, max_flash: int | None = None, max_ram: int | None = None) -> None:
        """Raise :class:`EdgeRNNError` naming both numbers when a budget is exceeded."""
        over = []
        if max_flash is not None and self.flash > max_flash:
            over.append(f"flash {self.flash} bytes > --max-flash {max_flash} bytes "
                        f"(weights {self.flash_parts.get('weights', 0)}, kernels {self.flash_parts.get('kernels', 0)})")
        if max_ram is not None and self.ram > max_ram:
            over.append(f"RAM {self.ram} bytes > --max-ram {max_ram} bytes "
                        f"(stack {self.ram_parts.get('stack', 0)}, heap {self.ram_parts.get('heap', 0)})")
        if over:
            raise EdgeRNNError(f"{self.elf.name}: over budget: {'; '.join(over)}; shrink the model (fewer units) "
                               "or raise the budget")

    def to_dict(self) -> dict:
        return dict(elf=str(self.elf), flash=self.flash, ram=self.ram, text=self.text, data=self.data,
                    bss=self.bss, flash_parts=dict(self.flash_parts), ram_parts=dict(self.ram_parts))

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
    ram_parts = {"weights": 0, "kernels": 0, "stack": stack, "heap": heap}
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
    ram_parts["rest"] = data + bss - sum(ram_parts.values())
    return SizeReport(elf=path, text=text, data=data, bss=bss, flash_parts=flash_parts, ram_parts=ram_parts)
