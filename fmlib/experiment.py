"""Whole AL runs: the one place that joins a config (:mod:`fmlib.config`), the loop
(:mod:`fmlib.loop`) and the records (:mod:`fmlib.records`).

:func:`run_experiment` checks the config completely and builds its parts before it writes anything,
holds the run directory's lock while it works, and writes the records after every round.

Resume. After each round the run directory gets ``checkpoint.pt``: the round reached, the
labeled positions in labeling order, the model weights (selection in the next round uses them;
they also carry over when training does not re-initialise) and the records so far. ``fit``
builds a new optimizer every round, so there is no optimizer state to keep, and no RNG state is
kept because none is carried between rounds. Re-running the same config on the same directory
verifies and repairs its records (:meth:`~fmlib.records.RunDirectory.open`), continues after the
last finished round and ends with the records an uninterrupted run gives (on CPU bit for bit,
wall times aside); a finished run returns its records without work. A different config refuses
with a ``ValueError`` listing the differing fields; fields that do not change results are
ignored in that comparison: ``RESULT_NEUTRAL_FIELDS`` (where the data and the outputs live, the
device, the progress bar). Moving a run between CPU and GPU therefore resumes, but the results
are no longer bit-identical to a one-device run.

Threads. Float rounding, and so the results, depend on torch's thread count. Every round records
it (``torch_threads`` in ``rounds.csv``, the counts used in ``config.json``); resuming with another
count than the run's last round is refused unless the config sets ``allow_thread_change``, and the
records then say the counts were mixed (``threads_mixed``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from fmlib.build import RunParts, build, load_data
from fmlib.config import (
    RESULT_NEUTRAL_FIELDS,
    ExperimentConfig,
    comparison,
    _is_int,
    label_schedule,
    smoke_config,
)
from fmlib.loop import ActiveLoop, RoundResult
from fmlib.records import (
    RunDirectory,
    RunRecords,
    environment,
    fisher_snapshot,
    fmlib_version,
    git_commit,
    snapshot_bytes,
)

__all__ = [
    "RESULT_NEUTRAL_FIELDS",
    "ActiveLoop",
    "ExperimentConfig",
    "RoundResult",
    "RunParts",
    "build",
    "label_schedule",
    "load_data",
    "run_experiment",
    "smoke_config",
]


def run_experiment(config: ExperimentConfig | Mapping, *, data=None, strategy=None, model=None,
                   max_rounds: int | None = None) -> RunRecords:  # fmt: skip
    """Run (or resume, or just reload) a whole AL run.

    Args:
        config: an :class:`ExperimentConfig` or a plain dict of its fields.
        data: your pool and test set instead of loading ``config.dataset``: a ``(pool, test)`` pair
            of torch Datasets of ``(x, y)`` items (``y`` an integer class), or an :class:`ALData`;
            the dataset fields of ``config`` (dataset, imbalance, pool_size, ...) are then unused.
            Resuming trusts the caller to pass the same data again.
        strategy: a strategy object instead of ``get_strategy(config.strategy, **strategy_options)``.
        model: a factory, ``model(num_classes) -> nn.Module``, instead of ``config.model``: forward
            gives logits ``[N, num_classes]``; ``embed(x)`` (penultimate features) and ``head`` (the
            final ``nn.Linear``) only where the strategy needs them (:data:`fmlib.build.MODEL_CONTRACT`).
            Checked on a batch of the pool before anything trains or is written; called once, and
            ``fit`` re-initialises it every round (``reset_parameters`` of each layer).
        max_rounds: stop after this many rounds in this call (the directory resumes later).

    Returns:
        The run's records (all finished rounds so far).
    """
    config = ExperimentConfig.from_dict(config) if isinstance(config, Mapping) else config
    problems = config.problems(check_dataset=data is None, check_strategy=False, parts=False)
    if max_rounds is not None and not (_is_int(max_rounds) and max_rounds >= 1):
        problems.append(f"max_rounds must be an integer >= 1 or None, got {max_rounds!r}")
    if problems:  # before any directory is made
        raise ValueError(problems[0] if len(problems) == 1 else "\n  ".join([f"{len(problems)} problems:", *problems]))
    if config.output_dir is None:
        return _run(build(config, data=data, strategy=strategy, model=model), None, None, max_rounds)
    run_dir = RunDirectory(config.output_dir)
    with run_dir.lock():
        checkpoint = run_dir.open(config.to_dict(), **comparison())
        if checkpoint is not None and RunRecords.from_state(checkpoint["records"]).finished:
            return RunRecords.from_state(checkpoint["records"], run_dir.path)
        parts = build(config, data=data, strategy=strategy, model=model)
        return _run(parts, run_dir, checkpoint, max_rounds)


def _run(parts: RunParts, run_dir: RunDirectory | None, checkpoint: dict | None, max_rounds: int | None) -> RunRecords:
    config, pool = parts.config, parts.data.pool
    loop = ActiveLoop(parts.data, parts.model, parts.strategy, parts.schedule, parts.training, initial=parts.initial,
                      seed=config.seed, device=parts.device, train_first=config.trains_first(),
                      progress=config.progress)  # fmt: skip
    threads = torch.get_num_threads()
    if checkpoint is not None:
        records = RunRecords.from_state(checkpoint["records"], run_dir.path)
        _check_threads(records, threads, config.allow_thread_change, run_dir.path)
        loop.load_state_dict(checkpoint["loop"])
    else:
        meta = {
            "config": config.to_dict(),
            "fmlib_version": fmlib_version(),
            "git": git_commit(),
            "environment": environment(parts.device),
            "torch_threads": [threads],  # every count used, in order
            "threads_mixed": False,
            "data": {"source": parts.source, "name": pool.name,
                     "pool_size": len(pool), "test_size": len(parts.data.test), "classes": list(pool.classes),
                     "pool_counts": pool.class_counts().tolist(), "test_counts": parts.data.test.class_counts().tolist()},
            "schedule": loop.schedule,
        }  # fmt: skip
        if parts.model_factory is not None:
            meta["model_factory"] = parts.model_factory
        records = RunRecords(meta, path=run_dir.path if run_dir else None)
        records.queries += _query_rows(0, parts.initial, pool.labels[torch.as_tensor(parts.initial)].numpy())
        if run_dir is not None:
            run_dir.write_meta(meta)
    bar = tqdm(total=len(loop.schedule), initial=loop.round, desc=config.strategy, unit="round", disable=not config.progress)
    done = 0
    try:
        while not loop.finished and (max_rounds is None or done < max_rounds):
            loop.step()
            done += 1
            result = loop.last
            records.rounds.append(result.row)
            records.queries += _query_rows(result.round + 1, result.picked, result.picked_labels)
            if result.report.fisher is not None:
                snapshot = fisher_snapshot(result.report.fisher, result.picked, result.picked_labels, round=result.round,
                                           full=config.full_fisher)  # fmt: skip
                records.snapshots[result.round] = snapshot_bytes(snapshot)
            if run_dir is not None:
                run_dir.save(records, loop.state_dict())
            bar.update(1)
            bar.set_postfix(acc=f"{result.row['accuracy']:.3f}", labeled=result.row["n_labeled"])
    finally:
        bar.close()
    return records


def _check_threads(records: RunRecords, threads: int, allowed: bool, path) -> None:
    """Refuse to resume with another torch thread count than the run's last round, unless allowed;
    then record the change."""
    meta = records.meta
    used = meta.get("torch_threads") or [meta.get("environment", {}).get("torch_threads")]
    last = records.rounds[-1].get("torch_threads", used[-1]) if records.rounds else used[-1]
    if last is None or threads == last:
        return
    if not allowed:
        raise ValueError(f"{path} was made with {last} torch thread(s) and this process has {threads}: the rounds "
                         "still to run would not give the results of an uninterrupted run. Resume with "
                         f"torch.set_num_threads({last}) (or OMP_NUM_THREADS={last}), or set allow_thread_change=True "
                         "(the records then say the thread count was mixed)")  # fmt: skip
    meta["torch_threads"] = [*used, threads]
    meta["threads_mixed"] = len(set(meta["torch_threads"])) > 1


def _query_rows(round: int, picked: np.ndarray, labels: np.ndarray) -> list[dict]:
    return [{"round": round, "order": i, "pool_index": int(p), "label": int(y)}
            for i, (p, y) in enumerate(zip(picked, labels))]  # fmt: skip
