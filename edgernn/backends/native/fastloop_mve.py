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

import numpy as np

from .fastloop16 import add16_form

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
#: fastloop16._pow2_sum's output with no rounding and no zero point: clamp16(D) (:func:`_qsum`)
_PLAIN_SUM = re.compile(r"^edgernn_clamp_range_s16\((?:edgernn_rdbp\(RAW, 0\)|\(RAW\) \* (\d+)) \+ 0, -32768, 32767\)$")
#: a term of fastloop16._pow2_sum: ({x}) or (({x}) * 2^j)
_POW2 = re.compile(r"^\(\(?\{x\}\)(?: \* (\d+)\))?$")
#: an int16 LOGISTIC / TANH on its input's scale (edgernn_act16_scale, act16_form)
_ACT16 = re.compile(r"^edgernn_mve_(sigmoid16|sigmoid16_abs|tanh16)\(edgernn_mve_act16_scale\((.*), (\d+), (\d+), "
                    r"(\d+)\)\)$", re.S)
#: the twins whose value is in bottom form (VQRSHRNB without VMOVLB)
_BOTTOM = re.compile(r"^edgernn_mve_\w+_sat16\(")
#: an int16 op's output RDBP(., e) clamped to the whole int16 range with no zero point
_SAT16 = re.compile(r"^edgernn_mve_clamp_range_s16\(edgernn_mve_(add16_out|mul_s16|rdbp)\((.*), (\d+)\) \+ 0, "
                    r"-32768, 32767\)$", re.S)


def _load(src: str, size: int, tail: bool) -> str:
    """Four elements from i of the buffer ``src`` (a C expression in parentheses)."""
    return f"edgernn_mve_ld_{_SUFFIX[size]}{'_z' if tail else ''}({src} + i{', lanes' if tail else ''})"


def _twins(expr: str) -> str | None:
    """``expr`` with each helper renamed to its Helium twin (None: one has none)."""
    def twin(m: re.Match) -> str:
        if m.group(1) in TWINS:
            return f"edgernn_mve_{m.group(1)}("
        if m.group(1).startswith("mve_"):
            return m.group(0)
        raise KeyError(m.group(1))

    try:
        return _CALL.sub(twin, expr)
    except KeyError:
        return None


def _act16_q(m: int, r: int, s: int) -> tuple[int, int] | None:
    """(k, M) with VQRDMULH(x 2^k, M) = (x m + r) >> s for every int16 x (1 <= k <= 15, checked
    here): the activation's input scale on a VSHLLB of a bottom-form x, or None."""
    if not (0 < m < 1 << 15 and 0 < s <= 31 and r == 1 << (s - 1)):
        return None
    for k in range(1, 16):
        if 31 - s - k >= 0 and m << (31 - s - k) < 1 << 31:
            big = m << (31 - s - k)
            x = np.arange(-32768, 32768, dtype=np.int64)
            if np.array_equal((2 * (x << k) * big + (1 << 31)) >> 32, (x * m + r) >> s):
                return k, big
            return None
    return None


def _unclamped(fn: str, m: int, r: int, s: int) -> bool:
    """Whether the activation's table segment needs no clamp at 255 for any int16 input: the
    largest (v ^ (v >> 31)) >> bits (|v| for the _abs form) over v = (x m + r) >> s."""
    v = (np.arange(-32768, 32768, dtype=np.int64) * m + r) >> s
    a = np.abs(v) if fn.endswith("_abs") else v ^ (v >> 63)
    return int(a.max()) >> (8 if fn == "tanh16" else 9) <= 255


def _add16_raw(op, ins: list[str], bottom: set) -> tuple[str, str] | None:
    """(scalar RAW text of an int16 ADD / SUB, its Helium form): a 2^14 term on an int32-form
    input as one VMLA, on a bottom-form one as VSHLLB #14."""
    form = add16_form(op.params)
    if form is None:
        return None
    terms = [t.format(x=x) for t, x in zip(form[:2], ins)]
    raw = f"{terms[0]} {'-' if op.params.subtract else '+'} {terms[1]}"
    if "edgernn_add16_out(" not in form[2]:  # fastloop16._pow2_sum: a 2^j1 +- b 2^j2, small j
        return raw, _pow2_raw([_POW2.match(t).group(1) for t in form[:2]], ins, bottom, op.params.subtract)
    shl = [t == "(({x}) * 16384)" for t in form[:2]]
    vterms = [f"edgernn_mve_shl14({x})" if s else t for t, s, x in zip(terms, shl, ins)]
    sub = op.params.subtract
    if shl[1] and ins[1] not in bottom:
        return raw, f"vmlaq_n_s32({vterms[0]}, {ins[1]}, {-16384 if sub else 16384})"
    if shl[0] and ins[0] not in bottom and not sub:
        return raw, f"vmlaq_n_s32({vterms[1]}, {ins[0]}, 16384)"
    return raw, f"{vterms[0]} {'-' if sub else '+'} {vterms[1]}"


def _qsum(op, ins: list[str]) -> str | None:
    """clamp16((a f1 +- b f2) 2^j) (fastloop16._pow2_sum, no rounding, f1 f2 in {1 2}, one of them 1) of
    int16 a, b as saturating int16 adds on the low halves, bottom form: VQADD / VQSUB for
    a +- b; (a +- b) +- b for a +- 2b and (a +- b) + a for 2a +- b, exact: the first sum
    saturates only where the second moves further the same way; 2^j as j doublings, likewise."""
    form = add16_form(op.params)
    out = form and _PLAIN_SUM.match(form[2])
    if not out:
        return None
    f = [int(_POW2.match(t).group(1) or 1) for t in form[:2]]
    q = "edgernn_mve_qsub_sat16" if op.params.subtract else "edgernn_mve_qadd_sat16"
    if f == [1, 1]:
        v = f"{q}({ins[0]}, {ins[1]})"
    elif f == [1, 2]:
        v = f"{q}({q}({ins[0]}, {ins[1]}), {ins[1]})"
    elif f == [2, 1]:
        v = f"edgernn_mve_qadd_sat16({q}({ins[0]}, {ins[1]}), {ins[0]})"
    else:
        return None
    for _ in range(int(out.group(1) or 1).bit_length() - 1):  # (D) * 2^j: clamp16(2 clamp16(y)) = clamp16(2 y)
        v = f"edgernn_mve_qdbl_sat16({v})"
    return v


def _pow2_raw(factors: list, ins: list[str], bottom: set, sub: bool) -> str:
    """The Helium D = a f1 +- b f2 of a power-of-two sum (f1, f2 powers of two, one of them 1): a
    bottom-form term widened and shifted by one VSHLLB (VMOVLB for 1), an int32-form one with
    f > 1 as the multiplier of one VMLA."""
    f = [int(x or 1) for x in factors]
    if not sub:
        for i in (1, 0):
            if f[i] > 1 and ins[i] not in bottom:
                o = ins[1 - i]
                other = f"edgernn_mve_shl16({o}, {f[1 - i].bit_length() - 1})" if o in bottom else (
                    o if f[1 - i] == 1 else f"vshlq_n_s32({o}, {f[1 - i].bit_length() - 1})")
                return f"vmlaq_n_s32({other}, {ins[i]}, {f[i]})"
    v = [f"edgernn_mve_shl16({x}, {k.bit_length() - 1})" if x in bottom else
         (x if k == 1 else f"vshlq_n_s32({x}, {k.bit_length() - 1})") for x, k in zip(ins, f)]
    return f"{v[0]} {'-' if sub else '+'} {v[1]}"


def _vector(e, elementwise, tail: bool, bottom: set = frozenset()) -> tuple[str, bool] | None:
    """The Helium expression of the fused op ``e`` (a :class:`.fastloop.Elementwise`) on the
    vectors of its inputs (``bottom``: the locals in bottom form, an int16 value in the low half
    of each lane, as VQRSHRNB leaves it) and whether its value is in bottom form, or None."""
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
    for widen in (False, True):
        if widen:  # an op that reads its inputs as int32 lanes: sign-extend the bottom halves
            ins = [f"edgernn_mve_widen16({x})" if x in bottom else x for x in ins]
        expr, form = elementwise(e.op, ins)
        if form != e.form:
            return None
        lut = _LUT.match(expr)
        if lut:
            return f"edgernn_mve_lut_s8({lut.group(1)} + 128, {lut.group(2)})", False
        if "[" in expr:
            return None
        qsum = _qsum(e.op, ins) if e.op.kind == "add16" else None
        if qsum:
            return qsum, True
        raw = _add16_raw(e.op, ins, bottom) if e.op.kind == "add16" else None
        if raw:
            expr = expr.replace(raw[0], raw[1])
        vec = _twins(expr)
        if vec is None:
            return None
        sat = _SAT16.match(vec)  # clamp16(RDBP(..., e)) as one saturating rounding narrow
        if sat and 1 <= int(sat.group(3)) <= 16:
            vec = f"edgernn_mve_{sat.group(1)}_sat16({sat.group(2)}, {sat.group(3)})"
        elif sat and sat.group(1) == "rdbp" and sat.group(3) == "0":  # clamp16(D): one VQMOVNB
            vec = f"edgernn_mve_sum_sat16({sat.group(2)})"
        act = _ACT16.match(vec)
        q = act and _act16_q(*map(int, act.group(3, 4, 5)))
        if act:
            fn = act.group(1) + ("_nc" if _unclamped(act.group(1), *map(int, act.group(3, 4, 5))) else "")
            scale = (f"edgernn_mve_act16_scale_q({act.group(2)}, {q[0]}, {q[1]})" if q else
                     f"edgernn_mve_act16_scale({act.group(2)}, {', '.join(act.group(3, 4, 5))})")
            vec = f"edgernn_mve_{fn}({scale})"
            if q and fn == "tanh16_nc":  # the scale and the TANH tables' offset as one VQRDMLASH
                vec = f"edgernn_mve_tanh16_nc_q({act.group(2)}, {q[0]}, {q[1]})"
        # bottom-form inputs are read only by VSHLLB / VMULLB: ADD / SUB terms, MUL, the scale
        safe = raw is not None or (e.op.kind == "mul16" and "edgernn_mve_mul_s16" in vec) or bool(q)
        if safe or not bottom.intersection(ins):
            return vec, bool(_BOTTOM.match(vec))
    return None


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
        forms = {}
        for tail in (False, True) if st[1] % LANES else (False,):
            bottom: set = set()
            vecs = []
            for e in run:
                v = _vector(e, elementwise, tail, bottom)
                vecs.append(v)
                if v is None:
                    break
                if v[1]:
                    bottom.add(e.local)
            forms[tail] = vecs
        if st[1] < LANES or any(v is None for vecs in forms.values() for v in vecs):
            continue
        for k, e in enumerate(run):
            e.vector = (forms[False][k][0], store(e, False))
            e.vector_tail = (forms.get(True, forms[False])[k][0], store(e, True))
        any_run = True
    return any_run
