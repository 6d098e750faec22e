"""Objects named "package.module:attribute" (fmlib.named): found, or an error naming the field and
what is wrong (the form, the module, the attribute, not callable)."""

from __future__ import annotations

import pytest

from fmlib.named import is_named, resolve, resolve_callable
from tests import user_parts


def test_a_name_with_a_colon_is_a_named_object_and_a_built_in_name_is_not():
    assert is_named("tests.user_parts:mlp") and not is_named("mlp") and not is_named(3)


def test_resolve_finds_module_attributes_and_dotted_ones():
    assert resolve("tests.user_parts:mlp", "model") is user_parts.mlp
    assert resolve("tests.user_parts:MLP.forward", "model") is user_parts.MLP.forward
    assert resolve_callable("tests.user_parts:blob_data", "dataset") is user_parts.blob_data


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.user_parts", "model 'tests.user_parts': write 'package.module:attribute'"),
        (":mlp", "write 'package.module:attribute'"),
        ("tests.user_parts:a:b", "write 'package.module:attribute'"),
        (3, "model 3: write 'package.module:attribute'"),
        (
            "tests.no_such_module:f",
            "model 'tests.no_such_module:f': cannot import module 'tests.no_such_module'",
        ),
        (
            "tests.user_parts:MLP.missing",
            "module 'tests.user_parts' has no attribute 'MLP.missing'",
        ),
    ],
)
def test_a_bad_name_says_what_is_wrong_naming_the_field(spec, message):
    with pytest.raises(ValueError) as err:
        resolve(spec, "model")
    assert message in str(err.value)


def test_resolve_callable_refuses_what_cannot_be_called():
    with pytest.raises(
        ValueError,
        match=r"dataset 'tests.user_parts:NOT_CALLABLE' is a int, not a "
        r"factory that can be called",
    ):
        resolve_callable("tests.user_parts:NOT_CALLABLE", "dataset", "factory")
