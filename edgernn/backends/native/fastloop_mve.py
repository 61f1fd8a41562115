"""The Helium (Cortex-M55) form of a fast loop step's elementwise runs (:mod:`.fastloop`).

Each fused run ``for (i = 0; i < n; ++i)`` of element expressions becomes, under
``EDGERNN_USE_MVE`` (``edgernn_rows.h``: Helium and an optimizing compiler), a loop over four
int32 lanes, the scalar loop kept in the ``#else`` branch for every other build. The vector
expressions are not written separately: :func:`vector_forms` calls the generator of the
scalar ones (``fastloop._elementwise``) again with vector operands and renames each helper
``edgernn_NAME`` of ``edgernn_fast.h`` to its twin ``edgernn_mve_NAME`` of
``edgernn_mve_ew.h`` (:data:`TWINS`), so the two forms come from the same expression and the
same constants; the operators + - * act lane by lane. A run keeps only its scalar loop when
one of its ops has no twin (the reference formulas, the input's CAST).

A run of n elements takes n // 4 whole vectors; the last n % 4 elements, if any, run once
more with predicated loads and stores (``vctp32q``): lanes past the end read zeros, write
nothing.
"""

from __future__ import annotations

import re

#: the helpers of edgernn_fast.h / edgernn_kernels.h with a Helium twin ``edgernn_mve_NAME``
#: (edgernn_mve_ew.h; ``mbqm``'s is edgernn_rows.h's ``edgernn_mve_mbqm``)
TWINS = ("clamp_range_s16", "clamp_range_s8", "rdbp", "mul_s16", "add16_term", "add16_out", "act16_scale",
         "sigmoid16", "sigmoid16_abs", "tanh16", "add_fit_s8", "sub_fit_s8", "mul_fit_s8", "mul_prescaled_s8",
         "mbqm")
#: int32 lanes per vector (EDGERNN_MVE_EW_LANES)
LANES = 4
#: the kernel layouts whose loop steps get the Helium form (the Cortex-M55's; edgernn_rows.h
#: decides at compile time, so M0+/M3/host builds of the same source run the scalar loops)
MVE_KERNELS = ("rows",)

_CALL = re.compile(r"\bedgernn_(\w+)\(")
_LUT = re.compile(r"^\((\$\w+) \+ 128\)\[(.*)\]$", re.S)
_SUFFIX = {2: "s16", 1: "s8"}
#: an int16 op's output RDBP(., e) clamped to the whole int16 range with no zero point
_SAT16 = re.compile(r"^edgernn_mve_clamp_range_s16\(edgernn_mve_(add16_out|mul_s16|rdbp)\((.*), (\d+)\) \+ 0, "
                    r"-32768, 32767\)$", re.S)


def _load(src: str, size: int, tail: bool) -> str:
    """Four elements from i of the buffer ``src`` (a C expression in parentheses)."""
    return f"edgernn_mve_ld_{_SUFFIX[size]}{'_z' if tail else ''}({src} + i{', lanes' if tail else ''})"


def _vector(e, elementwise, tail: bool) -> str | None:
    """The Helium expression of the fused op ``e`` (a :class:`.fastloop.Elementwise`), or None."""
    ins = []
    for src, reg in zip(e.ins, e.op.regions):
        if not src.endswith("[i]"):
            ins.append(src)  # the local of an earlier op of the run
            continue
        size = (reg[2] - reg[1]) // e.op.n
        if size not in _SUFFIX or (reg[2] - reg[1]) % e.op.n:
            return None
        ins.append(_load(src[:-3], size, tail))
    probe, _ = elementwise(e.op, ["__a", "__b"][:len(ins)])
    if "$$" in probe or "(int" in probe:
        return None  # a reference formula (parameter struct) or a cast: no twin
    expr, form = elementwise(e.op, ins)
    if form != e.form:
        return None
    lut = _LUT.match(expr)
    if lut:
        return f"edgernn_mve_lut_s8({lut.group(1)} + 128, {lut.group(2)})"
    if "[" in expr:
        return None

    def twin(m: re.Match) -> str:
        if m.group(1) in TWINS:
            return f"edgernn_mve_{m.group(1)}("
        if m.group(1).startswith("mve_"):
            return m.group(0)
        raise KeyError(m.group(1))

    try:
        vec = _CALL.sub(twin, expr)
    except KeyError:
        return None
    sat = _SAT16.match(vec)  # clamp16(RDBP(..., e)) as one saturating rounding narrow
    if sat and 1 <= int(sat.group(3)) <= 16:
        return f"edgernn_mve_{sat.group(1)}_sat16({sat.group(2)}, {sat.group(3)})"
    return vec


def store(e, tail: bool) -> str | None:
    """The store of ``e``'s four lanes (None: it stays in registers)."""
    if e.store is None:
        return None
    size = 2 if e.ctype == "int16_t" else 1
    if tail:
        return f"edgernn_mve_st_{_SUFFIX[size]}_p(({e.store}) + i, {e.local}, lanes)"
    return f"edgernn_mve_st_{_SUFFIX[size]}(({e.store}) + i, {e.local})"


def vector_forms(steps: list, elementwise) -> bool:
    """Gives each op of every run in ``steps`` that can run on Helium its vector expression and
    store (``e.vector``: whole vectors, ``e.vector_tail``: the predicated last n % 4), all or
    none per run; True when any run has them."""
    any_run = False
    for st in steps:
        if st[0] != "run":
            continue
        run = st[2]
        full = [_vector(e, elementwise, False) for e in run]
        tail = [_vector(e, elementwise, True) for e in run] if st[1] % LANES else full
        if st[1] < LANES or any(v is None for v in full + tail):
            continue
        for e, v, t in zip(run, full, tail):
            e.vector, e.vector_tail = (v, store(e, False)), (t, store(e, True))
        any_run = True
    return any_run
