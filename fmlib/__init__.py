"""fmlib: Fisher-information-based active learning, notebook-first."""

__version__ = "0.1.0"
