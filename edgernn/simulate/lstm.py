"""The fused int8 LSTM kernel of the simulator (``UNIDIRECTIONAL_SEQUENCE_LSTM``).

One class mirroring TFLM's integer LSTM, registered with :func:`.ops.kernel` like every other
kernel; the kernel base and the helpers it uses are in :mod:`.ops`.
"""

from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from .ops import (ACT_SIGMOID, ACT_TANH, Kernel, StridedSlice, Val, _QRANGE, f32, int_matmul, kernel, lut16, scale_of,
                  zp_of)


@kernel("UNIDIRECTIONAL_SEQUENCE_LSTM")
class UnidirectionalSequenceLstm(Kernel):
    """TFLM's integer LSTM (int8 activations, int8 weights, int16 cell: "int8x8_16").

    Per time step, for gate g in (input, forget, cell, output) — see TFLM lstm_eval.h::LstmStep:

    * ``pre_g = sat16( FC_x(x_t) + FC_h(h) )``: two int8->int16 fully connected layers, each
      requantized to Q3.12 (scale 2^-12) with its own multiplier (input FC carries the bias,
      the recurrent FC has none), saturating int16 add;
    * ``i, f, o = sigmoid16(pre)`` and ``g = tanh16(pre)`` (the LUT activations in Q0.15);
    * ``c = sat16( f*c  +  i*g )`` each product requantized to the cell scale, then clipped to
      ``+-cell_clip`` when set;
    * ``h = int8( tanh16(c) * o )`` requantized to the hidden state's scale and zero point.

    Exact (0 LSB) for every input. Batch-major (``time_major=False``) and time-major inputs,
    no peephole, projection or layer norm (TFLM's micro kernel refuses those too).
    """

    GATES = ("input", "forget", "cell", "output")

    def __init__(self, sim, sg, op):
        super().__init__(sim, sg, op)
        o = self.opts
        self.time_major = bool(o.timeMajor)
        if any(op.inputs[i] >= 0 for i in list(range(9, 12)) + [16, 17] + list(range(20, 24)) if i < len(op.inputs)):
            self.fail("peephole, projection and layer-norm LSTMs are not supported "
                      "(TFLM's micro kernel refuses them too)")
        x_t, h_t, c_t = self.t_in(0), self.t_in(18), self.t_in(19)
        if x_t.dtype != "int8" or c_t is None or c_t.dtype != "int16":
            self.fail(f"only the int8 x int8 -> int16-cell LSTM is simulated (input {x_t.dtype}, "
                      f"cell {None if c_t is None else c_t.dtype})")
        self.x_zp = zp_of(x_t)
        self.h_zp = zp_of(h_t)
        s_x, s_h, s_c = np.float32(scale_of(x_t)), np.float32(scale_of(h_t)), f32(scale_of(c_t))
        gate_scale = 0.000244140625  # 2^-12: the FC outputs feeding the activations are Q3.12
        wx, wh, bias, mx, mh = [], [], [], [], []
        for gi in range(4):
            w_in, w_rec, b = self.t_in(1 + gi), self.t_in(5 + gi), self.t_in(12 + gi)
            if w_in is None or w_rec is None:
                self.fail("CIFG LSTMs (no input gate) are not supported")
            for w in (w_in, w_rec):
                if w.scale is None or len(w.scale) != 1:
                    self.fail(f"weights '{w.name}' must be per-tensor quantized for the LSTM")
            wx.append(w_in.data.astype(np.int64))
            wh.append(w_rec.data.astype(np.int64))
            bias.append(b.data.astype(np.int64) if b is not None and b.data is not None
                        else np.zeros(w_in.shape[0], np.int64))
            # GetQuantizedConvolutionMultipler: double(input scale) * double(weight scale) / double(2^-12)
            # (a float product loses the low bits of the multiplier: 1 LSB off at rare ties).
            mx.append(fp.quantize_multiplier(float(s_x) * float(np.float32(scale_of(w_in))) / gate_scale))
            mh.append(fp.quantize_multiplier(float(s_h) * float(np.float32(scale_of(w_rec))) / gate_scale))
        self.units = wx[0].shape[0]
        self.wx = np.concatenate(wx, 0)  # (4U, F) rows: gates in TFLite order i, f, c, o
        self.wh = np.concatenate(wh, 0)  # (4U, U)
        self.bias = np.concatenate(bias)
        u = self.units
        self.mx_mult = np.repeat([m for m, _ in mx], u)
        self.mx_shift = np.repeat([s for _, s in mx], u)
        self.mh_mult = np.repeat([m for m, _ in mh], u)
        self.mh_shift = np.repeat([s for _, s in mh], u)
        # Inter-gate multiplications (CreateInterGateMulParams): Q0.15 gate outputs.
        nl_out = 0.000030517578125  # 2^-15
        self.mul_fc = fp.quantize_multiplier(nl_out * s_c / s_c)
        self.mul_ig = fp.quantize_multiplier(nl_out * nl_out / s_c)
        self.mul_h = fp.quantize_multiplier(nl_out * nl_out / float(s_h))
        # CreateLstmCellStateInfo: cell scale power (CheckedLog2) and quantized clip.
        log2 = float(np.float32(np.log(np.float32(s_c))) * np.float32(1.0 / np.log(np.float32(2.0))))
        self.cell_power = int(fp.tflite_round(log2))
        self.cell_clip = float(o.cellClip)
        self.q_cell_clip = int(min(max(self.cell_clip / s_c, -32768.0), 32767.0))
        act = int(o.fusedActivationFunction)
        if act == ACT_TANH:
            cell_act = lambda v: fp.lstm_tanh_int16(v, -12)  # noqa: E731 - "scale power -12 to avoid shift"
        elif act == ACT_SIGMOID:
            cell_act = fp.logistic_int16
        else:
            self.fail(f"cell gate activation {act} is not supported (TFLM supports tanh and sigmoid)")
        # 65536-entry tables of the int16 activations (computed by the reference functions).
        self.lut_sigmoid = lut16(fp.logistic_int16)
        self.lut_cell_act = lut16(cell_act)
        self.lut_tanh_cell = lut16(lambda v: fp.lstm_tanh_int16(v, self.cell_power))
        self.h_min, self.h_max = _QRANGE[h_t.dtype]
        # The compiled loop is exact while its int32 dot products cannot overflow and its
        # float64 requantization products stay below 2^51 (see _fast); its left shifts must
        # not overflow int32, as in TFLM's arithmetic.
        from . import _fast
        x_sum = int(np.abs(self.wx).sum(1).max()) * 255
        h_sum = int(np.abs(self.wh).sum(1).max()) * 255
        in_bound = (x_sum + int(np.abs(self.bias).max())) << max(0, int(self.mx_shift.max()))
        rec_bound = h_sum << max(0, int(self.mh_shift.max()))
        self.compiled_exact = bool(in_bound < (1 << 31) and rec_bound < (1 << 31)
                                   and in_bound * int(self.mx_mult.max()) < _fast.FLOAT_EXACT
                                   and rec_bound * int(self.mh_mult.max()) < _fast.FLOAT_EXACT
                                   and max(self.mul_fc[1], self.mul_ig[1], self.mul_h[1]) <= 0)
        self.out_index = op.outputs[0]
        self.state_inputs = (op.inputs[18], op.inputs[19])
        #: Set by :meth:`link` when the graph reads only the last step of the output sequence.
        self.last_step_only = False

    def link(self, kernels: list) -> None:
        """Look at the graph's other kernels: when every reader of the output sequence is a
        STRIDED_SLICE of its last time step (a Keras ``return_sequences=False`` layer), the
        compiled loop writes that step only (the rest of the sequence is left unwritten,
        unless ``run(capture=True)`` asks for every tensor)."""
        steps = self.t_out().shape[0 if self.time_major else 1]
        readers = [k for k in kernels if self.out_index in k.op.inputs]
        self.last_step_only = bool(
            readers and self.out_index not in self.sg.outputs
            and all(isinstance(k, StridedSlice) and k.op.inputs[0] == self.out_index
                    and k.time_steps_read(0 if self.time_major else 1, steps) == {steps - 1} for k in readers))

    def __call__(self, ins):
        xv, hv, cv = ins[0], ins[18], ins[19]
        x = xv.a if xv.batched else xv.a[None]
        if self.time_major:  # (N, T, B, F) -> (N, B, T, F)
            x = np.swapaxes(x, 1, 2)
        n, b, steps, feat = x.shape
        u = self.units
        def state(v):  # one row when every sample starts from the same state (the usual reset)
            if not v.batched and b == 1:
                return np.asarray(v.a, np.int64).reshape(1, u)
            return np.broadcast_to(np.asarray(v.a, np.int64), (n, b, u)).reshape(n * b, u)
        h, c = state(hv), state(cv)
        out = self.run(x.reshape(n * b, steps, feat), h, c).reshape(n, b, steps, u)
        if self.time_major:
            out = np.swapaxes(out, 1, 2)
        h_fin = self.h_last.reshape(n, b, u).astype(np.int8)
        c_fin = self.c_last.reshape(n, b, u).astype(np.int16)
        ht, ct = (self.sg.tensors[i] for i in self.state_inputs)
        self.captured = {f"{ht.name}:final": h_fin, f"{ct.name}:final": c_fin}
        # TFLM updates the state variables in place; stateful runs carry them to the next call.
        self.state_updates = {ht.index: Val(h_fin.reshape((n,) + ht.shape), True),
                              ct.index: Val(c_fin.reshape((n,) + ct.shape), True)}
        return [Val(np.ascontiguousarray(out), True)]

    def gate_preactivations_x(self, x: np.ndarray) -> np.ndarray:
        """Input FC of all gates for all steps: (NB, T, F) -> int16-saturated (NB, T, 4U)."""
        xi = x - self.x_zp
        acc = int_matmul(xi.reshape(-1, xi.shape[-1]), self.wx.T, xi.shape[-1] * 255 * 128 + 1) + self.bias
        pre = fp.multiply_by_quantized_multiplier_fast(acc, self.mx_mult, self.mx_shift)
        return np.clip(pre, -32768, 32767).reshape(x.shape[0], x.shape[1], -1)

    def run(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The integer LSTM over (NB, T, F) inputs from states h (int8 values), c (int16)."""
        if self.sim.engine == "numba" and self.compiled_exact:
            try:
                return self.run_compiled(x, h, c)
            except Exception as exc:
                from . import _fast

                _fast.fall_back(self.sim, "LSTM loop", exc)
        return self.run_numpy(x, h, c)

    def run_compiled(self, x, h, c) -> np.ndarray:
        """The same loop through the numba kernel in :mod:`._fast` (samples in vector lanes)."""
        from . import _fast

        nb, steps, _ = x.shape
        u = self.units
        if not hasattr(self, "_packed"):
            def per_gate(mult, shift):  # multipliers are per tensor: one per gate
                return np.array([_fast.requant_constants(int(mult[g * u]), int(shift[g * u])) for g in range(4)])

            # Largest |FC_h| before saturation, per gate: |h - h_zp| <= its largest int8 distance.
            dev = max(self.h_max - self.h_zp, self.h_zp - self.h_min)
            row_max = (np.abs(self.wh).sum(1) * dev).reshape(4, u).max(1)
            mh = per_gate(self.mh_mult, self.mh_shift)
            saturates = (row_max * mh[:, 0] + 1 > 32767).astype(np.float64)
            self._packed = (
                # int32 sums that wrap in between end exact: TFLM's accumulators fit in int32
                _fast.pack4(self.wx), (self.bias - (128 + self.x_zp) * self.wx.sum(1)).astype(np.int32),
                per_gate(self.mx_mult, self.mx_shift),
                _fast.pack4(self.wh), (-(128 + self.h_zp) * self.wh.sum(1)).astype(np.int32),
                np.column_stack([mh, saturates]),
                np.concatenate([self.lut_sigmoid, self.lut_cell_act]).astype(np.int16),
                np.array([32768, 32768, 65536 + 32768, 32768], np.int32),  # gate order i, f, c, o
                self.lut_tanh_cell.astype(np.int16),
                np.array([_fast.requant_int_constants(*m) for m in (self.mul_fc, self.mul_ig, self.mul_h)], np.int64))
        wx4, x_off, mx, wh4, h_off, mh, lut, lut_off, lut_tc, m3 = self._packed
        last_only = self.last_step_only and self.sim._captured is None and not self.time_major
        # With last_only the earlier steps are never read (not even zeroed: no page is touched).
        out = (np.empty if last_only else np.zeros)((nb, steps, u), np.int8)
        h_last = np.empty((nb, u), np.int64)
        c_last = np.empty((nb, u), np.int64)
        _fast.lstm_int8x8_16(
            np.ascontiguousarray(x, np.int8), wx4, x_off, mx, wh4, h_off, mh, lut, lut_off, lut_tc, m3,
            self.q_cell_clip if self.cell_clip > 0 else 32768, self.h_zp, self.h_min, self.h_max,
            np.ascontiguousarray(h, np.int64), np.ascontiguousarray(c, np.int64),
            _fast.block_size(nb), 8, last_only, out, h_last, c_last)
        self.h_last, self.c_last = h_last, c_last
        return out

    def run_numpy(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Reference numpy form: all samples advance one time step per iteration."""
        x = x.astype(np.int64)
        u = self.units
        nb, steps, _ = x.shape
        pre_x = self.gate_preactivations_x(x)
        out = np.empty((nb, steps, u), np.int8)
        bound_h = u * 255 * 128 + 1
        whT = self.wh.T
        for t in range(steps):
            acc_h = int_matmul(h - self.h_zp, whT, bound_h)
            pre_h = np.clip(fp.multiply_by_quantized_multiplier_fast(acc_h, self.mh_mult, self.mh_shift), -32768, 32767)
            pre = np.clip(pre_x[:, t] + pre_h, -32768, 32767).astype(np.int64) + 32768
            i_g = self.lut_sigmoid[pre[:, 0:u]]
            f_g = self.lut_sigmoid[pre[:, u:2 * u]]
            g_g = self.lut_cell_act[pre[:, 2 * u:3 * u]]
            o_g = self.lut_sigmoid[pre[:, 3 * u:]]
            c = np.clip(fp.multiply_by_quantized_multiplier_fast(f_g * c, *self.mul_fc), -32768, 32767)
            ig = np.clip(fp.multiply_by_quantized_multiplier_fast(i_g * g_g, *self.mul_ig), -32768, 32767)
            c = np.clip(c + ig, -32768, 32767).astype(np.int64)
            if self.cell_clip > 0:
                c = np.clip(c, -self.q_cell_clip, self.q_cell_clip)
            tc = self.lut_tanh_cell[c + 32768]
            h = np.clip(self.h_zp + fp.multiply_by_quantized_multiplier_fast(tc * o_g, *self.mul_h),
                        self.h_min, self.h_max).astype(np.int64)
            out[:, t] = h
        self.h_last, self.c_last = h, c
        return out
