"""Child process: rebuild the IR as tf_keras and run the TFLite converter (int8 PTQ)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def convert_in_process(payload: dict) -> dict:
    import numpy as np
    import tensorflow as tf

    from .keras_build import build_tf_keras

    model = payload["model"]
    calib = payload["calib"]
    keras_model = build_tf_keras(model, timesteps=calib.shape[1], batch_size=1)
    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    if payload.get("quantize", True):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib[i:i + 1].astype(np.float32)] for i in range(len(calib)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return {"tflite": conv.convert()}


if __name__ == "__main__":
    from .subprocess_util import child_main

    child_main(convert_in_process)
