"""The int16 layout's elementwise ops in a fast loop step (:mod:`.fastloop`): each op's C form,
checked against TFLM's int16 arithmetic (ADD / SUB decomposed exactly, MUL's high multiply as one
SMMLAR, LOGISTIC / TANH on :mod:`.tables`' shared table, the rest TFLM's formulas)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np

from ... import fixedpoint as fp
from . import tables

#: the step op kinds (:mod:`.loop`) of the int16 layout's elementwise ops
INT16_KINDS = ("add16", "mul16", "act16", "requant", "widen")


def smmlar(a, b, c) -> np.ndarray:
    return np.asarray(c, np.int64) + ((np.asarray(a, np.int64) * b + (1 << 31)) >> 32)


def add16_exact(p, a, b) -> np.ndarray:
    """TFLM's int16 ADD / SUB (left shift 15), vectorized."""
    sa = fp.multiply_by_quantized_multiplier((p.input1_offset + np.asarray(a, np.int64)) * (1 << 15), *p.input1)
    sb = fp.multiply_by_quantized_multiplier((p.input2_offset + np.asarray(b, np.int64)) * (1 << 15), *p.input2)
    raw = sa - sb if p.subtract else sa + sb
    y = fp.multiply_by_quantized_multiplier(raw, *p.output) + p.output_offset
    return np.clip(y, p.activation_min, p.activation_max)


def mul16_exact(p, a, b) -> np.ndarray:
    """TFLM's int16 MUL, vectorized."""
    q = (p.input1_offset + np.asarray(a, np.int64)) * (p.input2_offset + np.asarray(b, np.int64))
    return np.clip(fp.multiply_by_quantized_multiplier(q, *p.multiplier) + p.output_offset,
                   p.activation_min, p.activation_max)


_I16 = np.arange(-32768, 32768, dtype=np.int64)


def _rdbp(v, e: int):
    return v if e == 0 else (v + (1 << (e - 1)) + (v >> 63)) >> e


def _add16_term(a, m: int, shift: int):
    """MBQM(a 2^15, m, shift) for shift <= 0 as the C form computes it: 2^14 a for (2^30, 0), else
    RDBP(SMMULR(a 2^16, m), -shift) with the rounding constant in SMMLAR's accumulator and the
    sign taken from a (``edgernn_add16_term``)."""
    if (m, shift) == (1 << 30, 0):
        return a * (1 << 14)
    if shift == 0:
        return smmlar(a * (1 << 16), m, 0)
    return (smmlar(a * (1 << 16), m, 1 << (-shift - 1)) + (a >> 63)) >> -shift


def add16_form(p) -> tuple[str, str, str] | None:
    """C expressions (input term 1, input term 2, output with ``RAW`` for the sum) of TFLM's
    int16 ADD / SUB decomposed exactly: each input term ``MBQM(a 2^15, m, s)`` equals the form
    of :func:`_add16_term` for all 65,536 inputs (checked here); the output
    ``MBQM(raw, m, s) = RDBP(SMMULR(2 raw, m), -s) = RDBP(SMMLAR(raw, 2m - 2^32, raw), -s)`` is
    exact algebra for 2^30 <= m < 2^31 while ``-2^30 <= raw < 2^30`` (checked from the terms'
    ranges; ``edgernn_add16_out``, SMMULR(2 raw, m) on Armv6-M); or None."""
    if p.input1_offset or p.input2_offset or max(p.input1[1], p.input2[1], p.output[1]) > 0:
        return None
    terms, ranges = [], []
    for (m, sh) in (p.input1, p.input2):
        got = _add16_term(_I16, m, sh)
        if not np.array_equal(got, fp.multiply_by_quantized_multiplier(_I16 * (1 << 15), m, sh)):
            return None
        ranges.append((int(got.min()), int(got.max())))
        terms.append("(({x}) * 16384)" if (m, sh) == (1 << 30, 0) else f"edgernn_add16_term({{x}}, {m}, {-sh})")
    (lo1, hi1), (lo2, hi2) = ranges
    raw_lo, raw_hi = (lo1 - hi2, hi1 - lo2) if p.subtract else (lo1 + lo2, hi1 + hi2)
    if raw_lo < -(1 << 30) or raw_hi >= 1 << 30:
        return None
    m, sh = p.output
    exact = _pow2_sum(p)
    if exact is not None:
        return exact
    if not (1 << 30) <= m < (1 << 31):
        return None
    out = (f"edgernn_clamp_range_s16(edgernn_add16_out(RAW, {2 * m - (1 << 32)}, {-sh}) + {p.output_offset}, "
           f"{p.activation_min}, {p.activation_max})")
    return terms[0], terms[1], out


def _pow2_sum(p) -> tuple[str, str, str] | None:
    """:func:`_pow2_sum_of` of ``p``'s fields (cached: the generator asks for each op's form
    several times)."""
    return _pow2_sum_of(p.input1, p.input2, p.output, p.subtract, p.output_offset, p.activation_min,
                        p.activation_max)


@functools.lru_cache(maxsize=256)
def _pow2_sum_of(input1, input2, output, subtract, output_offset, activation_min, activation_max):
    """The form of an ADD / SUB whose every multiplier is 2^30 (each ratio of scales a power of
    two: cells.py's SUM_SCALE): term i is exactly a_i 2^(14 + s_i) (s_i >= -13), so raw = D 2^k
    with D = a 2^(j1 - k) +- b 2^(j2 - k), k = min(j1, j2) >= 1; SRDHM(raw, 2^30) = D 2^(k - 1)
    exactly, and RDBP(2^j D, e) = RDBP(D, e - j) for 0 <= j <= e (the rounding constant and the
    sign term only move within one step of 2^j): the output is RDBP(D, e), no multiply, or D 2^-e
    for e < 0 (exact: a multiple of 2^(-sh) divided). Checked
    against TFLM's arithmetic on the edges and 2^18 random pairs; or None."""
    p = SimpleNamespace(input1=input1, input2=input2, output=output, subtract=subtract, output_offset=output_offset,
                        activation_min=activation_min, activation_max=activation_max, input1_offset=0,
                        input2_offset=0)
    (m1, s1), (m2, s2), (m, sh) = input1, input2, output
    if {m1, m2, m} != {1 << 30} or min(s1, s2) < -13:
        return None
    j1, j2 = 14 + s1, 14 + s2
    k = min(j1, j2)
    e = -sh - (k - 1)  # e < 0: the output is D 2^-e (a sum on a finer grid than its terms)
    if e < -15:
        return None
    f1, f2 = 1 << (j1 - k), 1 << (j2 - k)
    edge = np.array([-32768, -32767, -16384, -2, -1, 0, 1, 2, 16383, 32767], np.int64)
    rng = np.random.default_rng(0)
    a = np.concatenate([np.repeat(edge, edge.size), rng.integers(-32768, 32768, 1 << 18), _I16])
    b = np.concatenate([np.tile(edge, edge.size), rng.integers(-32768, 32768, 1 << 18), _I16[::-1]])
    d = a * f1 - b * f2 if p.subtract else a * f1 + b * f2
    got = np.clip((_rdbp(d, e) if e >= 0 else d << -e) + p.output_offset, p.activation_min, p.activation_max)
    if not np.array_equal(got, add16_exact(p, a, b)):
        return None

    def term(f: int) -> str:
        return "({x})" if f == 1 else f"(({{x}}) * {f})"
    out = f"edgernn_rdbp(RAW, {e})" if e >= 0 else f"(RAW) * {1 << -e}"
    return (term(f1), term(f2), f"edgernn_clamp_range_s16({out} + {p.output_offset}, {p.activation_min}, "
            f"{p.activation_max})")


def elementwise16(s, ins: list[str]) -> tuple[str, str]:
    """(C expression, form) of one op of the int16 layout: ADD / SUB decomposed exactly
    (:func:`add16_form`), MUL with its literal multiplier, the rest TFLM's formulas (one element)."""
    p = s.params
    if s.kind == "add16":
        form = add16_form(p)
        if form is None:
            return f"edgernn_add_one_s16(&$$l_op, {ins[0]}, {ins[1]})", "reference"
        t1, t2, out = form
        raw = f"{t1.format(x=ins[0])} {'-' if p.subtract else '+'} {t2.format(x=ins[1])}"
        return out.replace("RAW", raw), "exact"
    if s.kind == "mul16":
        if p.input1_offset or p.input2_offset:
            return f"edgernn_mul_one_s16(&$$l_op, {ins[0]}, {ins[1]})", "reference"
        m, sh = p.multiplier
        if (1 << 30) <= m < (1 << 31) and sh <= 0:  # SRDHM as one SMMLAR (edgernn_mul_s16)
            return (f"edgernn_clamp_range_s16(edgernn_mul_s16({ins[0]}, {ins[1]}, {2 * m - (1 << 32)}, {-sh}) + "
                    f"{p.output_offset}, {p.activation_min}, {p.activation_max})", "exact")
        return (f"edgernn_clamp_range_s16(edgernn_mbqm(({ins[0]}) * ({ins[1]}), {m}, {sh}) + "
                f"{p.output_offset}, {p.activation_min}, {p.activation_max})", "exact")
    if s.kind == "act16":
        form = tables.act16_form(p.function, p.multiplier, p.left_shift)
        if form is not None:
            return form.format(x=ins[0]), "table"
        if p.function == "tanh":
            return f"edgernn_tanh_s16((int16_t){ins[0]}, {p.multiplier}, {p.left_shift})", "reference"
        return f"edgernn_logistic_one_s16({ins[0]}, {p.multiplier}, {p.left_shift})", "reference"
    if s.kind == "requant":
        return (f"edgernn_requant_one_s16_s8({ins[0]}, {p.multiplier}, {p.shift}, {p.input_zero_point}, "
                f"{p.output_zero_point})", "reference")
    return f"(int32_t)({ins[0]})", "widen"  # CAST int8 -> int16
