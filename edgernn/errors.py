"""One exception type for everything a user can get wrong.

Every stage raises :class:`EdgeRNNError` with a single line that names the file, layer or
option at fault and says what would work. The CLI prints that line and exits with
``EXIT_USAGE``; anything else is a bug and shows a traceback.
"""

EXIT_OK = 0
EXIT_THRESHOLD = 1  # validate: a metric broke its threshold
EXIT_USAGE = 2  # bad input, bad option, unsupported model


class EdgeRNNError(Exception):
    """A user-facing error: one line, no traceback."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class UnsupportedLayerError(EdgeRNNError):
    """The model holds a layer or a layer option edgernn cannot lower."""


class ConversionError(EdgeRNNError):
    """The TFLite converter failed or crashed."""


class UnsafeModelError(UnsupportedLayerError):
    """A model file holds code (a Lambda, a serialized function) or a custom object: refused before loading."""
