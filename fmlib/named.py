"""Objects named ``"package.module:attribute"``: how a config, the CLI, papermill and the grid reach
a user's strategy class, dataset factory or model factory (plain strings travel through JSON)."""

from __future__ import annotations

import importlib


def is_named(value) -> bool:
    """Whether ``value`` is written as ``"package.module:attribute"`` (not a built-in name)."""
    return isinstance(value, str) and ":" in value


def resolve(spec: str, field: str, what: str = "attribute"):
    """The object ``spec = "package.module:attr"`` names (``attr`` may be dotted, ``Outer.inner``),
    imported here. ``ValueError`` naming ``field`` says what is wrong: the form, a module that does
    not import, or a missing attribute."""
    module_name, _, attr = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not module_name or not attr or ":" in attr:
        raise ValueError(f"{field} {spec!r}: write 'package.module:{what}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"{field} {spec!r}: cannot import module {module_name!r} ({err})"
        ) from None
    found = module
    for part in attr.split("."):
        if not hasattr(found, part):
            raise ValueError(f"{field} {spec!r}: module {module_name!r} has no attribute {attr!r}")
        found = getattr(found, part)
    return found


def resolve_callable(spec: str, field: str, what: str = "function"):
    """:func:`resolve`, and ``ValueError`` unless the object can be called."""
    found = resolve(spec, field, what)
    if not callable(found):
        raise ValueError(
            f"{field} {spec!r} is a {type(found).__name__}, not a {what} that can be called"
        )
    return found
