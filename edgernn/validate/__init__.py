"""``edgernn.validate``: float vs int8 on a dataset, with thresholds that fail a CI job."""

from .validator import Check, ValidateReport, validate

__all__ = ["Check", "ValidateReport", "validate"]
