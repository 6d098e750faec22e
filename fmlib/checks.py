"""Value checks every door of the package shares (configs, the API's arguments, the engines')."""

from __future__ import annotations

from numbers import Integral


def is_int(value) -> bool:
    """Whether ``value`` is an integer: a Python or NumPy one, never a bool (``True`` is not a
    count here)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


class UserError(Exception):
    """A mistake the user can fix (a bad config field, an unknown strategy, a missing file): the
    command line reports it as one line on stderr and exits with status 2."""
