"""Executing a grid's runs (papermill in a process pool, inline, submitit jobs) and the command
line ``python -m fmlib.grid`` (its usage: :mod:`fmlib.grid.spec`).

A run's status comes from its directory (:meth:`fmlib.records.RunDirectory.status`, compared with
the run's config): ``done`` runs are skipped, ``new`` and ``partial`` ones executed (resuming from
their checkpoint), ``stale`` ones (made with another config) reported and left alone unless
``rerun_stale`` moves them aside first. Workers import neither torch nor the config: the parent
decides what runs.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from fmlib.grid.signals import GridInterrupted, signals_interrupt, stop_pool
from fmlib.grid.spec import GridRun
from fmlib.notebook import notebook_path

RESULTS = "results.json"  # fmlib.records.RESULTS; not imported: workers start without torch
EXECUTED, SUMMARY, RUNS = "active_learning.ipynb", "grid_summary.json", "grid.json"
EXECUTORS = ("local", "submitit", "inline")
NOTEBOOK = notebook_path(EXECUTED)  # the checkout's, else the copy in the wheel


@dataclass
class RunOutcome:
    """What became of one run."""

    name: str
    status: (
        str  # "done" | "skipped" (already done) | "failed" | "stale" (another config; not rerun)
    )
    seconds: float = 0.0
    error: str | None = None  # for "stale": how the config changed
    notebook: str | None = None  # the executed notebook (read it for the error)
    moved: str | None = None  # where a stale run's old directory went before it was rerun
    gpu: str | None = None  # the CUDA_VISIBLE_DEVICES its kernel had (local executor): cuda:0 there
    repaired: str | None = None  # what reopening a finished run rebuilt from its checkpoint


def visible_gpus() -> list[str]:
    """The GPUs local workers share: ``CUDA_VISIBLE_DEVICES``'s entries when it is set (empty:
    none), else torch's device count when torch is already imported (the grid never imports it for
    this)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    torch = sys.modules.get("torch")
    count = torch.cuda.device_count() if torch is not None and torch.cuda.is_available() else 0
    return [str(i) for i in range(count)]


@contextmanager
def _kernel_env(threads: int | None, gpu: str | None = None):
    """Set what a kernel started inside the block inherits: the thread counts, its one GPU
    (``CUDA_VISIBLE_DEVICES``: it sees it as ``cuda:0``), and the directory the grid was started
    from first on ``PYTHONPATH`` (the kernel runs in the run directory, and a config may name the
    user's own modules: ``"package.module:Class"``)."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONPATH", "CUDA_VISIBLE_DEVICES")
    old = {n: os.environ.get(n) for n in names}
    if threads:
        os.environ.update({n: str(threads) for n in names[:2]})
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.environ["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *filter(None, [old["PYTHONPATH"]])])
    try:
        yield
    finally:
        for n, v in old.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def execute_run(
    run: GridRun,
    root,
    *,
    notebook=NOTEBOOK,
    kernel_name: str | None = None,
    threads: int | None = None,
    gpu: str | None = None,
) -> RunOutcome:
    """Execute the notebook for one run with papermill into ``<root>/<name>/``; never raises."""
    run_dir = run.path(root).resolve()
    output = run_dir / EXECUTED
    start = time.perf_counter()
    try:
        import papermill as pm

        run_dir.mkdir(parents=True, exist_ok=True)
        with _kernel_env(threads, gpu):
            pm.execute_notebook(
                str(notebook),
                str(output),
                parameters={**run.params, "output_dir": str(run_dir)},
                kernel_name=kernel_name,
                progress_bar=False,
                cwd=str(run_dir),
            )
        _check_done(run_dir)
        return RunOutcome(run.name, "done", time.perf_counter() - start, None, str(output), gpu=gpu)
    except Exception as err:  # a run's failure is reported, never raised: the grid goes on
        message = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', err)}"
        kept = str(output) if output.is_file() else None
        return RunOutcome(
            run.name, "failed", time.perf_counter() - start, message.strip(), kept, gpu=gpu
        )


def run_inline(run: GridRun, root, *, threads: int | None = None) -> RunOutcome:
    """Run one config in this process with :func:`~fmlib.experiment.run_experiment` (no notebook,
    no figures): fast, for tests and demo runs. Writes the same ``results.json``; never raises."""
    run_dir = run.path(root).resolve()
    start = time.perf_counter()
    try:
        import torch

        from fmlib.experiment import run_experiment
        from fmlib.records import write_results

        if threads:
            torch.set_num_threads(threads)
        records = run_experiment({**run.params, "output_dir": str(run_dir)})
        write_results(run_dir, records, seconds=time.perf_counter() - start)
        _check_done(run_dir)
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
    rerun_stale: bool = False,
    gpus: Sequence[str] | None = None,
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
        gpus: GPUs the local executor deals to its runs round-robin, one each (the kernel's
            ``CUDA_VISIBLE_DEVICES``, recorded in the outcome); default :func:`visible_gpus`.
        threads: torch threads per run (``OMP_NUM_THREADS`` of the kernel); default: for a run
            that resumes, the count its records say it ran with (results depend on it, and a run
            refuses to resume with another); for the others ``submitit["cpus"]`` when given, else
            the machine's cores / ``workers``, at least 1 (with submitit: left unset).
        kernel_name: Jupyter kernel (default: the notebook's).
        submitit: ``cluster`` (``None``: Slurm when available, else local), ``partition``,
            ``gpus``, ``timeout`` (minutes), ``cpus``, ``mem_gb``, ``folder`` (logs; default
            ``root/.submitit``).
        progress: tqdm bar over runs.
        rerun_stale: move the directory of every stale run (made with another config) aside to
            ``root/.stale/`` and run it again; otherwise stale runs are reported, not run.

    Returns:
        One outcome per run, in ``runs`` order (``grid_summary.json`` in ``root`` too).
    """
    from fmlib.progress import progress_bar

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; allowed values: {list(EXECUTORS)}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    notebook = Path(notebook).resolve()  # kernels run in their run directory, jobs maybe elsewhere
    if executor != "inline" and not notebook.is_file():
        raise FileNotFoundError(
            f"notebook {notebook} not found (--notebook to execute another one)"
        )
    runs = [_absolute_data_root(r) for r in runs]
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    from fmlib.records import RunDirectory, write_json

    write_json(root / RUNS, [asdict(r) for r in runs])
    outcomes, moved = {}, {}
    for run in runs:
        status, changes = run_state(run, root)
        if status == "done":
            outcomes[run.name] = _reopen_done(run, root)
        elif status == "stale" and rerun_stale:
            moved[run.name] = str(RunDirectory(run.path(root)).move_aside())
        elif status == "stale":
            outcomes[run.name] = RunOutcome(
                run.name, "stale", error=f"config changed: {'; '.join(changes)}"
            )
    todo = [r for r in runs if r.name not in outcomes]
    if threads is not None:
        per_run = dict.fromkeys([r.name for r in todo], threads)
    else:  # with submitit, cores / workers of this machine say nothing about the nodes
        threads = (submitit or {}).get("cpus") or (
            None if executor == "submitit" else max(1, (os.cpu_count() or 1) // workers)
        )
        # --workers changes no result
        per_run = {r.name: _recorded_threads(r.path(root)) or threads for r in todo}
    devices = list(visible_gpus() if gpus is None else gpus) if executor == "local" else []
    options = {
        **(submitit or {}),
        "_gpus": {r.name: devices[i % len(devices)] for i, r in enumerate(todo)} if devices else {},
    }
    bar = progress_bar(total=len(todo), unit="run", desc="grid", disable=not progress)
    failed, stopped = 0, None
    results = _outcomes(todo, root, notebook, workers, executor, per_run, kernel_name, options)
    with signals_interrupt():
        try:
            for outcome in results:
                outcomes[outcome.name] = outcome
                outcome.moved = moved.get(outcome.name)
                failed += outcome.status == "failed"
                bar.update(1)
                bar.set_postfix(failed=failed, last=outcome.name)
        except GridInterrupted as err:
            stopped = err
        finally:
            results.close()  # stops the workers when interrupted
    bar.close()
    for run in todo:
        if run.name not in outcomes:
            outcomes[run.name] = RunOutcome(
                run.name,
                "failed",
                error=f"not finished: the grid was {stopped}; rerun the grid to resume it",
            )
    ordered = [outcomes[r.name] for r in runs]
    write_json(root / SUMMARY, [asdict(o) for o in ordered])
    if stopped is not None:
        stopped.outcomes = ordered
        raise stopped
    return ordered


def _reopen_done(run: GridRun, root) -> RunOutcome:
    """Reopen a finished run under its lock (verify its records, rebuild what disagrees with its
    checkpoint: :meth:`fmlib.records.RunDirectory.open`) instead of trusting its files; cheap: no
    training, no notebook."""
    from fmlib.config import ExperimentConfig, comparison
    from fmlib.records import RunDirectory

    start = time.perf_counter()
    config = ExperimentConfig.from_dict({**run.params, "output_dir": str(run.path(root))}).to_dict()
    directory = RunDirectory(run.path(root))
    try:
        with warnings.catch_warnings(record=True) as caught, directory.lock():
            warnings.simplefilter("always")
            directory.open(config, **comparison())
    except Exception as err:  # damaged, busy, refused: reported like a failed run
        return RunOutcome(
            run.name,
            "failed",
            time.perf_counter() - start,
            f"reopening the finished run: {type(err).__name__}: {err}",
        )
    repaired = "; ".join(str(w.message) for w in caught) or None
    return RunOutcome(run.name, "skipped", time.perf_counter() - start, repaired=repaired)


def run_state(run: GridRun, root) -> tuple[str, list[str]]:
    """A run's status in ``root`` compared with its config (``new``, ``partial``, ``done``,
    ``stale``) and, when stale, how the config changed."""
    from fmlib.config import ExperimentConfig, comparison
    from fmlib.records import DamagedRunError, RunDirectory

    config = ExperimentConfig.from_dict({**run.params, "output_dir": str(run.path(root))}).to_dict()
    directory = RunDirectory(run.path(root))
    status = directory.status(config, **comparison())
    try:
        changes = directory.differences(config, **comparison()) if status == "stale" else []
    except DamagedRunError:
        changes = []
    return status, changes


def _recorded_threads(run_dir: Path) -> int | None:
    """The torch thread count a started run last ran with (``None``: new, or unknown)."""
    from fmlib.records import DamagedRunError, RunDirectory, thread_counts

    try:
        meta = RunDirectory(run_dir).read_meta()
    except DamagedRunError:
        return None
    used = thread_counts(meta or {})
    return used[-1] if isinstance(used[-1], int) else None


def _check_done(run_dir: Path) -> None:
    """Raise unless the run in ``run_dir`` is done (finished, ``results.json`` of a real run)."""
    from fmlib.records import RunDirectory

    directory = RunDirectory(run_dir)
    if directory.status() == "done":
        return
    results = directory.read_results()
    if results is not None and results.get("smoke"):
        raise RuntimeError(
            f"the run wrote a smoke {RESULTS} (FMLIB_SMOKE=1): a smoke run is not a result"
        )
    raise RuntimeError(f"the notebook finished without writing {RESULTS} for a finished run")


def _absolute_data_root(run: GridRun) -> GridRun:
    """``data_root`` made absolute: a relative one would be read from the run's directory."""
    root = run.params.get("data_root")
    if isinstance(root, str) and root != os.path.abspath(os.path.expanduser(root)):
        return GridRun(
            run.name, {**run.params, "data_root": os.path.abspath(os.path.expanduser(root))}
        )
    return run


def _outcomes(
    todo, root, notebook, workers, executor, threads, kernel_name, options
) -> Iterator[RunOutcome]:
    if not todo:
        return
    gpu = options.pop("_gpus", {})  # run name -> its GPU (local executor, round-robin)
    if executor == "inline":
        for run in todo:
            yield run_inline(run, root, threads=threads[run.name])
    elif executor == "local" and workers == 1:
        for run in todo:
            yield execute_run(
                run,
                root,
                notebook=notebook,
                kernel_name=kernel_name,
                threads=threads[run.name],
                gpu=gpu.get(run.name),
            )
    elif executor == "local":
        # spawn: the parent has torch imported (config checks); forking that is not safe
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        try:
            futures = {
                pool.submit(
                    execute_run,
                    run,
                    root,
                    notebook=notebook,
                    kernel_name=kernel_name,
                    threads=threads[run.name],
                    gpu=gpu.get(run.name),
                ): run
                for run in todo
            }
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as err:  # the worker process died
                    yield RunOutcome(
                        futures[future].name, "failed", error=f"{type(err).__name__}: {err}"
                    )
        # interrupted (or the consumer left): stop the workers, never wait for them
        except BaseException:
            stop_pool(pool)
            raise
        pool.shutdown()
    else:
        yield from _submitit_outcomes(todo, root, notebook, workers, threads, kernel_name, options)


def _submitit_outcomes(
    todo, root, notebook, workers, threads, kernel_name, options
) -> Iterator[RunOutcome]:
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
        jobs = [
            executor.submit(
                execute_run,
                run,
                root,
                notebook=notebook,
                kernel_name=kernel_name,
                threads=threads[run.name],
            )
            for run in todo
        ]
    names = {job.job_id: run.name for job, run in zip(jobs, todo)}
    for job in submitit.helpers.as_completed(jobs, poll_frequency=1):
        try:
            yield job.result()
        except Exception as err:  # the job itself failed (timeout, killed, ...): logs in folder
            first = str(err).strip().splitlines()
            yield RunOutcome(
                names[job.job_id],
                "failed",
                error=f"{type(err).__name__}: {first[-1] if first else ''} "
                f"(logs: {job.paths.stderr})",
            )


def summarize(outcomes: Sequence[RunOutcome]) -> str:
    """Counts, then one line per failure (error, executed notebook), per stale run (how its config
    changed) and per stale run rerun (where its old directory went)."""
    counts = {
        s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "stale")
    }
    lines = [
        f"{len(outcomes)} runs: {counts['done']} done, {counts['skipped']} skipped (finished"
        f" before), {counts['failed']} failed"
        + (f", {counts['stale']} stale" if counts["stale"] else "")
    ]
    for o in outcomes:
        if o.status == "failed":
            lines.append(
                f"  FAILED {o.name}: {o.error}"
                + (f"\n         notebook: {o.notebook}" if o.notebook else "")
            )
        elif o.status == "stale":
            lines.append(
                f"  STALE {o.name}: made with another config,"
                f" {o.error.removeprefix('config changed: ')}"
            )
        if o.moved:
            lines.append(f"  rerun {o.name}: its old directory is now {o.moved}")
        if o.repaired:
            lines.append(f"  REPAIRED {o.name} (finished; reopened): {o.repaired}")
    if counts["stale"]:
        lines.append(
            "  stale runs are neither done nor rerun: --rerun-stale moves them aside (never"
            " deletes) and reruns them"
        )
    return "\n".join(lines)


def dry_run(runs: Sequence[GridRun], output) -> int:
    """Print every run's status and path, how a stale run's config changed, and every problem of an
    invalid config; return the exit status (1 when a config is invalid or a run stale)."""
    from fmlib.config import ExperimentConfig

    output = Path(output)
    invalid = stale = 0
    for run in runs:
        problems = ExperimentConfig.from_dict(run.params).problems(check_dataset=False)
        status, changes = run_state(_absolute_data_root(run), output.resolve())
        note = f"  config changed: {'; '.join(changes)}" if status == "stale" else ""
        note += f"  INVALID: {'; '.join(problems)}" if problems else ""
        invalid, stale = invalid + bool(problems), stale + (status == "stale")
        print(f"{status:8s} {run.path(output)}{note}")
    extra = (f", {invalid} invalid" if invalid else "") + (
        f", {stale} stale (--rerun-stale moves them aside and reruns them)" if stale else ""
    )
    print(f"{len(runs)} runs in {output}{extra}")
    return 1 if invalid or stale else 0
