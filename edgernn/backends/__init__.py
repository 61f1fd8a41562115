"""Backends: turn the (quantized) model into something a microcontroller runs."""
