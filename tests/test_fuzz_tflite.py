"""Fuzzing the readers of untrusted .tflite files (issue 13 §3): mutated flatbuffers go through
the flatbuffer reader (:func:`edgernn.tflite_model.parse`), the simulator's model loading and
the native backend's planner. Each either works or raises :class:`EdgeRNNError`; any other
exception fails the test.

Hypothesis drives the mutations (byte overwrites and bit flips, 32-bit fields set to boundary
values, truncation), biased towards the flatbuffer's tables and vtables rather than the weight
bytes, where a change only changes a weight. The run is time-boxed: ``EDGERNN_FUZZ_SECONDS``
(default 8) per seed model, the examples tried so far count; ``EDGERNN_FUZZ_EXAMPLES`` raises
the example cap for a longer local run. No example database is written.
"""

from __future__ import annotations

import os
import time

import pytest

from conftest import Spec

from hypothesis import HealthCheck, given, settings, strategies as st

from edgernn import tflite_model
from edgernn.errors import EdgeRNNError

SECONDS = float(os.environ.get("EDGERNN_FUZZ_SECONDS", "8"))
EXAMPLES = int(os.environ.get("EDGERNN_FUZZ_EXAMPLES", "400"))
BOUNDARY = [0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def load_everything(raw: bytes) -> None:
    """What edgernn does with a .tflite before running it: read it, prepare every simulator
    kernel, plan the native C (both LSTM layouts for fused-LSTM models)."""
    from edgernn.backends.native.emit import build_plan
    from edgernn.simulate.simulator import Simulator

    m = tflite_model.parse(raw, "fuzz.tflite")
    Simulator(m, engine="numpy")
    for kernel in ("reference", "rows") if "WHILE" not in m.op_counts else ("reference",):
        build_plan(m, kernel)


def _structure(raw: bytes) -> list[int]:
    """Byte positions outside the constant buffers' data: tables, vtables, offsets, strings."""
    m = tflite_model.parse(raw)
    data = sorted((raw.find(t.data.tobytes()), t.data.nbytes) for sg in m.subgraphs for t in sg.tensors
                  if t.data is not None and t.data.nbytes >= 16)
    covered = bytearray(len(raw))
    for start, n in data:
        if start >= 0:
            covered[start:start + n] = b"\x01" * n
    return [i for i, c in enumerate(covered) if not c]


def _mutation(raw: bytes, structural: list[int]):
    pos = st.one_of(st.sampled_from(structural), st.integers(0, len(raw) - 1))
    return st.lists(st.one_of(
        st.tuples(st.just("set"), pos, st.integers(0, 255)),
        st.tuples(st.just("flip"), pos, st.integers(0, 7)),
        st.tuples(st.just("u32"), pos, st.sampled_from(BOUNDARY + [len(raw), len(raw) - 4])),
        st.tuples(st.just("cut"), pos, st.just(0)),
    ), min_size=1, max_size=4)


def _apply(raw: bytes, ops) -> bytes:
    b = bytearray(raw)
    for kind, pos, v in ops:
        pos = min(pos, len(b) - 1)
        if pos < 0:
            break
        if kind == "set":
            b[pos] = v
        elif kind == "flip":
            b[pos] ^= 1 << v
        elif kind == "u32":
            pos -= pos % 4
            b[pos:pos + 4] = v.to_bytes(4, "little")
        else:
            del b[pos:]
    return bytes(b)


@pytest.mark.parametrize("spec", [pytest.param(Spec(), id="fused-lstm"),
                                  pytest.param(Spec(cell="gru", layers=2), id="gru-while")])
def test_mutated_flatbuffers_give_edgernn_error_or_load(zoo, spec):
    raw = zoo.tflite(spec).read_bytes()
    load_everything(raw)  # the seed loads (and warms up the imports outside the time box)
    structural = _structure(raw)
    assert 0 < len(structural) < len(raw)
    outcome = {"loaded": 0, "refused": 0}
    deadline = time.monotonic() + SECONDS

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(_mutation(raw, structural))
    def fuzz(ops):
        if time.monotonic() > deadline:
            return
        try:
            load_everything(_apply(raw, ops))
        except EdgeRNNError as exc:
            assert "\n" not in str(exc)
            outcome["refused"] += 1
        else:
            outcome["loaded"] += 1

    fuzz()
    # the box held examples, and the mutations reached the reader's refusals
    assert outcome["refused"] >= 1 and sum(outcome.values()) >= 3, outcome


def test_every_single_byte_of_the_header_and_root_table(zoo):
    """Exhaustive on the first 48 bytes (root offset, identifier, the root table and its
    vtable): three values of each byte, each refused in one line or read."""
    raw = zoo.tflite(Spec(cell="gru", layers=2)).read_bytes()
    tflite_model.parse(raw)
    for pos in range(48):
        for v in (0x00, 0xFF, raw[pos] ^ 0x10):
            b = bytearray(raw)
            b[pos] = v
            try:
                tflite_model.parse(bytes(b), "fuzz.tflite")
            except EdgeRNNError as exc:
                assert "\n" not in str(exc)
