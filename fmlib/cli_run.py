"""``fmlib run``'s config from its arguments: the fields of a JSON file (``--config``), the flags
and ``--set``, merged in that order (:func:`config_values`), then validated with a default output
folder (:func:`build_config`). Mistakes are :class:`~fmlib.checks.UserError`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fmlib.checks import UserError
from fmlib.grid.cli import assignment
from fmlib.grid.spec import slug


def read_config_file(path) -> dict:
    """Config fields from a JSON file: an object of fields, or a run directory's ``config.json``
    (``{"config": {...}, "fmlib_version": ...}``)."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} not found") from None
    except OSError as err:
        raise UserError(f"cannot read config file {path}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise UserError(f"config file {path} is not valid JSON: {err}") from None
    except UnicodeDecodeError as err:
        raise UserError(
            f"config file {path} is not UTF-8 text (byte {err.start}: {err.reason})"
        ) from None
    if (
        isinstance(values, dict)
        and isinstance(values.get("config"), dict)
        and "fmlib_version" in values
    ):
        values = values["config"]  # a run directory's config.json
    if not isinstance(values, dict):
        raise UserError(
            f"config file {path} must hold a JSON object of config fields, got"
            f" {type(values).__name__}"
        )
    return values


def config_values(args: argparse.Namespace) -> dict:
    """Config fields from ``--config``, the flags and ``--set``, in that order of precedence (last
    wins)."""
    values = read_config_file(args.config) if args.config else {}
    from fmlib.config import OPTION_FIELDS  # after reading the file: a bad one is reported at once

    for name in ("dataset", "imbalance", "model", "strategy", "seed", "device"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    for key, value in args.set:
        name, dot, sub = key.partition(".")
        if dot and name in OPTION_FIELDS:
            old = values.get(name) or {}
            # a non-dict is reported by validate
            values[name] = {**old, sub: value} if isinstance(old, dict) else old
        elif dot:
            raise UserError(
                f"--set {key}: FIELD.KEY is for {list(OPTION_FIELDS)}; set other fields as"
                " FIELD=VALUE"
            )
        else:
            values[name] = value
    if args.output:
        values["output_dir"] = args.output
    if args.no_progress:
        values["progress"] = False
    return values


def build_config(args: argparse.Namespace, built: dict | None = None):
    """The validated :class:`~fmlib.ExperimentConfig` of ``fmlib run``'s arguments (``UserError``
    when invalid); ``built`` receives the strategy the check built
    (:meth:`~fmlib.ExperimentConfig.problems`)."""
    values = config_values(args)  # before importing torch: a bad config file is reported at once
    from fmlib import ExperimentConfig

    try:
        config = ExperimentConfig.from_dict(values)
        if not config.output_dir:
            name = "-".join(slug(v) for v in (config.dataset, config.imbalance, config.strategy))
            values["output_dir"] = str(
                Path("runs") / f"{name}-seed{slug(config.seed)}{'-smoke' if args.smoke else ''}"
            )
            config = ExperimentConfig.from_dict(values)
        if args.smoke:
            config = _smoke_config(config)
        config.validate(built=built)
    except (TypeError, ValueError) as err:
        raise UserError(str(err)) from None
    return config


def _smoke_config(config):
    from fmlib.config import smoke_config

    return smoke_config(config)


def field_assignment(text: str) -> tuple[str, object]:
    """``--set FIELD=VALUE`` or ``FIELD.KEY=VALUE`` (:func:`fmlib.grid.cli.assignment`)."""
    return assignment(text, "FIELD=VALUE or FIELD.KEY=VALUE (VALUE as JSON or a string)")
