"""The ``fmlib`` command line: one experiment, a grid, a comparison of runs, the benchmarks.

Usage (``fmlib <command> --help`` shows each command's options; ``python -m fmlib`` is the same)::

    fmlib run --strategy entropy --seed 1 --set query_size=10 --output runs/entropy-seed1
    fmlib run --config my_config.json --output runs/mine
    fmlib run --smoke --strategy fishermask
    fmlib grid grids/fashion_mnist_cpu.json --dry-run
    fmlib compare "runs/fashion_mnist_cpu/*" --output comparison --target 0.85
    fmlib bench --quick
    fmlib notebooks my-notebooks

Mistakes a user can fix (a bad config field, an unknown strategy, a missing file) print one line
``fmlib <command>: error: ...`` to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from fmlib.checks import UserError
from fmlib.cli_run import build_config, field_assignment
from fmlib.grid.cli import usage_examples

COMMANDS = ("run", "grid", "compare", "bench", "notebooks")
BENCHMARKS = ("bench_fisher.py", "bench_select.py")


# ----------------------------------------------------------------------------- fmlib run


RUN_EPILOG = """\
examples:
    fmlib run --strategy entropy --seed 1 --output runs/entropy-seed1
    fmlib run --strategy fishermask --set strategy_options.fraction=0.003 --set budget=295
    fmlib run --config my_config.json --set seed=2      # flags and --set override the file
    fmlib run --config runs/old/config.json --output runs/again  # a run's config.json works too
    fmlib run --smoke --strategy badge                  # a tiny run: a test, not a result
    fmlib run --dataset fashion_mnist --imbalance none --set pool_size=5000 \\
        --set initial_size=100 --set query_size=200 --set budget=1100 \\
        --set train_options='{"epochs": 20}' --device cuda
    fmlib run --dataset mydata:load --imbalance none --model mymodels:mlp \\
        --strategy mystrategies:Mine --set dataset_options.n=5000 \\
        --set model_options.hidden=64                   # your own data, model and strategy

The config is ExperimentConfig's fields (python -c 'import fmlib; help(fmlib.ExperimentConfig)'):
defaults, then --config FILE (a JSON object of fields, or a run's config.json), then the flags,
then every --set in order. VALUE is read as JSON, else as a string (--set budget=null,
--set minority_classes=[0,1], --set strategy=margin); FIELD.KEY=VALUE sets one key of
dataset_options, model_options, strategy_options or train_options. Everything is checked before
the run starts.

Your own parts by name, "module:attribute", imported from the current directory and PYTHONPATH:
--dataset module:function, called as function(**dataset_options), returns (pool, test) torch
Datasets of (x, y); --model module:function, called as function(num_classes, **model_options),
returns an nn.Module (forward -> logits; embed and head for the strategies that need them);
--strategy module:Class, a subclass of fmlib.strategies.Strategy.

Rerunning the same command continues the run directory after its last finished round (a finished
run just reports); a different config there is refused. One line per round shows the labels and
test accuracy; results.json is written when the last round is done. Default --output:
runs/<dataset>-<imbalance>-<strategy>-seed<seed> (with -smoke appended for --smoke).
"""


def _line(text: str) -> None:
    """Print above any tqdm bars (they are cleared and redrawn), so round lines and bars do not
    mix."""
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()


def _tensorboard(log_dir) -> list:
    """A TensorBoard logger of the rounds when ``--tensorboard DIR`` is given."""
    if not log_dir:
        return []
    from fmlib.callbacks import TensorBoardLogger

    try:
        return [TensorBoardLogger(log_dir)]
    except ImportError as err:
        raise UserError(str(err)) from None


def cmd_run(args: argparse.Namespace) -> int:
    from fmlib import run_experiment
    from fmlib.records import RunDirectoryError
    from fmlib.watch import watch_rounds

    if args.max_rounds is not None and args.max_rounds < 1:
        raise UserError(f"--max-rounds must be an integer >= 1, got {args.max_rounds}")
    built = {}  # the strategy validation builds is the run's: built once
    config = build_config(args, built)
    output = Path(config.output_dir)
    print(
        f"{config.strategy} on {config.dataset} (imbalance {config.imbalance!r}, seed"
        f" {config.seed}), labels per round {config.schedule()}"
        + (" [SMOKE: tiny run, not a result]" if args.smoke else "")
    )
    print(f"output: {output.resolve()}", flush=True)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    try:
        with watch_rounds(output, _line, interval=args.interval) as watcher:  # lines from on_round
            callbacks = [watcher, *_tensorboard(args.tensorboard)]
            records = run_experiment(
                config, strategy=built["strategy"], max_rounds=args.max_rounds, callbacks=callbacks
            )
    except (ValueError, FileNotFoundError, RunDirectoryError) as err:
        # failed after rounds ran: keep the traceback
        if watcher.new and not isinstance(err, RunDirectoryError):
            raise
        raise UserError(str(err)) from None
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; {len(watcher.shown)} rounds are recorded in {output}: "
            "rerun the same command to continue",
            file=sys.stderr,
        )
        return 130
    from fmlib.records import RESULTS, planned_rounds, write_results

    if not records.finished:
        print(
            f"stopped after {len(records.rounds)} of {planned_rounds(records.meta)} rounds "
            "(--max-rounds): rerun the same command to continue"
        )
        return 0

    write_results(output, records, smoke=bool(args.smoke))
    summary = json.loads((output / RESULTS).read_text())
    print(
        f"done: {summary['rounds']} rounds, {summary['n_labeled']} labels, final accuracy"
        f" {summary['final_accuracy']:.3f}, area under the learning curve {summary['auc']:.3f}"
    )
    print(f"records: {output} (config.json, rounds.csv, queries.csv, results.json)")
    return 0


# ----------------------------------------------------------------------------- fmlib compare


COMPARE_EPILOG = """\
examples:
    fmlib compare "runs/fashion_mnist_cpu/*" --output comparison
    fmlib compare "results/balanced/*" --target 0.85 --budgets 300 700 1100
    fmlib compare runs/entropy-seed0 runs/entropy-seed1 runs/fishermask-seed0 --all

Every RUNS argument is a glob (quote it, or let the shell expand it) of run directories (holding
config.json); matches that are not run directories are skipped. Runs are grouped by dataset,
setting (balanced: imbalance "none", else imbalanced) and strategy; seeds are averaged: mean ± std.
Written to --output: results_table.md (the printed tables), compare.json (AUC per group) and the
figures learning_curves, learning_curves_balanced_accuracy and round_timings (PNG and SVG).
"""


def check_compare_args(args: argparse.Namespace) -> None:
    """``UserError`` for values ``fmlib compare`` cannot use, before any run is read."""
    import math

    if args.target is not None and not (math.isfinite(args.target) and 0 < args.target <= 1):
        raise UserError(f"--target must be an accuracy in (0, 1], got {args.target}")
    bad = [b for b in args.budgets or [] if b < 1]
    if bad:
        raise UserError(f"--budgets must be label counts >= 1, got {bad}")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise UserError(
            f"--output {args.output} is a file, not a folder: name a folder for the tables and"
            " figures"
        )


def cmd_compare(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # files only, no windows
    from fmlib.analysis.report import check_metric, load_comparison, write_comparison

    check_compare_args(args)
    try:
        frame, every = load_comparison(
            args.runs, include_unfinished=args.all, include_smoke=args.smoke
        )
        check_metric(frame, args.metric)
    except ValueError as err:
        raise UserError(str(err)) from None
    report, figures = write_comparison(
        frame,
        every,
        args.output,
        runs=args.runs,
        metric=args.metric,
        target=args.target,
        budgets=args.budgets or (),
        include_unfinished=args.all,
    )
    print(report)
    names = ", ".join(p.name for p in figures)
    print(f"written to {args.output}: results_table.md, compare.json, {names}")
    return 0


# ----------------------------------------------------------------------------- fmlib bench


BENCH_EPILOG = """\
examples:
    fmlib bench --quick                  # small sizes: a minute or two on a laptop CPU
    fmlib bench                          # the sizes of benchmarks/RESULTS.md
    fmlib bench --only select --threads 1
    fmlib bench --device cuda

Runs benchmarks/bench_fisher.py and benchmarks/bench_select.py, one after the other, with this
Python. The benchmarks live in the source checkout (git clone, then pip install -e .), not in the
installed package; --benchmarks DIR points at them elsewhere. Each script's own --help lists more
options: python benchmarks/bench_fisher.py --help.
"""


def benchmarks_dir(given=None) -> Path:
    """The checkout's ``benchmarks/`` (beside the ``fmlib`` package of an editable install), or
    ``given``."""
    import fmlib

    folder = Path(given) if given else Path(fmlib.__file__).resolve().parents[1] / "benchmarks"
    if not all((folder / name).is_file() for name in BENCHMARKS):
        where = f"{folder} holds no {' and '.join(BENCHMARKS)}"
        if given:
            raise UserError(where)
        raise UserError(
            "the benchmarks come with fmlib's source checkout, not with the installed package"
            f" ({where}); clone the repository and pip install -e . from it, or pass"
            " --benchmarks DIR"
        )
    return folder


def cmd_bench(args: argparse.Namespace) -> int:
    folder = benchmarks_dir(args.benchmarks)
    names = [n for n in BENCHMARKS if args.only is None or n == f"bench_{args.only}.py"]
    flags = (["--quick"] if args.quick else []) + (["--device", args.device] if args.device else [])
    flags += ["--threads", str(args.threads)] if args.threads is not None else []
    failed = []
    for name in names:
        command = [sys.executable, str(folder / name), *flags]
        print(f"$ {' '.join(command)}", flush=True)
        if subprocess.run(command, cwd=folder.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"fmlib bench: {' and '.join(failed)} failed (output above)", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- fmlib notebooks


def cmd_notebooks(args: argparse.Namespace) -> int:
    from fmlib.notebook import copy_notebooks

    try:
        copies = copy_notebooks(args.dir, overwrite=args.force)
    except (FileExistsError, FileNotFoundError) as err:
        raise UserError(str(err)) from None
    for copy in copies:
        print(copy)
    return 0


# ----------------------------------------------------------------------------- the parser


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="fmlib",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "fmlib: Fisher-information-based active learning (FisherMask, BAIT and baselines)."
        ),
        epilog=(
            f"examples:\n{usage_examples(__doc__)}\nfmlib COMMAND --help shows the options and more"
            " examples of each command."
        ),
    )
    top.add_argument("--version", action="version", version=f"fmlib {_version()}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="one active-learning run from flags or a JSON config (resumable)",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run one active-learning experiment (fmlib.run_experiment) and keep its records in"
            " --output."
        ),
    )
    run.add_argument(
        "-c", "--config", metavar="FILE", help="JSON file of config fields (or a run's config.json)"
    )
    run.add_argument(
        "--strategy", help="e.g. random, entropy, badge, bait, fishermask, or module:Class (yours)"
    )
    run.add_argument(
        "--seed",
        type=int,
        help="seed of training and selection (and of the data unless data_seed is set)",
    )
    run.add_argument(
        "--dataset", help="fashion_mnist, cifar10 or module:function (your dataset factory)"
    )
    run.add_argument(
        "--model", help="cnn, resnet18, authors_resnet18 or module:function (your model factory)"
    )
    run.add_argument("--imbalance", help="none, step, longtail or paper")
    run.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        type=field_assignment,
        metavar="FIELD=VALUE",
        help="any config field (repeatable), e.g. --set query_size=10 --set train_options.epochs=5",
    )
    run.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="run directory (records, checkpoint; resumed when rerun)",
    )
    run.add_argument(
        "--smoke",
        action="store_true",
        help="shrink to a tiny run (pool 200, 2 query rounds of 10, 2 epochs)",
    )
    run.add_argument(
        "--max-rounds",
        type=int,
        metavar="N",
        help="stop after N rounds in this call (rerun to continue)",
    )
    run.add_argument(
        "-n", "--dry-run", action="store_true", help="check the config, print it, run nothing"
    )
    run.add_argument(
        "--no-progress", action="store_true", help="no tqdm bars (the round lines stay)"
    )
    run.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="each round's metrics as TensorBoard event files in DIR",
    )
    # seconds between looks at rounds.csv
    run.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    run.set_defaults(handler=cmd_run)

    commands.add_parser(
        "grid",
        add_help=False,
        help="runs over a grid of configs (python -m fmlib.grid; fmlib grid --help)",
        description="Delegates every argument to python -m fmlib.grid.",
    )

    cmp = commands.add_parser(
        "compare",
        help="tables (AUC, mean ± std over seeds) and figures for a glob of run directories",
        epilog=COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Compare strategies over seeds: markdown tables printed and written, figures written to"
            " --output."
        ),
    )
    cmp.add_argument(
        "runs", nargs="+", metavar="RUNS", help="run directories, as globs (quote them)"
    )
    cmp.add_argument(
        "-o",
        "--output",
        default="comparison",
        metavar="DIR",
        help="tables and figures go here (default: %(default)s)",
    )
    cmp.add_argument(
        "--target", type=float, help="accuracy of the labels-to-reach column, e.g. 0.85"
    )
    cmp.add_argument(
        "--budgets",
        type=int,
        nargs="+",
        metavar="N",
        help="label budgets of an accuracy table per setting",
    )
    cmp.add_argument(
        "--metric", default="accuracy", help="rounds.csv column to compare (default: %(default)s)"
    )
    cmp.add_argument("--all", action="store_true", help="include unfinished runs")
    cmp.add_argument(
        "--smoke", action="store_true", help="include smoke runs (fmlib run --smoke, FMLIB_SMOKE=1)"
    )
    cmp.set_defaults(handler=cmd_compare)

    bench = commands.add_parser(
        "bench",
        help="the speed benchmarks (benchmarks/bench_fisher.py, bench_select.py; in a checkout)",
        epilog=BENCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run fmlib's speed benchmarks: ratios against naive implementations, in the same run."
        ),
    )
    bench.add_argument("--quick", action="store_true", help="small sizes, seconds to minutes")
    bench.add_argument("--only", choices=("fisher", "select"), help="run one of the two")
    bench.add_argument("--device", help="cpu or cuda (default: each script's)")
    bench.add_argument("--threads", type=int, help="torch CPU threads (default: each script's, 2)")
    bench.add_argument(
        "--benchmarks",
        metavar="DIR",
        help="folder holding the benchmark scripts (default: the checkout's)",
    )
    bench.set_defaults(handler=cmd_bench)

    nbs = commands.add_parser(
        "notebooks",
        help="copy fmlib's notebooks (active_learning, compare, ...) into DIR, e.g. for papermill",
        description=(
            "Copy the notebooks this fmlib runs (the checkout's, or those the wheel carries) into"
            " DIR."
        ),
    )
    nbs.add_argument("dir", metavar="DIR", help="folder to copy them into (created)")
    nbs.add_argument("--force", action="store_true", help="replace notebooks already in DIR")
    nbs.set_defaults(handler=cmd_notebooks)
    return top


def _version() -> str:
    from fmlib import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """``fmlib``'s entry point; returns the exit status (2: a mistake in the arguments or the
    config)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # "module:attribute" names find the user's modules here
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    command = next((a for a in argv if not a.startswith("-")), None)
    if command == "grid":
        from fmlib.grid.cli import main as grid_main

        return grid_main(argv[argv.index("grid") + 1 :], prog="fmlib grid")
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as err:
        print(f"fmlib {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
