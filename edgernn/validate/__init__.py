"""``edgernn.validate``: float vs int8 on a dataset, with thresholds that fail a CI job."""

from .validator import THRESHOLDS, Check, ValidateReport, load_thresholds, validate

__all__ = ["THRESHOLDS", "Check", "ValidateReport", "load_thresholds", "validate"]
