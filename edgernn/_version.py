"""The package version, a leaf module: the code generators stamp it into every file they write."""

__version__ = "0.1.0"
