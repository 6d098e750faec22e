"""Value checks every door of the package shares (configs, the API's arguments, the engines')."""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np


def is_int(value) -> bool:
    """Whether ``value`` is an integer: a Python or NumPy one, never a bool (``True`` is not a
    count here)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


class UserError(Exception):
    """A mistake the user can fix (a bad config field, an unknown strategy, a missing file): the
    command line reports it as one line on stderr and exits with status 2."""


def is_real(value) -> bool:
    """Whether ``value`` is a finite real number (a Python or NumPy one; bools are not numbers)."""
    return (is_int(value) or isinstance(value, (float, np.floating))) and math.isfinite(value)
