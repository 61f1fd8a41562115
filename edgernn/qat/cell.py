"""The QAT cell: Keras' LSTM / GRU / SimpleRNN cell with fake quantization inside the recurrence.

tfmot's ``QuantizeConfig`` reaches a layer's weights and output but not the hidden state fed
back at each step, the LSTM cell state or the GRU's gate products, so the recurrent layers of
the QAT model are ``tf_keras.layers.RNN`` over :class:`QATCell`: Keras' equations (same weight
layout and gate order) with a quantizer at each tensor the integer kernels store. Three
layouts, after :func:`edgernn.backends.tflm.convert.conversion_strategy` and ``convert
--state``: the fused int8 LSTM (int16 gates and cell state), and the WHILE graphs of
:mod:`edgernn.backends.tflm.cells`: int16 (one FULLY_CONNECTED per input side, int16 state
and step arithmetic, the layer's int8 output a QUANTIZE of h, except a final h read by a
Dense: that reads the int16 h, its int16 logits then QUANTIZEd, which the Dense's int8
output quantizer stands for) or int8 (one FULLY_CONNECTED
per gate, every sum and product int8).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as tfk

from .. import ir
from ..quantize.params import CELL_HEADROOM, LOGISTIC_OUT, SATURATING_RANGE, SATURATING_RANGE_INT16, TANH_OUT
from .quantizers import (FixedRangeQuantizer, PowerOfTwoQuantizer, RangeQuantizer, SaturatingRangeQuantizer,
                         SymmetricRangeQuantizer)

GATE_INT16_SCALE = 2.0 ** -12  # TFLM integer LSTM: gate pre-activations (nonlinear input)
LOGISTIC_INT8 = LOGISTIC_OUT.int8_range  # int8 LOGISTIC output: scale 1/256, zero point -128
TANH_INT8 = TANH_OUT.int8_range  # int8 TANH output: scale 1/128, zero point 0


@tfk.utils.register_keras_serializable(package="edgernn_qat")
class InputQuant(tfk.layers.Layer):
    """Identity; annotated so that its output (the model input) is quantized."""

    def call(self, inputs):
        return tf.identity(inputs)


@tfk.utils.register_keras_serializable(package="edgernn_qat")
class QATCell(tfk.layers.Layer):
    """Keras' LSTM / GRU / SimpleRNN cell with fake quantization inside the recurrence.

    ``mode``: what its quantizers do (:data:`~.quantizers.ROUND` or an observing mode).
    """

    def __init__(self, cell: str, units: int, activation: str = "tanh", reset_after: bool = True,
                 fused: bool = False, *, mode: str, state: str = "int16", return_sequences: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.cell, self.units, self.activation_name, self.reset_after = cell, int(units), activation, reset_after
        self.fused = bool(fused)
        self.mode = mode
        self.state = state
        # int16: every step's int8 h is quantized (h8) only when the layer returns sequences;
        # else only the final one is, by the layer's output quantizer (.model)
        self.return_sequences = bool(return_sequences)
        self.state_size = [self.units, self.units] if cell == "lstm" else [self.units]
        self.output_size = self.units

    def build(self, input_shape):
        g = ir.GATES[self.cell] * self.units
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), g))
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(self.units, g))
        bias_shape = (2, g) if self.cell == "gru" and self.reset_after else (g,)
        self.bias = self.add_weight(name="bias", shape=bias_shape, initializer="zeros")
        self.float_weights = [self.kernel, self.recurrent_kernel, self.bias]  # survive tfmot's swap
        self.points: dict[str, tuple] = {}
        for name, q in self._point_specs():
            self.points[name] = (q, q.build(None, name, self))
        self.built = True

    def _point_specs(self):
        mode = self.mode
        r8 = RangeQuantizer(mode, 8)
        sig, tanh = FixedRangeQuantizer(mode, *LOGISTIC_INT8), FixedRangeQuantizer(mode, *TANH_INT8)
        if self.cell == "lstm" and self.fused:
            return [("gates", FixedRangeQuantizer(mode, -8.0, 8.0 - GATE_INT16_SCALE, 16)),
                    ("cell_state", PowerOfTwoQuantizer(mode)), ("h", r8)]
        if self.state == "int16":
            return self._int16_point_specs()
        # the converter's int8 WHILE graphs (edgernn.backends.tflm.cells): pre-activations
        # read only by LOGISTIC / TANH on their clipped ranges, a GRU's / LSTM's h on
        # TANH's fixed grid (|h| < 1)
        pre_sig = SaturatingRangeQuantizer(mode, *SATURATING_RANGE["LOGISTIC"])
        pre_tanh = SaturatingRangeQuantizer(mode, *SATURATING_RANGE["TANH"])
        gates = {"lstm": "ifco", "gru": "zrh", "rnn": "h"}[self.cell]
        pts = [(f"x_{g}", r8) for g in gates]
        rec = gates if (self.cell != "gru" or self.reset_after) else "zr"
        pts += [(f"h_{g}", r8) for g in rec] + [("sigmoid", sig), ("tanh", tanh)]
        if self.cell == "rnn":
            pts += [("h", r8)] if self.activation_name == "relu" else [("pre", pre_tanh)]
        elif self.cell == "lstm":
            pts += [(f"{g}_pre", pre_tanh if g == "c" else pre_sig) for g in gates]
            pts += [("f_c", r8), ("i_g", r8), ("c", r8), ("h", tanh)]
        else:
            pts += [("z_pre", pre_sig), ("r_pre", pre_sig), ("hc_pre", pre_tanh), ("z_d", r8), ("h", tanh),
                    ("h_minus_hc", FixedRangeQuantizer(mode, -2.0, 127.0 / 64.0))]  # cells.SUB_OUT
            pts += [("r_hh", r8)] if self.reset_after else [("rh", r8), ("hh", r8)]
        return pts

    def _int16_point_specs(self):
        """The int16 layout's points (names as :mod:`edgernn.backends.tflm.cells` names the
        tensors): merged projections and step tensors symmetric int16 on calibrated ranges,
        gate outputs and bounded states on the Q15 grid, a GRU's h - hc on 2^-14, the layer's
        int8 output ``h8`` on TANH's 1/128 grid (calibrated for relu)."""
        mode = self.mode
        s16 = SymmetricRangeQuantizer(mode, 16)
        q15 = FixedRangeQuantizer(mode, -1.0, 1.0 - 2.0 ** -15, 16)
        sig16 = SymmetricRangeQuantizer(mode, 16, *SATURATING_RANGE_INT16["LOGISTIC"])
        tanh16 = SymmetricRangeQuantizer(mode, 16, *SATURATING_RANGE_INT16["TANH"])
        relu = self.cell == "rnn" and self.activation_name == "relu"
        pts = [("X", s16), ("q15", q15)]
        if self.return_sequences:
            pts.append(("h8", RangeQuantizer(mode, 8) if relu else FixedRangeQuantizer(mode, *TANH_INT8)))
        # SUM_SCALE: an ADD's FC terms all on the point "X" (one range over them, as convert
        # ties them), the sums' ranges set from it after calibration (sum_groups)
        d14 = FixedRangeQuantizer(mode, -2.0, 2.0 - 2.0 ** -14, 16)  # a GRU's h - hc and z (h - hc)
        if self.cell == "gru":
            pts += [("zr_pre", sig16), ("hc_pre", tanh16), ("z_d", d14), ("h_minus_hc", d14)]
            pts += [] if self.reset_after else [("rh", s16)]
        elif self.cell == "lstm":
            # f * c on c's grid (one range over both, as convert ties them), i * g on Q15
            pts += [("pre", sig16), ("c", SymmetricRangeQuantizer(mode, 16, headroom=CELL_HEADROOM))]
        else:
            pts += [("H", s16), ("h", s16)] if relu else [("h_pre", tanh16)]
        return pts

    def sum_groups(self) -> list[tuple[str, list[tuple[str, float]]]]:
        """SUM_SCALE's (terms point, [(sum point, its activation's saturating range)]) of the
        int16 layout (:func:`edgernn.quantize.params.sum_ranges`); a relu SimpleRNN has none."""
        if self.state != "int16" or (self.cell == "lstm" and self.fused):
            return []
        sig, tanh = SATURATING_RANGE_INT16["LOGISTIC"][1], SATURATING_RANGE_INT16["TANH"][1]
        if self.cell == "gru":
            return [("X", [("zr_pre", sig), ("hc_pre", tanh)])]
        if self.cell == "lstm":
            return [("X", [("pre", sig)])]
        return [] if self.activation_name == "relu" else [("X", [("h_pre", tanh)])]

    def _call_int16(self, inputs, states):
        """One step of the int16 layout (see :mod:`edgernn.backends.tflm.cells`): returns the
        int8 output and the new int16 states."""
        h_prev = states[0]
        k, rk, b = self.kernel, self.recurrent_kernel, self.bias
        u, q = self.units, self.q
        if self.cell == "gru":
            if self.reset_after:  # the recurrent z, r biases fold into the input side
                bx = b[0] + tf.concat([b[1][:2 * u], tf.zeros([u], b.dtype)], 0)
            else:
                bx = b
            x_all = q("X", tf.matmul(inputs, k) + bx)
            h_zr = q("X", tf.matmul(h_prev, rk[:, :2 * u]))
            zr = q("q15", tf.sigmoid(q("zr_pre", x_all[:, :2 * u] + h_zr)))
            z, r = zr[:, :u], zr[:, u:]
            if self.reset_after:
                rhh = q("X", r * q("X", tf.matmul(h_prev, rk[:, 2 * u:]) + b[1][2 * u:]))
            else:
                rhh = q("X", tf.matmul(q("rh", r * h_prev), rk[:, 2 * u:]))
            hc = q("q15", tf.tanh(q("hc_pre", x_all[:, 2 * u:] + rhh)))
            h = q("q15", hc + q("z_d", z * q("h_minus_hc", h_prev - hc)))
            return self._int8(h), [h]
        x_all = q("X", tf.matmul(inputs, k) + b)
        relu = self.cell == "rnn" and self.activation_name == "relu"
        h_all = q("H" if relu else "X", tf.matmul(h_prev, rk))
        if self.cell == "lstm":
            pre = q("pre", x_all + h_all)
            zi, zf, zc, zo = tf.split(pre, 4, axis=-1)
            c = q("c", q("c", q("q15", tf.sigmoid(zf)) * states[1]) +
                  q("q15", q("q15", tf.sigmoid(zi)) * q("q15", tf.tanh(zc))))
            h = q("q15", q("q15", tf.sigmoid(zo)) * q("q15", tf.tanh(c)))
            return self._int8(h), [h, c]
        if self.activation_name == "relu":
            h = q("h", tf.nn.relu(x_all + h_all))
        else:
            h = q("q15", tf.tanh(q("h_pre", x_all + h_all)))
        return self._int8(h), [h]

    def _int8(self, h):
        """The layer's int8 output of a step (QUANTIZE of h), when the layer returns sequences."""
        return self.q("h8", h) if self.return_sequences else h

    def q(self, name, x):
        quantizer, weights = self.points[name]
        return quantizer(x, None, weights)

    def call(self, inputs, states, training=None):
        h_prev = states[0]
        k, rk, b = self.kernel, self.recurrent_kernel, self.bias
        u, q = self.units, self.q
        if self.cell == "lstm" and self.fused:  # UNIDIRECTIONAL_SEQUENCE_LSTM, int8 x/h, int16 gates/c
            z = q("gates", tf.matmul(inputs, k) + tf.matmul(h_prev, rk) + b)
            zi, zf, zc, zo = tf.split(z, 4, axis=-1)
            c = q("cell_state", tf.sigmoid(zf) * states[1] + tf.sigmoid(zi) * tf.tanh(zc))
            h = q("h", tf.sigmoid(zo) * tf.tanh(c))
            return h, [h, c]
        if self.state == "int16":
            return self._call_int16(inputs, states)
        # the int8 WHILE graphs of edgernn.backends.tflm.cells: one FULLY_CONNECTED per gate
        b_in = b[0] if b.shape.rank == 2 else b

        def proj(gi, g, rec=True, rec_bias=False):
            sl = slice(gi * u, (gi + 1) * u)
            xo = q(f"x_{g}", tf.matmul(inputs, k[:, sl]) + b_in[sl])
            if not rec:
                return xo, None
            ho = tf.matmul(h_prev, rk[:, sl]) + (b[1][sl] if rec_bias else 0.0)
            return xo, q(f"h_{g}", ho)

        if self.cell == "rnn":
            xo, ho = proj(0, "h")
            if self.activation_name == "relu":
                h = q("h", tf.nn.relu(xo + ho))
            else:
                h = q("tanh", tf.tanh(q("pre", xo + ho)))
            return h, [h]
        if self.cell == "lstm":
            acts = []
            for gi, g in enumerate("ifco"):
                pre = q(f"{g}_pre", tf.add(*proj(gi, g)))
                acts.append(q("tanh", tf.tanh(pre)) if g == "c" else q("sigmoid", tf.sigmoid(pre)))
            i_, f_, g_, o_ = acts
            c = q("c", q("f_c", f_ * states[1]) + q("i_g", i_ * g_))
            h = q("h", o_ * q("tanh", tf.tanh(c)))
            return h, [h, c]
        ra = self.reset_after  # GRU, gates z r h
        zg = q("sigmoid", tf.sigmoid(q("z_pre", tf.add(*proj(0, "z", rec_bias=ra)))))
        rg = q("sigmoid", tf.sigmoid(q("r_pre", tf.add(*proj(1, "r", rec_bias=ra)))))
        if ra:  # hh = tanh(W_h x + b_h + r * (U_h h + b_rh))
            xh, hh = proj(2, "h", rec_bias=True)
            rhh = q("r_hh", rg * hh)
        else:  # hh = tanh(W_h x + b_h + U_h (r * h))
            xh, _ = proj(2, "h", rec=False)
            rhh = q("hh", tf.matmul(q("rh", rg * h_prev), rk[:, 2 * u:]))
        hc = q("tanh", tf.tanh(q("hc_pre", xh + rhh)))
        h = q("h", hc + q("z_d", zg * q("h_minus_hc", h_prev - hc)))  # z*h + (1-z)*hc
        return h, [h]

    def get_config(self):
        cfg = super().get_config()
        cfg.update(cell=self.cell, units=self.units, activation=self.activation_name,
                   reset_after=self.reset_after, fused=self.fused, mode=self.mode, state=self.state,
                   return_sequences=self.return_sequences)
        return cfg
