"""inspect: ops, tensors, quantization, MACs, and the exact minimum TFLM arena."""


import edgernn
from edgernn.backends.tflm import arena


def test_arena_is_exact_minimum(tmp_path, lstm_tflite):
    rep = edgernn.inspect(lstm_tflite)
    n = rep.arena_bytes
    assert 1000 < n < 100_000
    ok, _ = arena._probe(lstm_tflite, n)
    too_small, _ = arena._probe(lstm_tflite, n - 1)
    assert ok and not too_small


def test_report_contents(lstm_tflite, lstm_keras):
    rep = edgernn.inspect(lstm_tflite)
    assert rep.ops == {"UNIDIRECTIONAL_SEQUENCE_LSTM": 1, "STRIDED_SLICE": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1}
    assert rep.flatbuffer_bytes == lstm_tflite.stat().st_size
    assert rep.input["dtype"] == "int8" and isinstance(rep.input["scale"], float)
    assert rep.output["zero_point"] == -128  # softmax output: scale 1/256, zp -128
    ir = edgernn.load_model(lstm_keras)
    assert rep.macs == ir.macs()  # same count from the flatbuffer as from the Keras weights
    lstm = next(r for r in rep.per_op if r["opcode"] == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    assert lstm["macs"] == 100 * (6 + 32) * 4 * 32


def test_keras_inspect_param_counts(lstm_keras):
    import keras
    rep = edgernn.inspect(lstm_keras)
    k = keras.saving.load_model(lstm_keras)
    assert rep.params == k.count_params()
    by_name = {r["name"]: r["params"] for r in rep.layers}
    for layer in k.layers:
        if layer.count_params():
            assert by_name[layer.name] == layer.count_params()
