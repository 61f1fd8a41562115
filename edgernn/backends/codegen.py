"""Small code-generation helpers shared by the backends (C arrays, identifiers, templates).

>>> c_identifier("my-model 2")
'my_model_2'
>>> c_array(np.array([1, -2, 3], np.int8), per_line=2)
'1, -2,\\n3'
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from ..errors import EdgeRNNError
from ..paths import TEMPLATES_DIR

_C_KEYWORDS = {"auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
               "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
               "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
               "volatile", "while", "main"}


def c_identifier(name: str) -> str:
    """A valid C identifier made from ``name``; raises when nothing usable is left."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", str(name)).strip("_")
    if not ident or ident[0].isdigit() or ident in _C_KEYWORDS:
        raise EdgeRNNError(f"--name {name!r}: not usable as a C identifier; use letters, digits and _ "
                           "starting with a letter (and not a C keyword)")
    return ident


def c_initializer(values: np.ndarray, indent: str = "    ", per_line: int = 16) -> str:
    """The body of an integer C array initializer, indented, ``per_line`` values a line."""
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    return ",\n".join(indent + ", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line))


def c_words(values: np.ndarray, indent: str = "    ", per_line: int = 8) -> str:
    """The body of a ``uint32_t`` C array initializer: hexadecimal literals, ``per_line`` a line.

    >>> c_words(np.array([1, 0xFFFFFFFF]))
    '    0x00000001u, 0xffffffffu'
    """
    flat = [f"0x{int(v) & 0xFFFFFFFF:08x}u" for v in np.asarray(values).reshape(-1)]
    return ",\n".join(indent + ", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line))


def c_array(values: np.ndarray, *, per_line: int = 16, fmt: str = "{}") -> str:
    """Comma-separated C initializer for ``values`` (flattened), ``per_line`` values a line."""
    flat = np.asarray(values).reshape(-1)
    items = [fmt.format(int(v)) if np.issubdtype(flat.dtype, np.integer) else repr(float(v)) for v in flat]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join(lines)


def camel(name: str) -> str:
    """``my_lstm`` -> ``MyLstm`` (for C++ constant names such as ``kMyLstmArenaBytes``)."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def c_float(value: float) -> str:
    """A C float literal that round-trips the float32 value exactly.

    >>> c_float(1.0), c_float(0.00390625), c_float(1e-10)
    ('1.0f', '0.00390625f', '1.00000001e-10f')
    """
    text = f"{float(np.float32(value)):.9g}"
    if not any(c in text for c in ".eEn"):  # "1" -> "1.0": "1f" is not a C literal
        text += ".0"
    return text + "f"


@lru_cache(maxsize=1)
def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["c_float"] = env.filters["cfloat"] = c_float
    env.filters["carray"] = c_initializer
    env.filters["cwords"] = c_words
    env.filters["camel"] = camel
    return env


@lru_cache(maxsize=8)
def _overlay(names: frozenset):
    """One overlay environment per set of per-call filter names: its compiled templates are kept
    (a fresh overlay would compile every template again, ~0.1 s each)."""
    return _env().overlay()


def render(template: str, *, filters: dict | None = None, **ctx) -> str:
    """Render ``template`` (a path under ``firmware_templates/``); ``filters`` adds per-call filters."""
    if not filters:
        return _env().get_template(template).render(**ctx)
    env = _overlay(frozenset(filters))
    env.filters.update(filters)  # compiled templates look their filters up when they render
    return env.get_template(template).render(**ctx)
