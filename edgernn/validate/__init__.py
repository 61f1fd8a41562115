"""``edgernn.validate``: float vs int8 on a dataset, with thresholds that fail a CI job."""

from .gates import check_threshold
from .validator import THRESHOLDS, Check, ValidateReport, load_thresholds
from .validator import validate as validate_with_model


def validate(model, quant, data, **options) -> ValidateReport:
    """Validate the int8 ``quant`` (.tflite) on ``data`` (.npz) against the float ``model``
    (:func:`.validator.validate`: thresholds, engines, reports). ``model=None`` validates a
    ``.tflite`` alone (:func:`.engines.validate_engines`): its engines against each other
    (``max_engine_lsb``, 0 by default with two or more) and ``min_accuracy``."""
    if model is None:
        from .engines import validate_engines

        return validate_engines(quant, data, **options)
    return validate_with_model(model, quant, data, **options)


__all__ = ["THRESHOLDS", "Check", "ValidateReport", "check_threshold", "load_thresholds", "validate",
           "validate_with_model"]
