"""Per-layer diagnostics: float vs dequantized int8 activations, worst layer first."""

from __future__ import annotations

import pytest
from conftest import Spec, load_npz

from edgernn.validate.diagnostics import first_saturated_layer, per_layer_report

KEYS = {"layer", "kind", "index", "tensor", "snr_db", "cosine", "max_abs_error", "saturated_fraction",
        "clipped_fraction", "scale", "zero_point"}


def test_per_layer_report_on_the_headline_model(zoo):
    _, test = zoo.data("basic_motions")
    x, _ = load_npz(test)
    rows = per_layer_report(zoo.keras(Spec()), zoo.tflite(Spec()), x)
    assert [r["layer"] for r in sorted(rows, key=lambda r: r["index"])] == ["input", "lstm_0", "head"]
    assert all(KEYS <= set(r) for r in rows)
    snrs = [r["snr_db"] for r in rows]
    assert snrs == sorted(snrs), "rows must come worst (lowest SNR) first"
    lstm = next(r for r in rows if r["kind"] == "recurrent")
    assert lstm["tensor"] == "tfl.strided_slice"  # LSTM(return_sequences=False) = its last step
    for r in rows:  # a well-calibrated model: close to float everywhere, nothing clipped
        assert r["cosine"] > 0.99 and r["snr_db"] > 15, r
        assert r["clipped_fraction"] < 0.01, r
    assert first_saturated_layer(rows) is None


@pytest.mark.slow
def test_calibration_at_a_tenth_of_the_scale_is_reported_where_it_starts(zoo, tmp_path):
    import edgernn

    train, test = zoo.data("basic_motions")
    x_train, _ = load_npz(train)
    x, _ = load_npz(test)
    bad = tmp_path / "calib-tenth.tflite"
    edgernn.convert(zoo.keras(Spec()), calib=x_train / 10.0, output=bad)
    rows = per_layer_report(zoo.keras(Spec()), bad, x)
    first = first_saturated_layer(rows)
    assert first is not None and first["layer"] == "input" and first["index"] == 0
    assert first["clipped_fraction"] > 0.05 and first["saturated_fraction"] > 0.05
    good = {r["layer"]: r for r in per_layer_report(zoo.keras(Spec()), zoo.tflite(Spec()), x)}
    worse = {r["layer"]: r for r in rows}
    assert worse["input"]["snr_db"] < good["input"]["snr_db"] - 10
