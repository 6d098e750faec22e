"""Whole AL runs: the one place that joins a config (:mod:`fmlib.config`), the loop
(:mod:`fmlib.loop`) and the records (:mod:`fmlib.records`).

:func:`run_experiment` validates the config once and builds its parts before it writes anything,
holds the run directory's lock while it works, and writes the records after every round.
The rounds themselves go through :class:`fmlib.session.ActiveSession` (ask/tell): a query
waiting for labels is kept in the run directory with every answer given, and resumes as it was.

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

from fmlib.build import RunParts, build, load_data
from fmlib.checks import is_int
from fmlib.config import (
    RESULT_NEUTRAL_FIELDS,
    ExperimentConfig,
    label_schedule,
    smoke_config,
)
from fmlib.loop import ActiveLoop, RoundResult
from fmlib.records import RunRecords
from fmlib.session import ActiveSession, open_session

__all__ = [
    "RESULT_NEUTRAL_FIELDS",
    "ActiveLoop",
    "ActiveSession",
    "ExperimentConfig",
    "RoundResult",
    "RunParts",
    "build",
    "label_schedule",
    "load_data",
    "open_session",
    "run_experiment",
    "smoke_config",
]


def run_experiment(
    config: ExperimentConfig | Mapping,
    *,
    data=None,
    strategy=None,
    model=None,
    train=None,
    oracle=None,
    callbacks=(),
    max_rounds: int | None = None,
) -> RunRecords:
    """Run (or resume, or just reload) a whole AL run.

    Args:
        config: an :class:`ExperimentConfig` or a plain dict of its fields.
        data: your pool and test set instead of loading ``config.dataset``: a ``(pool, test)`` pair
            of torch Datasets of ``(x, y)`` items (``y`` an integer class), or an :class:`ALData`;
            the dataset fields of ``config`` (dataset, imbalance, pool_size, ...) are then unused.
            Resuming trusts the caller to pass the same data again.
        strategy: a strategy object instead of
            ``get_strategy(config.strategy, **strategy_options)``.
        model: a factory, ``model(num_classes) -> nn.Module``, instead of ``config.model``: forward
            gives logits ``[N, num_classes]``; ``embed(x)`` (penultimate features) and ``head`` (the
            final ``nn.Linear``) only where the strategy needs them
            (:data:`fmlib.build.MODEL_CONTRACT`). Checked on a batch of the pool before anything
            trains or is written; called once, and ``fit`` re-initialises it every round
            (``reset_parameters`` of each layer).
        train: a training hook instead of ``config.trainer`` / :func:`fmlib.train.fit`:
            ``train(model, data, labeled, *, seed, device) -> dict`` of stats, called every round.
        oracle: who labels each query: ``oracle(positions, items) -> labels`` (one class per pool
            position); ``None``: the pool's own labels (simulation). See :mod:`fmlib.session`.
        callbacks: objects with ``on_query(query)`` and/or ``on_round(row)``
            (:mod:`fmlib.callbacks`).
        max_rounds: stop after this many rounds in this call (the directory resumes later).

    Returns:
        The run's records (all finished rounds so far).
    """
    if max_rounds is not None and not (is_int(max_rounds) and max_rounds >= 1):
        raise ValueError(f"max_rounds must be an integer >= 1 or None, got {max_rounds!r}")
    parts = {"data": data, "strategy": strategy, "model": model, "train": train}
    with open_session(config, **parts, callbacks=callbacks) as session:
        return session.run(oracle, max_rounds=max_rounds)
