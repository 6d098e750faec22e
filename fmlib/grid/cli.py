"""The grid's command line, ``python -m fmlib.grid`` and ``fmlib grid``: arguments into
:func:`fmlib.grid.spec.expand_grid` and :func:`fmlib.grid.runner.run_grid` (or a dry run), a
summary, an exit status."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import fmlib.grid.spec
from fmlib.grid.runner import EXECUTORS, NOTEBOOK, GridInterrupted, dry_run, run_grid, summarize
from fmlib.grid.spec import expand_grid, load_grid
from fmlib.notebook import repo_root


def json_or_text(text: str):
    """A command-line value: JSON when it parses (numbers, true, null, lists, dicts), else the
    text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def assignment(
    text: str, form: str = "FIELD=VALUE (VALUE as JSON or a plain string)"
) -> tuple[str, object]:
    """``KEY=VALUE`` on the command line: the stripped key and :func:`json_or_text` of the value;
    ``argparse.ArgumentTypeError`` naming ``form`` when there is no ``=`` or no key."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected {form}, got {text!r}")
    return key.strip(), json_or_text(value)


def usage_examples(doc: str | None = None) -> str:
    """The command lines under "Usage" in a module docstring (default :mod:`fmlib.grid.spec`'s),
    shown by ``--help``."""
    doc = fmlib.grid.spec.__doc__ if doc is None else doc
    text = (doc or "").split("Usage", 1)[-1].split("::\n\n", 1)[-1]
    return text.split("\n\n", 1)[0] + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fmlib.grid",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Execute notebooks/active_learning.ipynb with papermill once per run of a grid: every\n"
            "combination of the grid's axis values (dataset x imbalance x strategy x seed x ...),\n"
            "each in its own directory under --output. Runs that finished with the same config\n"
            "are skipped; the others are (re-)executed and resume from their checkpoint. A run\n"
            "made with another config (the grid was edited) is stale: reported, not rerun, unless\n"
            "--rerun-stale. A failed run does not stop the grid: its executed notebook stays in\n"
            "its directory to read the error, the summary (also grid_summary.json) lists it and\n"
            "the exit status is 1 (also with stale runs)."
        ),
        epilog=(
            f"examples:\n{usage_examples()}\n"
            "Axis flags (--dataset, --imbalance, --strategy, --seed, --axis) keep the elements of\n"
            "the grid file's axis whose label or value is listed, or add the axis when the grid\n"
            "has none. Values are read as JSON, else as strings. Grid files (grids/*.json) hold\n"
            "'base' config fields and 'axes'; the format:\n"
            "python -c 'import fmlib.grid.spec; help(fmlib.grid.spec)'."
        ),
    )
    p.add_argument(
        "grid", nargs="?", help="grid file (grids/*.json); optional when axis flags give the axes"
    )
    p.add_argument(
        "-o", "--output", help="output tree, one directory per run (default: runs/<grid file name>)"
    )
    p.add_argument(
        "--dataset", nargs="+", type=json_or_text, default=[], help="dataset axis values"
    )
    p.add_argument(
        "--imbalance",
        nargs="+",
        type=json_or_text,
        default=[],
        help="imbalance axis values or variant labels",
    )
    p.add_argument(
        "--strategy",
        nargs="+",
        type=json_or_text,
        default=[],
        help="strategy axis values or labels",
    )
    p.add_argument("--seed", nargs="+", type=json_or_text, default=[], help="seed axis values")
    p.add_argument(
        "--axis",
        action="append",
        default=[],
        type=assignment,
        metavar="NAME=V1,V2",
        help=(
            "any other axis, comma-separated values (or a JSON list), e.g. --axis query_size=35,70"
        ),
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        type=assignment,
        metavar="FIELD=VALUE",
        help=(
            "config field for every run, e.g. --set budget=155 --set"
            " 'train_options={\"epochs\": 5}'"
        ),
    )
    p.add_argument(
        "-j",
        "--workers",
        type=int,
        default=1,
        help="runs at a time: local processes, or the Slurm array parallelism (default 1)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help=(
            "torch threads per run (default: a resumed run's own count, else --cpus, else cores /"
            " workers); results depend on it: a run refuses to resume with another count unless"
            " --set allow_thread_change=true"
        ),
    )
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: process pool with papermill (default); submitit: one job per run (Slurm); "
        "inline: run_experiment in this process, no notebook",
    )
    p.add_argument(
        "--cluster",
        choices=("slurm", "local", "debug"),
        help="submitit cluster: slurm, local (processes on this machine) or debug (this process); "
        "default: Slurm when available, else local",
    )
    p.add_argument("--partition", help="Slurm partition (submitit)")
    p.add_argument("--gpus", type=int, help="GPUs per run (submitit)")
    p.add_argument("--cpus", type=int, help="CPUs per run (submitit); also the torch threads")
    p.add_argument("--mem-gb", type=float, help="memory per run in GB (submitit)")
    p.add_argument("--timeout", type=int, help="minutes per run (submitit)")
    p.add_argument(
        "--notebook",
        default=str(NOTEBOOK),
        help="notebook to execute per run (default: %(default)s)",
    )
    p.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's)")
    p.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help=(
            "list the runs, their status (new, partial, done, stale: with how the config changed)"
            " and every problem of invalid configs; run nothing; exit status 1 when a config is"
            " invalid or a run stale"
        ),
    )
    p.add_argument(
        "--rerun-stale",
        action="store_true",
        help="move the directory of every stale run (made with another config) aside to "
        "<output>/.stale/<name>.<time> (never deleted) and run it again",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """The command line; returns the exit status (1: a run failed or is stale; 2: bad grid or
    arguments, one line ``error: ...``, ``<prog>: error: ...`` when ``prog`` is given (``fmlib
    grid``); 128 + N: stopped by signal N)."""
    args = parser().parse_args(argv)

    def error(err) -> int:
        print(f"{prog + ': ' if prog else ''}error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2

    for name in ("workers", "threads", "cpus", "gpus", "timeout"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "gpus" else 1):
            return error(
                f"--{name} must be an integer >= {0 if name == 'gpus' else 1}, got {value}"
            )
    if args.mem_gb is not None and not args.mem_gb > 0:
        return error(f"--mem-gb must be a number > 0, got {args.mem_gb}")
    select = {
        "dataset": args.dataset,
        "imbalance": args.imbalance,
        "strategy": args.strategy,
        "seed": args.seed,
    }
    for name, values in args.axis:
        select[name] = (
            [json_or_text(v) for v in values.split(",")] if isinstance(values, str) else values
        )
        select[name] = select[name] if isinstance(select[name], list) else [select[name]]
    try:
        grid = load_grid(args.grid) if args.grid else {}
        runs = expand_grid(grid, select=select, overrides=dict(args.set))
    except (OSError, ValueError) as err:
        return error(err)
    output = (
        Path(args.output)
        if args.output
        else repo_root() / "runs" / (Path(args.grid).stem if args.grid else "grid")
    )
    if args.dry_run:
        return dry_run(runs, output)
    options = {
        "cluster": args.cluster,
        "partition": args.partition,
        "gpus": args.gpus,
        "cpus": args.cpus,
        "mem_gb": args.mem_gb,
        "timeout": args.timeout,
    }
    try:
        outcomes = run_grid(
            runs,
            output,
            notebook=args.notebook,
            workers=args.workers,
            executor=args.executor,
            threads=args.threads,
            kernel_name=args.kernel,
            submitit=options,
            progress=not args.no_progress,
            rerun_stale=args.rerun_stale,
        )
    except (FileNotFoundError, ImportError, ValueError) as err:
        return error(err)
    except GridInterrupted as err:
        print(summarize(err.outcomes), file=sys.stderr)
        print(
            f"{prog or 'grid'}: {err}: workers stopped, summary in {output}; rerun to resume",
            file=sys.stderr,
        )
        return 128 + err.signum
    print(summarize(outcomes))
    print(f"outputs: {output}")
    return 1 if any(o.status in ("failed", "stale") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
