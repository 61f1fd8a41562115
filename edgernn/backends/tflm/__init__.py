"""TFLM backend: int8 flatbuffers for TensorFlow Lite Micro, and firmware sources around them."""
