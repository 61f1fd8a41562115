"""Registries refuse a second registration for the same key."""

import pytest

from edgernn.frontend.keras import SUPPORTED_LAYERS, handles
from edgernn.registry import registrar
from edgernn.simulate.ops import KERNELS


def test_duplicate_key_refused():
    table = {}
    reg = registrar(table, "things")
    reg("A", "B")(len)
    assert table == {"A": len, "B": len}
    with pytest.raises(RuntimeError, match="two things registered for B"):
        reg("B")(max)


def test_existing_registries_are_filled():
    assert {"LSTM", "GRU", "SimpleRNN", "Bidirectional", "Dense"} <= set(SUPPORTED_LAYERS)
    assert {"UNIDIRECTIONAL_SEQUENCE_LSTM", "WHILE", "FULLY_CONNECTED", "FILL"} <= set(KERNELS)
    with pytest.raises(RuntimeError, match="LSTM"):
        handles("LSTM")(lambda layer, width: [])
