"""Explicit registries filled by decorators (frontend layer handlers, simulator kernels)."""

from __future__ import annotations


def registrar(table: dict, what: str):
    """A decorator factory: ``@reg("A", "B")`` files the decorated object under each key.

    A key registered twice is a programming error and raises at import time.
    """

    def register(*keys: str):
        def deco(obj):
            for key in keys:
                if key in table:
                    raise RuntimeError(f"two {what} registered for {key}: {table[key]!r} and {obj!r}")
                table[key] = obj
            return obj
        return deco

    return register
