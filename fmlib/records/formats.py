"""The record formats other modules build and read: a ``rounds.csv`` row (:class:`RoundRow` and
its per-class columns), a ``queries.csv`` row, and ``config.json``'s run metadata
(:class:`RunMeta`, built by :func:`run_meta`, read through the functions below).

Nothing here touches a file: the loop and the session build rows and metadata with it, the run
directory writes them, and analysis, the watch, the grid and the callbacks read them through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypedDict


class RoundRow(TypedDict):
    """One ``rounds.csv`` row. The per-class columns ``acc_<c>``, ``count_<c>``, ``query_<c>``
    (:data:`CLASS_KINDS`) follow ``balanced_accuracy``; :func:`round_row` puts them there."""

    round: int  # 0-based
    n_labeled: int  # labels the round trained on
    n_queried: int  # labels it picked (0 in the last round)
    accuracy: float  # test accuracy
    balanced_accuracy: float  # mean of the per-class test accuracies
    train_epochs: int  # -1 when the training does not say
    train_accuracy: float  # NaN when the training does not say
    train_loss: float
    train_time: float  # seconds, as are the other *_time columns
    eval_time: float
    select_time: float  # the whole select call; NaN in a round that picks nothing
    embed_time: float  # the strategy's embedding time; NaN in a round that picks nothing
    fisher_trace: float  # Fisher strategies; NaN for the others
    mask_size: int  # parameters in the Fisher mask; -1 for strategies without one
    torch_threads: int  # the torch thread count that computed the round


ROUND_COLUMNS = tuple(RoundRow.__annotations__)  # the fixed columns, in file order
_HEAD = ROUND_COLUMNS.index("balanced_accuracy") + 1  # the per-class columns come after these
TIME_COLUMNS = tuple(c for c in ROUND_COLUMNS if c.endswith("_time"))  # seconds
# the seconds a round spends on its query, in the order they are spent: the test-set evaluation is
# the experimenter's cost, not the method's; select_time is the whole call, embed_time within it
QUERY_TIME_COLUMNS = ("train_time", "embed_time", "select_time")
# the per-class columns, f"{kind}_{c}" for class index c: test accuracy, labeled count (before the
# round's query) and queried count of class c
CLASS_KINDS = ("acc", "count", "query")
QUERY_COLUMNS = ("round", "order", "pool_index", "label", "source")  # source: "pool" | "oracle"


def class_column(kind: str, c: int) -> str:
    """The rounds.csv column of class ``c`` for ``kind`` (one of :data:`CLASS_KINDS`)."""
    if kind not in CLASS_KINDS:
        raise ValueError(f"kind must be one of {list(CLASS_KINDS)}, got {kind!r}")
    return f"{kind}_{c}"


def class_values(kind: str, values: Iterable) -> dict:
    """``{class_column(kind, c): values[c]}`` for every class ``c``, in class order."""
    return {class_column(kind, c): v for c, v in enumerate(values)}


def class_columns(columns, kind: str) -> list[str]:
    """The ``kind`` per-class columns among ``columns`` (a frame, a row or names), in class
    order."""
    prefix = class_column(kind, "")
    found = [
        c
        for c in columns
        if isinstance(c, str) and c.startswith(prefix) and c[len(prefix) :].isdigit()
    ]
    return sorted(found, key=column_class)


def column_class(column: str) -> int:
    """The class index of a per-class column: ``column_class("acc_3") == 3``."""
    return int(column.rpartition("_")[2])


def round_row(values: Mapping, *, acc: Sequence, count: Sequence, query: Sequence) -> RoundRow:
    """A rounds.csv row in file order from the fixed columns' ``values`` and the per-class
    values (one per class each).

    Raises:
        ValueError: ``values`` lacks a fixed column or has one :class:`RoundRow` does not declare.
    """
    missing = [c for c in ROUND_COLUMNS if c not in values]
    unknown = [c for c in values if c not in ROUND_COLUMNS]
    if missing or unknown:
        raise ValueError(
            f"a round row needs the columns {list(ROUND_COLUMNS)}: missing {missing}, "
            f"unknown {unknown}"
        )
    head, tail = ROUND_COLUMNS[:_HEAD], ROUND_COLUMNS[_HEAD:]
    return {
        **{c: values[c] for c in head},
        **class_values("acc", acc),
        **class_values("count", count),
        **class_values("query", query),
        **{c: values[c] for c in tail},
    }


def query_rows(round: int, picked, labels, sources) -> list[dict]:
    """The queries.csv rows of one batch (:data:`QUERY_COLUMNS`), in pick order."""
    return [
        dict(zip(QUERY_COLUMNS, (round, i, int(p), int(y), s)))
        for i, (p, y, s) in enumerate(zip(picked, labels, sources))
    ]


# ----------------------------------------------------------------------------- run metadata


class DataSummary(TypedDict):
    """``config.json``'s ``data``: what the run's pool and test set held."""

    source: str  # the dataset's name in the config, or who passed the data
    name: str
    pool_size: int
    test_size: int
    classes: list[str]
    pool_counts: list[int]  # per class
    test_counts: list[int]


class RunMeta(TypedDict, total=False):
    """``config.json``: the config and what made the run (keys from :func:`run_meta`); ``stopped``
    appears when a stopping rule ended the run, ``model_factory`` / ``train_hook`` when the
    caller passed its own."""

    config: dict  # ExperimentConfig.to_dict()
    fmlib_version: str
    git: dict  # the commit and whether the tree was dirty
    environment: dict  # python, torch, host, CPU, device, torch thread count at the start
    torch_threads: list[int]  # every count used, in order
    threads_mixed: bool
    torch_versions: list[str]  # every torch version used, in order
    torch_mixed: bool
    data: DataSummary
    schedule: list[int]  # labeled-set size per round
    stopped: dict  # {"round": r, "rule": ..., ...}
    model_factory: str
    train_hook: str


def data_summary(source: str, pool, test) -> DataSummary:
    """The ``data`` block of a run's metadata from its pool and test set (datasets with ``name``,
    ``classes`` and ``class_counts()``)."""
    return {
        "source": source,
        "name": pool.name,
        "pool_size": len(pool),
        "test_size": len(test),
        "classes": list(pool.classes),
        "pool_counts": pool.class_counts().tolist(),
        "test_counts": test.class_counts().tolist(),
    }


def run_meta(
    config: dict,
    *,
    version: str,
    git: dict,
    environment: dict,
    threads: int,
    torch_version: str,
    data: DataSummary,
    schedule: Sequence[int],
    model_factory: str | None = None,
    train_hook: str | None = None,
) -> RunMeta:
    """A new run's metadata, as ``config.json`` holds it."""
    meta: RunMeta = {
        "config": config,
        "fmlib_version": version,
        "git": git,
        "environment": environment,
        "torch_threads": [threads],
        "threads_mixed": False,
        "torch_versions": [torch_version],
        "torch_mixed": False,
        "data": data,
        "schedule": list(schedule),
    }
    if model_factory is not None:
        meta["model_factory"] = model_factory
    if train_hook is not None:
        meta["train_hook"] = train_hook
    return meta


def thread_counts(meta: Mapping) -> list:
    """The torch thread counts a run used, in order (``config.json``'s ``torch_threads``; an
    older one has only the environment's count)."""
    return meta.get("torch_threads") or [meta.get("environment", {}).get("torch_threads")]


def torch_versions(meta: Mapping) -> list:
    """The torch versions a run used, in order (an older ``config.json`` has only the
    environment's)."""
    return meta.get("torch_versions") or [meta.get("environment", {}).get("torch")]


def planned_rounds(meta: Mapping) -> int | None:
    """Rounds of the run's label schedule; ``None`` when the metadata has none."""
    schedule = meta.get("schedule") if isinstance(meta, Mapping) else None
    return len(schedule) if isinstance(schedule, list) and schedule else None


def class_names(meta: Mapping) -> list[str]:
    """The run's class names, in class order."""
    return list(meta["data"]["classes"])


def resume_threads(
    meta: dict, rounds: Sequence[Mapping], threads: int, *, allowed: bool, path
) -> None:
    """Refuse to resume with another torch thread count than the run's last round, unless
    ``allowed``; then record the change in ``meta`` (``torch_threads``, ``threads_mixed``)."""
    used = thread_counts(meta)
    last = rounds[-1].get("torch_threads", used[-1]) if rounds else used[-1]
    if last is None or threads == last:
        return
    if not allowed:
        raise ValueError(
            f"{path} was made with {last} torch thread(s) and this process has {threads}: the "
            "rounds still to run would not give the results of an uninterrupted run. Resume with "
            f"torch.set_num_threads({last}) (or OMP_NUM_THREADS={last}), or set "
            "allow_thread_change=True (the records then say the thread count was mixed)"
        )
    meta["torch_threads"] = [*used, threads]
    meta["threads_mixed"] = len(set(meta["torch_threads"])) > 1


def resume_torch(meta: dict, version: str, *, allowed: bool, path) -> None:
    """Refuse to resume with another torch version than the run's last one, unless ``allowed``;
    then record the change in ``meta`` (``torch_versions``, ``torch_mixed``)."""
    used = torch_versions(meta)
    if used[-1] is None or used[-1] == version:
        return
    if not allowed:
        raise ValueError(
            f"{path} was made with torch {used[-1]} and this process has torch {version}: the "
            "rounds still to run would not give the results of an uninterrupted run. Resume with "
            f"torch {used[-1]}, or set allow_torch_change=True (the records then say the torch "
            "version was mixed)"
        )
    meta["torch_versions"] = [*used, version]
    meta["torch_mixed"] = True
