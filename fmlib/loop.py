"""The active-learning loop, one round per :meth:`ActiveLoop.step`, from parts built elsewhere.

Round ``r`` of a run trains a freshly seeded model on the labeled set ``L_r`` (``fit``),
evaluates it once on the test set, and, unless the label budget is reached, asks the strategy
for the next batch ``B_r`` and labels it: ``L_{r+1} = L_r + B_r``. Round 0 trains on the
initial set (unless ``train_first=False``: then the initial weights make the first query).
The loop takes injected parts (data, model, strategy, schedule, training; see
:func:`fmlib.build.build`), returns each round's row and batch in :class:`RoundResult`, and never
touches records: :func:`fmlib.experiment.run_experiment` writes them. Strategies never see the
loop. Everything random in round ``r`` is seeded from ``round_seed(seed, r, purpose)``; each row
records the torch thread count that computed it, since float rounding depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fmlib.data import ALData, as_al_data
from fmlib.models import default_device
from fmlib.seeds import round_seed, seeded
from fmlib.strategies import SelectionReport
from fmlib.strategies.base import check_picks
from fmlib.train import NonFiniteError, TrainConfig, evaluate, fit


@dataclass
class RoundResult:
    """What one round produced: the rounds.csv row, the batch picked (pool positions, pick order),
    its labels and the strategy's report (empty in the last round, which picks nothing)."""

    round: int
    row: dict
    picked: np.ndarray  # int64 [K] pool positions, pick order
    picked_labels: np.ndarray  # int64 [K]
    report: SelectionReport


class ActiveLoop:
    """Train -> evaluate -> select -> label, one round per :meth:`step`.

    Args:
        data: pool and test set: an :class:`~fmlib.data.ALData` or a ``(pool, test)`` pair of
            torch Datasets of ``(x, y)`` items.
        model: the network (re-initialised by ``fit`` when ``train_config.reinit``).
        strategy: anything with ``select(model, pool, labeled, unlabeled, n, *, seed, device)``;
            its ``report`` (:class:`~fmlib.strategies.SelectionReport`), when it has one, goes
            into the round's row.
        schedule: labeled-set size per round, ``schedule[0] == len(initial)``.
        train_config: per-round training.
        initial: pool positions labeled before round 0.
        seed: per-round seeds derive from it (:func:`round_seed`).
        device: where to train, evaluate and select.
        train_first: when ``False``, round 0 does not train: the model as given (the initial
            weights) is evaluated and makes the first query (the authors' protocol; see
            :data:`fmlib.config.FIRST_QUERY`). Later rounds always train.
        progress: nested tqdm bars (``leave=False``) inside each round: training epochs, and for a
            strategy with a ``progress`` option (bait, fishermask: the Fisher diagonal, the
            embeddings, the greedy) that option is turned on during its ``select``.
    """

    def __init__(self, data: ALData, model: nn.Module, strategy, schedule: Sequence[int], train_config: TrainConfig,
                 *, initial, seed: int = 0, device=None, train_first: bool = True, progress: bool = False):  # fmt: skip
        self.progress = progress
        self.data, self.model, self.strategy, self.train_first = as_al_data(data), model, strategy, train_first
        self.schedule, self.train_config, self.seed = list(schedule), train_config, seed
        self.device = torch.device(device) if device is not None else default_device()
        self.labeled = np.asarray(initial, dtype=np.int64)
        if len(self.labeled) != self.schedule[0] or len(np.unique(self.labeled)) != len(self.labeled):
            raise ValueError(f"initial must hold {self.schedule[0]} distinct positions, got {len(self.labeled)}")
        self.round = 0

    @property
    def finished(self) -> bool:
        return self.round >= len(self.schedule)

    def unlabeled(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self.data.pool)), self.labeled)

    def step(self) -> bool:
        """Run one round; return whether another one follows."""
        if self.finished:
            raise RuntimeError("the loop is finished")
        try:
            return self._step()
        except NonFiniteError as err:
            raise NonFiniteError(f"round {self.round}: {err}") from None

    def _step(self) -> bool:
        r, pool, classes = self.round, self.data.pool, range(self.data.pool.num_classes)
        if r == 0 and not self.train_first:
            self.model.to(self.device).eval()  # the initial weights query; nothing trained
            stats = {"epochs": 0, "train_accuracy": float("nan"), "train_loss": float("nan"), "seconds": 0.0}
        else:
            with seeded(round_seed(self.seed, r, "train"), self.device):
                stats = fit(self.model, pool, self.labeled, self.train_config,
                            seed=round_seed(self.seed, r, "train"), device=self.device, progress=self.progress)  # fmt: skip
        start = time.perf_counter()
        metrics = evaluate(self.model, self.data.test, device=self.device)
        eval_time = time.perf_counter() - start
        picked, report, select_time = np.zeros(0, dtype=np.int64), SelectionReport(), float("nan")
        if r + 1 < len(self.schedule):
            n = self.schedule[r + 1] - self.schedule[r]
            start = time.perf_counter()
            with seeded(round_seed(self.seed, r, "select"), self.device), self._strategy_progress():
                picked = self.strategy.select(self.model, pool, self.labeled.copy(), self.unlabeled(), n,
                                              seed=round_seed(self.seed, r, "select"), device=self.device)  # fmt: skip
            select_time = time.perf_counter() - start
            name = getattr(self.strategy, "name", "") or type(self.strategy).__name__
            picked = check_picks(picked, n, self.unlabeled(), self.labeled, what=f"round {r}: strategy {name!r}",
                                 pool_size=len(pool))  # fmt: skip
            report = getattr(self.strategy, "report", None) or SelectionReport()
        counts, queried = pool.class_counts(self.labeled), pool.class_counts(picked)
        fisher = report.fisher
        row = {
            "round": r,
            "n_labeled": len(self.labeled),
            "n_queried": len(picked),
            "accuracy": metrics["accuracy"],
            "balanced_accuracy": metrics["balanced_accuracy"],
            **{f"acc_{c}": float(metrics["per_class_accuracy"][c]) for c in classes},
            **{f"count_{c}": int(counts[c]) for c in classes},
            **{f"query_{c}": int(queried[c]) for c in classes},
            "train_epochs": int(stats["epochs"]),
            "train_accuracy": float(stats["train_accuracy"]),
            "train_loss": float(stats["train_loss"]),
            "train_time": float(stats["seconds"]),
            "eval_time": eval_time,
            "select_time": select_time,
            "embed_time": float(report.embed_time) if len(picked) else float("nan"),
            "fisher_trace": float(fisher.fisher_trace) if fisher else float("nan"),
            "mask_size": int(sum(int(m.sum()) for m in fisher.mask.values())) if fisher else -1,
            "torch_threads": torch.get_num_threads(),
        }
        labels = pool.labels[torch.as_tensor(picked)].numpy()
        self.labeled = np.concatenate([self.labeled, picked])
        self.round += 1
        self.last = RoundResult(r, row, picked, labels, report)
        return not self.finished

    @contextmanager
    def _strategy_progress(self):
        """Turn on the strategy's own ``progress`` option (when it has one) while it selects."""
        options = getattr(self.strategy, "options", None)
        if not self.progress or not isinstance(options, dict) or "progress" not in options:
            yield
            return
        before, options["progress"] = options["progress"], True
        try:
            yield
        finally:
            options["progress"] = before

    def state_dict(self) -> dict:
        return {
            "round": self.round,
            "labeled": torch.from_numpy(self.labeled.copy()),
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.round = int(state["round"])
        self.labeled = state["labeled"].numpy().astype(np.int64)
        self.model.load_state_dict(state["model"])
