"""Builtin options of the conv / pooling / reduce / shape ops that :mod:`.layers` writes.

``op.opts`` keys: ``padding`` ("SAME" | "VALID"), ``stride`` and ``dilation`` (H, W),
``filter`` (H, W) for pools, ``depth_multiplier``, ``fused`` (None | "RELU"), ``shape`` for
RESHAPE. Time is the W axis of the ``(1, 1, T, C)`` layout of 1-D layers and the H axis of a
``(1, T, F, C)`` image, as the TFLite converter lays them out.
"""

from __future__ import annotations

_FUSED = {None: 0, "RELU": 1}


def _spatial(o, opts: dict, *, dilation: bool = True) -> None:
    o.padding = {"SAME": 0, "VALID": 1}[opts.get("padding", "VALID")]
    o.strideH, o.strideW = (int(v) for v in opts.get("stride", (1, 1)))
    if dilation:
        o.dilationHFactor, o.dilationWFactor = (int(v) for v in opts.get("dilation", (1, 1)))
    o.fusedActivationFunction = _FUSED[opts.get("fused")]


def layer_options(s, op):
    """(BuiltinOptions type, options object) for ``op``, or None when it is not one of these ops."""
    c, opts = op.code, op.opts
    if c == "CONV_2D":
        o = s.Conv2DOptionsT()
        _spatial(o, opts)
        return s.BuiltinOptions.Conv2DOptions, o
    if c == "DEPTHWISE_CONV_2D":
        o = s.DepthwiseConv2DOptionsT()
        _spatial(o, opts)
        o.depthMultiplier = int(opts.get("depth_multiplier", 1))
        return s.BuiltinOptions.DepthwiseConv2DOptions, o
    if c in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        o = s.Pool2DOptionsT()
        _spatial(o, opts, dilation=False)
        o.filterHeight, o.filterWidth = (int(v) for v in opts["filter"])
        return s.BuiltinOptions.Pool2DOptions, o
    if c in ("MEAN", "REDUCE_MAX"):
        o = s.ReducerOptionsT()
        o.keepDims = False
        return s.BuiltinOptions.ReducerOptions, o
    if c == "RESHAPE":
        o = s.ReshapeOptionsT()
        o.newShape = [int(v) for v in opts["shape"]]
        return s.BuiltinOptions.ReshapeOptions, o
    if c == "PAD":
        return s.BuiltinOptions.PadOptions, s.PadOptionsT()
    if c == "TRANSPOSE":
        return s.BuiltinOptions.TransposeOptions, s.TransposeOptionsT()
    return None
