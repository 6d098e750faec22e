"""Batch runs: ``notebooks/active_learning.ipynb`` executed over a grid of configs.

A grid file (``grids/*.json``) holds ``base`` config fields and ``axes``; every combination of
axis values is one run, in ``<output>/<name>/`` with the executed notebook beside its records::

    {"description": "...",
     "base": {"model": "cnn", "train_preset": "paper"},
     "axes": {"dataset": ["fashion_mnist"],
              "imbalance": {"imbalanced": {"imbalance": "paper", "budget": 575},
                            "balanced": {"imbalance": "none", "pool_size": 10000}},
              "strategy": ["random", {"strategy": "fishermask", "strategy_options": {"fraction": 0.003}}],
              "seed": [0, 1, 2]}}

An axis is a list (a scalar sets the field named like the axis; a dict is merged and labelled by
its ``name``, else by its value for that field) or a dict of named variants (each merged, labelled
by its key). Dict-valued fields (``strategy_options`` ...) merge one level deep. The axes
``dataset``, ``imbalance``, ``strategy``, ``seed`` come first in that order, then the others as
written; the run's name joins the labels: ``fashion_mnist-imbalanced-fishermask-seed0``.

Usage (``python -m fmlib.grid --help`` lists every option)::

    python -m fmlib.grid grids/fashion_mnist_cpu.json --dry-run
    python -m fmlib.grid grids/fashion_mnist_cpu.json --output runs/fashion_mnist_cpu --workers 2
    python -m fmlib.grid grids/fashion_mnist_cpu.json --strategy fishermask random --seed 0 --dry-run
    python -m fmlib.grid --dataset fashion_mnist --imbalance paper none --strategy entropy --seed 0 1 \\
        --set budget=155 --output runs/quick
    python -m fmlib.grid grids/cifar10_gpu.json --executor submitit --partition gpu --gpus 1 --cpus 8 --timeout 720

A run is done when its directory holds ``results.json`` (the notebook's last cell writes it);
done runs are skipped, others re-executed (``run_experiment`` resumes from the checkpoint). A
failing run does not stop the grid: its executed notebook stays in its directory to read the error,
and the summary (printed, and ``grid_summary.json``) lists it.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import multiprocessing
import os
import re
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS, EXECUTED, SUMMARY, RUNS = "results.json", "active_learning.ipynb", "grid_summary.json", "grid.json"
CANONICAL_AXES = ("dataset", "imbalance", "strategy", "seed")
EXECUTORS = ("local", "submitit", "inline")
_MERGED = ("model_options", "strategy_options", "train_options")  # dict fields merged, not replaced
_RESERVED = ("output_dir",)  # set by the runner


def repo_root() -> Path:
    """The checkout holding fmlib (editable install), else the working directory."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "notebooks").is_dir() else Path.cwd()


NOTEBOOK = repo_root() / "notebooks" / EXECUTED


# ----------------------------------------------------------------------------- grid -> runs


@dataclass(frozen=True)
class GridRun:
    """One run of a grid: its directory name and its config fields (``output_dir`` excluded)."""

    name: str
    params: dict = field(hash=False)

    def path(self, root) -> Path:
        return Path(root) / self.name


def load_grid(path) -> dict:
    """Read a grid file (JSON, see the module docstring)."""
    grid = json.loads(Path(path).read_text())
    unknown = sorted(set(grid) - {"description", "base", "axes"})
    if unknown:
        raise ValueError(f"{path}: unknown grid keys {unknown}; allowed: ['axes', 'base', 'description']")
    return grid


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", str(text)).strip("_") or "_"


def _label(axis: str, value) -> str:
    if isinstance(value, str):
        return _slug(value)
    if value is None or isinstance(value, (bool, int, float)):
        return _slug(f"{axis}{json.dumps(value)}")
    raise ValueError(f"axis {axis!r}: cannot name a run after {value!r}; give dict elements a 'name'")


def _axis_items(axis: str, values) -> list[tuple[str, dict]]:
    """``(label, fields)`` for every value of an axis."""
    if isinstance(values, Mapping):
        return [(_slug(name), dict(fields)) for name, fields in values.items()]
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"axis {axis!r} must be a non-empty list or a dict of named variants, got {values!r}")
    items = []
    for value in values:
        if isinstance(value, Mapping):
            fields = dict(value)
            name = fields.pop("name", None)
            if name is None and axis not in fields:
                raise ValueError(f"axis {axis!r}: dict element {value!r} needs a 'name' or a {axis!r} field")
            items.append((_slug(name) if name is not None else _label(axis, fields[axis]), fields))
        else:
            items.append((_label(axis, value), {axis: value}))
    return items


def _merge(params: dict, update: Mapping) -> dict:
    out = dict(params)
    for key, value in copy.deepcopy(dict(update)).items():  # runs share no nested dicts with the grid
        if key in _MERGED and isinstance(out.get(key), Mapping) and isinstance(value, Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _check_fields(params: Mapping, where: str) -> None:
    from dataclasses import fields

    from fmlib.experiment import ExperimentConfig

    valid = [f.name for f in fields(ExperimentConfig) if f.name not in _RESERVED]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown config fields {unknown}; allowed: {valid}")


def expand_grid(
    grid: Mapping | None = None, *, select: Mapping[str, Sequence] | None = None, overrides: Mapping | None = None
) -> list[GridRun]:
    """The runs of a grid.

    Args:
        grid: ``{"base": {...}, "axes": {...}}`` (see the module docstring); ``None``: empty.
        select: axis -> values from the command line. For an axis of the grid, keeps the elements
            whose label (or value) is listed; otherwise adds a list axis with these values.
        overrides: config fields set in every run, after the axes (``--set``).

    Returns:
        Runs in grid order (the last axis varies fastest), with unique names.
    """
    grid = dict(grid or {})
    base = dict(grid.get("base", {}))
    axes = {name: _axis_items(name, values) for name, values in dict(grid.get("axes", {})).items()}
    for axis, wanted in (select or {}).items():
        wanted = list(wanted)
        if not wanted:
            continue
        if axis not in axes:
            axes[axis] = _axis_items(axis, wanted)
            continue
        keep = [(label, fields) for label, fields in axes[axis]
                if label in map(str, wanted) or fields.get(axis, object()) in wanted]  # fmt: skip
        found = {label for label, _ in keep} | {str(f.get(axis)) for _, f in keep}
        missing = [w for w in wanted if str(w) not in found and w not in found]
        if missing:
            raise ValueError(f"axis {axis!r} has no values {missing}; it has {[label for label, _ in axes[axis]]}")
        axes[axis] = keep
    order = [a for a in CANONICAL_AXES if a in axes] + [a for a in axes if a not in CANONICAL_AXES]
    _check_fields(base, "base")
    _check_fields(dict(overrides or {}), "--set")
    runs, seen = [], {}
    for combo in itertools.product(*(axes[a] for a in order)):
        params = copy.deepcopy(base)
        for axis, (_, fields) in zip(order, combo):
            _check_fields(fields, f"axis {axis!r}")
            params = _merge(params, fields)
        params = _merge(params, overrides or {})
        name = "-".join(label for label, _ in combo) or "run"
        if name in seen:
            raise ValueError(f"two runs are both named {name!r}: give the axis values distinct labels")
        seen[name] = True
        runs.append(GridRun(name, params))
    return runs


def run_status(path) -> str:
    """``"done"`` (``results.json`` written by a real run), ``"partial"`` (started, failed, or only a
    smoke run: ``results.json`` with ``"smoke": true``, written under ``FMLIB_SMOKE=1``) or ``"new"``."""
    path = Path(path)
    if (path / RESULTS).is_file():
        try:
            smoke = json.loads((path / RESULTS).read_text()).get("smoke", False)
        except (OSError, ValueError, AttributeError):
            smoke = True  # unreadable: run it again
        return "partial" if smoke else "done"
    if (path / "config.json").is_file() or (path / EXECUTED).is_file():
        return "partial"
    return "new"


def default_run_dir(params: Mapping) -> Path:
    """``runs/<dataset>-<imbalance>-<strategy>-seed<seed>`` under the repository root."""
    name = "-".join(_slug(str(params.get(k))) for k in ("dataset", "imbalance", "strategy"))
    return repo_root() / "runs" / f"{name}-seed{params.get('seed', 0)}"


# ----------------------------------------------------------------------------- executing runs


@dataclass
class RunOutcome:
    """What became of one run."""

    name: str
    status: str  # "done" | "skipped" (already done) | "failed"
    seconds: float = 0.0
    error: str | None = None
    notebook: str | None = None  # the executed notebook (read it for the error)


def write_results(run_dir, records, **extra) -> Path:
    """``results.json`` of a run: :func:`fmlib.compare.run_summary` of its records plus ``extra``."""
    from fmlib.compare import run_summary
    from fmlib.records import write_json

    return write_json(Path(run_dir) / RESULTS, {**run_summary(records.frame()), **extra})


@contextmanager
def _thread_env(threads: int | None):
    """Set the thread counts a kernel started inside the block inherits."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    old = {n: os.environ.get(n) for n in names}
    if threads:
        os.environ.update({n: str(threads) for n in names})
    try:
        yield
    finally:
        for n, v in old.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def execute_run(
    run: GridRun, root, *, notebook=NOTEBOOK, kernel_name: str | None = None, threads: int | None = None
) -> RunOutcome:
    """Execute the notebook for one run with papermill into ``<root>/<name>/``; never raises."""
    run_dir = run.path(root).resolve()
    output = run_dir / EXECUTED
    start = time.perf_counter()
    try:
        import papermill as pm

        run_dir.mkdir(parents=True, exist_ok=True)
        with _thread_env(threads):
            pm.execute_notebook(str(notebook), str(output), parameters={**run.params, "output_dir": str(run_dir)},
                                kernel_name=kernel_name, progress_bar=False, cwd=str(run_dir))  # fmt: skip
        if run_status(run_dir) != "done":
            raise RuntimeError(f"the notebook finished without writing {RESULTS}")
        return RunOutcome(run.name, "done", time.perf_counter() - start, None, str(output))
    except Exception as err:  # a run's failure is reported, never raised: the grid goes on
        message = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', err)}"
        kept = str(output) if output.is_file() else None
        return RunOutcome(run.name, "failed", time.perf_counter() - start, message.strip(), kept)


def run_inline(run: GridRun, root, *, threads: int | None = None) -> RunOutcome:
    """Run one config in this process with :func:`~fmlib.experiment.run_experiment` (no notebook,
    no figures): fast, for tests and demo runs. Writes the same ``results.json``; never raises."""
    run_dir = run.path(root).resolve()
    start = time.perf_counter()
    try:
        import torch

        from fmlib.experiment import run_experiment

        if threads:
            torch.set_num_threads(threads)
        records = run_experiment({**run.params, "output_dir": str(run_dir)})
        write_results(run_dir, records, seconds=time.perf_counter() - start)
        return RunOutcome(run.name, "done", time.perf_counter() - start)
    except Exception as err:  # no notebook to read: the error names where it was raised
        where = traceback.extract_tb(err.__traceback__)[-1]
        message = f"{type(err).__name__}: {err} ({Path(where.filename).name}:{where.lineno})"
        return RunOutcome(run.name, "failed", time.perf_counter() - start, message)


def run_grid(
    runs: Sequence[GridRun],
    root,
    *,
    notebook=NOTEBOOK,
    workers: int = 1,
    executor: str = "local",
    threads: int | None = None,
    kernel_name: str | None = None,
    submitit: Mapping | None = None,
    progress: bool = True,
) -> list[RunOutcome]:
    """Run every unfinished run of a grid; failures are collected, not raised.

    Args:
        runs: from :func:`expand_grid`.
        root: output tree; run ``r`` goes to ``root / r.name``.
        notebook: the notebook papermill executes per run (``FileNotFoundError`` when missing,
            unless ``executor="inline"``).
        workers: runs at a time (local pool; Slurm array parallelism with submitit, whose
            ``"local"`` cluster starts every job at once).
        executor: ``"local"`` (process pool, papermill), ``"submitit"`` (Slurm, or submitit's
            local executor with ``submitit={"cluster": "local"}``), ``"inline"`` (this process,
            no notebook, one at a time).
        threads: torch threads per run (``OMP_NUM_THREADS`` of the kernel); default:
            ``submitit["cpus"]`` when given, else the machine's cores / ``workers``, at least 1
            (with submitit: left unset).
        kernel_name: Jupyter kernel (default: the notebook's).
        submitit: ``cluster`` (``None``: Slurm when available, else local), ``partition``,
            ``gpus``, ``timeout`` (minutes), ``cpus``, ``mem_gb``, ``folder`` (logs; default
            ``root/.submitit``).
        progress: tqdm bar over runs.

    Returns:
        One outcome per run, in ``runs`` order (``grid_summary.json`` in ``root`` too).
    """
    from tqdm.auto import tqdm

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; allowed values: {list(EXECUTORS)}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    notebook = Path(notebook).resolve()  # kernels run in their run directory, jobs maybe elsewhere
    if executor != "inline" and not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} not found (--notebook to execute another one)")
    runs = [_absolute_data_root(r) for r in runs]
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    from fmlib.records import write_json

    write_json(root / RUNS, [asdict(r) for r in runs])
    outcomes = {r.name: RunOutcome(r.name, "skipped") for r in runs if run_status(r.path(root)) == "done"}
    todo = [r for r in runs if r.name not in outcomes]
    if threads is None:  # with submitit, cores / workers of this machine say nothing about the nodes
        threads = (submitit or {}).get("cpus") or (None if executor == "submitit" else max(1, (os.cpu_count() or 1) // workers))
    bar = tqdm(total=len(todo), unit="run", desc="grid", disable=not progress)
    failed = 0
    for outcome in _outcomes(todo, root, notebook, workers, executor, threads, kernel_name, dict(submitit or {})):
        outcomes[outcome.name] = outcome
        failed += outcome.status == "failed"
        bar.update(1)
        bar.set_postfix(failed=failed, last=outcome.name)
    bar.close()
    ordered = [outcomes[r.name] for r in runs]
    write_json(root / SUMMARY, [asdict(o) for o in ordered])
    return ordered


def _absolute_data_root(run: GridRun) -> GridRun:
    """``data_root`` made absolute: a relative one would be read from the run's directory."""
    root = run.params.get("data_root")
    if isinstance(root, str) and root != os.path.abspath(os.path.expanduser(root)):
        return GridRun(run.name, {**run.params, "data_root": os.path.abspath(os.path.expanduser(root))})
    return run


def _outcomes(todo, root, notebook, workers, executor, threads, kernel_name, options) -> Iterator[RunOutcome]:
    if not todo:
        return
    if executor == "inline":
        for run in todo:
            yield run_inline(run, root, threads=threads)
    elif executor == "local" and workers == 1:
        for run in todo:
            yield execute_run(run, root, notebook=notebook, kernel_name=kernel_name, threads=threads)
    elif executor == "local":
        # spawn: the parent has torch imported (config checks); forking that is not safe
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(execute_run, run, root, notebook=notebook, kernel_name=kernel_name, threads=threads): run
                       for run in todo}  # fmt: skip
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as err:  # the worker process died
                    yield RunOutcome(futures[future].name, "failed", error=f"{type(err).__name__}: {err}")
    else:
        yield from _submitit_outcomes(todo, root, notebook, workers, threads, kernel_name, options)


def _submitit_outcomes(todo, root, notebook, workers, threads, kernel_name, options) -> Iterator[RunOutcome]:
    try:
        import submitit
    except ImportError as err:
        raise ImportError("--executor submitit needs submitit: pip install 'fmlib[grid]'") from err

    folder = Path(options.get("folder") or root / ".submitit")
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=options.get("cluster"))
    params = {
        "name": "fmlib-grid",
        "timeout_min": options.get("timeout"),
        "gpus_per_node": options.get("gpus"),
        "cpus_per_task": options.get("cpus"),
        "mem_gb": options.get("mem_gb"),
        "slurm_partition": options.get("partition"),
        "slurm_array_parallelism": workers,
    }
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    with executor.batch():
        jobs = [executor.submit(execute_run, run, root, notebook=notebook, kernel_name=kernel_name, threads=threads)
                for run in todo]  # fmt: skip
    names = {job.job_id: run.name for job, run in zip(jobs, todo)}
    for job in submitit.helpers.as_completed(jobs, poll_frequency=1):
        try:
            yield job.result()
        except Exception as err:  # the job itself failed (timeout, killed, ...): logs in folder
            first = str(err).strip().splitlines()
            yield RunOutcome(names[job.job_id], "failed", error=f"{type(err).__name__}: {first[-1] if first else ''} "
                                                             f"(logs: {job.paths.stderr})")  # fmt: skip


def summarize(outcomes: Sequence[RunOutcome]) -> str:
    """Counts, then one line per failure with its error and executed notebook."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    lines = [f"{len(outcomes)} runs: {counts['done']} done, {counts['skipped']} skipped (finished before), "
             f"{counts['failed']} failed"]  # fmt: skip
    for o in outcomes:
        if o.status == "failed":
            lines.append(f"  FAILED {o.name}: {o.error}" + (f"\n         notebook: {o.notebook}" if o.notebook else ""))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _assignment(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE (VALUE as JSON or a plain string), got {text!r}")
    return key.strip(), _value(value)


def usage_examples() -> str:
    """The command lines under "Usage" in the module docstring (also shown by ``--help``)."""
    text = (__doc__ or "").split("Usage", 1)[-1].split("::\n\n", 1)[-1]
    return text.split("\n\n", 1)[0] + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fmlib.grid",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Execute notebooks/active_learning.ipynb with papermill once per run of a grid: every\n"
            "combination of the grid's axis values (dataset x imbalance x strategy x seed x ...), each in\n"
            "its own directory under --output. Runs whose directory holds results.json are skipped; the\n"
            "others are (re-)executed and resume from their checkpoint. A failed run does not stop the\n"
            "grid: its executed notebook stays in its directory to read the error, the summary (also\n"
            "grid_summary.json) lists it and the exit status is 1."
        ),
        epilog=(
            f"examples:\n{usage_examples()}\n"
            "Axis flags (--dataset, --imbalance, --strategy, --seed, --axis) keep the elements of the grid\n"
            "file's axis whose label or value is listed, or add the axis when the grid has none. Values\n"
            "are read as JSON, else as strings. Grid files (grids/*.json) hold 'base' config fields and\n"
            "'axes'; the format: python -c 'import fmlib.grid; help(fmlib.grid)'."
        ),
    )
    p.add_argument("grid", nargs="?", help="grid file (grids/*.json); optional when axis flags give the axes")
    p.add_argument("-o", "--output", help="output tree, one directory per run (default: runs/<grid file name>)")
    p.add_argument("--dataset", nargs="+", type=_value, default=[], help="dataset axis values")
    p.add_argument("--imbalance", nargs="+", type=_value, default=[], help="imbalance axis values or variant labels")
    p.add_argument("--strategy", nargs="+", type=_value, default=[], help="strategy axis values or labels")
    p.add_argument("--seed", nargs="+", type=_value, default=[], help="seed axis values")
    p.add_argument("--axis", action="append", default=[], type=_assignment, metavar="NAME=V1,V2",
                   help="any other axis, comma-separated values (or a JSON list), e.g. --axis query_size=35,70")  # fmt: skip
    p.add_argument("--set", action="append", default=[], type=_assignment, metavar="FIELD=VALUE",
                   help="config field for every run, e.g. --set budget=155 --set 'train_options={\"epochs\": 5}'")  # fmt: skip
    p.add_argument("-j", "--workers", type=int, default=1,
                   help="runs at a time: local processes, or the Slurm array parallelism (default 1)")  # fmt: skip
    p.add_argument("--threads", type=int, help="torch threads per run (default: --cpus, else cores / workers)")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: process pool with papermill (default); submitit: one job per run (Slurm); "
                        "inline: run_experiment in this process, no notebook")  # fmt: skip
    p.add_argument("--cluster", choices=("slurm", "local", "debug"),
                   help="submitit cluster: slurm, local (processes on this machine) or debug (this process); "
                        "default: Slurm when available, else local")  # fmt: skip
    p.add_argument("--partition", help="Slurm partition (submitit)")
    p.add_argument("--gpus", type=int, help="GPUs per run (submitit)")
    p.add_argument("--cpus", type=int, help="CPUs per run (submitit); also the torch threads")
    p.add_argument("--mem-gb", type=float, help="memory per run in GB (submitit)")
    p.add_argument("--timeout", type=int, help="minutes per run (submitit)")
    p.add_argument("--notebook", default=str(NOTEBOOK), help="notebook to execute per run (default: %(default)s)")
    p.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's)")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="list the runs, their status (new, partial, done) and invalid configs; run nothing; "
                        "exit status 1 when a config is invalid")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (2: bad grid or arguments)."""
    args = parser().parse_args(argv)
    select = {"dataset": args.dataset, "imbalance": args.imbalance, "strategy": args.strategy, "seed": args.seed}
    for name, values in args.axis:
        select[name] = [_value(v) for v in values.split(",")] if isinstance(values, str) else values
        select[name] = select[name] if isinstance(select[name], list) else [select[name]]
    try:
        grid = load_grid(args.grid) if args.grid else {}
        runs = expand_grid(grid, select=select, overrides=dict(args.set))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else repo_root() / "runs" / (Path(args.grid).stem if args.grid else "grid")
    if args.dry_run:
        from fmlib.experiment import ExperimentConfig

        invalid = 0
        for run in runs:
            try:
                ExperimentConfig.from_dict(run.params).validate(check_dataset=False)
                problem = ""
            except (TypeError, ValueError) as err:
                problem, invalid = f"  INVALID: {err}", invalid + 1
            print(f"{run_status(run.path(output)):8s} {run.path(output)}{problem}")
        print(f"{len(runs)} runs in {output}" + (f", {invalid} invalid" if invalid else ""))
        return 1 if invalid else 0
    options = {"cluster": args.cluster, "partition": args.partition, "gpus": args.gpus, "cpus": args.cpus,
               "mem_gb": args.mem_gb, "timeout": args.timeout}  # fmt: skip
    try:
        outcomes = run_grid(runs, output, notebook=args.notebook, workers=args.workers, executor=args.executor,
                            threads=args.threads, kernel_name=args.kernel, submitit=options,
                            progress=not args.no_progress)  # fmt: skip
    except (FileNotFoundError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summarize(outcomes))
    print(f"outputs: {output}")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
