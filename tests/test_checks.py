"""is_int: Python and NumPy integers are integers; bools, floats and strings are not."""

import numpy as np
import pytest

from fmlib.checks import is_int, is_real


@pytest.mark.parametrize("value", [0, -3, 2**70, np.int64(5), np.uint8(1)], ids=repr)
def test_integers_are_integers(value):
    assert is_int(value)


@pytest.mark.parametrize("value", [True, np.bool_(False), 1.0, np.float64(2), "3", None], ids=repr)
def test_bools_floats_and_strings_are_not(value):
    assert not is_int(value)


def test_every_door_checks_counts_with_the_one_definition():
    import fmlib.config
    import fmlib.experiment
    import fmlib.fisher.greedy

    for module in (fmlib.config, fmlib.experiment, fmlib.fisher.greedy):
        assert module.is_int is is_int and not hasattr(module, "_is_int"), module.__name__


@pytest.mark.parametrize(
    "value", [0, -2, 1.5, np.float32(0.25), np.float64(-1e300), np.int32(3)], ids=repr
)
def test_finite_reals_are_reals(value):
    assert is_real(value)


@pytest.mark.parametrize(
    "value",
    [True, np.bool_(True), float("nan"), float("inf"), -np.inf, np.float64("nan"), "1", None, 1j],
    ids=repr,
)
def test_bools_non_finite_numbers_and_strings_are_not_reals(value):
    assert not is_real(value)
