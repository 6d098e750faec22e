"""What a run leaves on disk, the one owner of a run directory, and tidy tables to analyse runs.

One directory per run::

    config.json      config, fmlib version, git commit, environment, torch thread counts, classes,
                     label schedule
    rounds.csv       one row per finished round (metrics, class histograms, timings, torch threads)
    queries.csv      one row per labeled sample: round it joined (0 = initial set), order, pool
                     index, label
    sensitivity/round_XXX.npz
                     Fisher strategies only: summaries of the Fisher diagonal and the mask of
                     round XXX
    checkpoint.pt    loop state and all of the above after the last finished round (resume, repair)
    results.json     summary of a finished run (write_results: the notebook, the CLI, the grid)
    .lock            who holds the directory (process id, host, since when)

What a run directory guarantees (:class:`RunDirectory`):

* one writer: a run holds an ``flock`` on ``.lock`` while it works; a second one refuses at once,
  naming the holder; a dead holder's lock is taken over with a warning;
* atomic records: every file is written to a temporary file in the same directory and moved into
  place with ``os.replace``, with the user's umask; a full disk is said plainly;
* verified on reopen: ``checkpoint.pt`` is the primary state, written before what derives from it;
  reopening removes leftover temporary files, rebuilds every derived file that disagrees with the
  checkpoint, and refuses a damaged checkpoint or records without one, saying what to delete;
* one comparison of configs: a run resumes only with the config it was made with (fields that do
  not change results aside); the grid reports a finished run with another config as stale;
* one definition of finished (:func:`is_finished`): every round of the schedule ran.

The modules: :mod:`~fmlib.records.files` (atomic writes, ``config.json``, provenance),
:mod:`~fmlib.records.tables` (in-memory records, the summary, tidy tables),
:mod:`~fmlib.records.formats` (the declared formats: the round row, its per-class columns, the
queries row, the run metadata), :mod:`~fmlib.records.snapshots` (sensitivity snapshots),
:mod:`~fmlib.records.directory` (the run directory) and :mod:`~fmlib.records.lock` (its lock).
"""

from fmlib.records.directory import (
    FORMAT_VERSION,
    RunDirectory,
    config_differences,
    export_runs,
    run_status,
    write_results,
)
from fmlib.records.files import (
    CHECKPOINT,
    CONFIG,
    LOCK,
    QUERIES,
    RESULTS,
    ROUNDS,
    SENSITIVITY,
    STALE,
    DamagedRunError,
    RunDirectoryError,
    atomic_write,
    environment,
    fmlib_version,
    git_commit,
    read_meta,
    save_npz,
    save_torch,
    write_csv,
    write_json,
)
from fmlib.records.formats import (
    CLASS_KINDS,
    QUERY_COLUMNS,
    QUERY_TIME_COLUMNS,
    ROUND_COLUMNS,
    TIME_COLUMNS,
    DataSummary,
    RoundRow,
    RunMeta,
    class_column,
    class_columns,
    class_names,
    class_values,
    column_class,
    data_summary,
    planned_rounds,
    query_rows,
    resume_threads,
    resume_torch,
    round_row,
    run_meta,
    thread_counts,
    torch_versions,
)
from fmlib.records.lock import RunLockedError
from fmlib.records.snapshots import (
    QUANTILES,
    fisher_snapshot,
    load_snapshot,
    load_snapshots,
    snapshot_bytes,
    snapshot_masks,
)
from fmlib.records.tables import (
    RunRecords,
    curve_area,
    is_finished,
    load_queries,
    load_run,
    load_runs,
    results_summary,
    run_columns,
    run_summary,
)

__all__ = [
    "CHECKPOINT",
    "CLASS_KINDS",
    "CONFIG",
    "FORMAT_VERSION",
    "LOCK",
    "QUANTILES",
    "QUERIES",
    "QUERY_COLUMNS",
    "QUERY_TIME_COLUMNS",
    "RESULTS",
    "ROUND_COLUMNS",
    "ROUNDS",
    "SENSITIVITY",
    "STALE",
    "TIME_COLUMNS",
    "DamagedRunError",
    "DataSummary",
    "RoundRow",
    "RunDirectory",
    "RunDirectoryError",
    "RunLockedError",
    "RunMeta",
    "RunRecords",
    "atomic_write",
    "class_column",
    "class_columns",
    "class_names",
    "class_values",
    "column_class",
    "config_differences",
    "curve_area",
    "data_summary",
    "environment",
    "export_runs",
    "fisher_snapshot",
    "fmlib_version",
    "git_commit",
    "is_finished",
    "load_queries",
    "load_run",
    "load_runs",
    "load_snapshot",
    "load_snapshots",
    "planned_rounds",
    "query_rows",
    "read_meta",
    "results_summary",
    "resume_threads",
    "resume_torch",
    "round_row",
    "run_columns",
    "run_meta",
    "run_status",
    "run_summary",
    "save_npz",
    "save_torch",
    "snapshot_bytes",
    "snapshot_masks",
    "thread_counts",
    "torch_versions",
    "write_csv",
    "write_json",
    "write_results",
]
