"""The active-learning loop, one round per :meth:`ActiveLoop.step`, from parts built elsewhere.

Round ``r`` of a run trains a freshly seeded model on the labeled set ``L_r`` (``fit``),
evaluates it once on the test set, and, unless the label budget is reached, asks the strategy
for the next batch ``B_r`` and labels it: ``L_{r+1} = L_r + B_r``. Round 0 trains on the
initial set (unless ``train_first=False``: then the initial weights make the first query).
A round is :meth:`ActiveLoop.query` (train, evaluate, select) then :meth:`ActiveLoop.label`
(the batch's labels, from anyone: they are trained on from the next round);
:meth:`~ActiveLoop.step` is both, with the pool's own labels. The loop takes injected parts (data,
model, strategy, schedule, training, an optional training hook; see :func:`fmlib.build.build`),
returns each round's row and batch in :class:`RoundResult`, and never touches records:
:func:`fmlib.experiment.run_experiment` writes them. Each row is a
:class:`fmlib.records.RoundRow` built with the declared format (the one part of
:mod:`fmlib.records` the loop imports). Strategies never see the loop. Everything random in round
``r`` is seeded from ``round_seed(seed, r, purpose)``; each row records the torch thread count
that computed it, since float rounding depends on it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fmlib.data import ALData, as_al_data
from fmlib.models import default_device
from fmlib.records.formats import class_values, round_row
from fmlib.seeds import round_seed, seeded
from fmlib.strategies import SelectionReport, check_picks
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
    source: str = "pool"  # where the batch's labels came from: "pool" (simulation) | "oracle"


@dataclass
class Query:
    """A round's query, waiting for its labels: the batch (pool positions, pick order), the round's
    row so far (class counts of the labels still zero) and the strategy's report."""

    round: int
    positions: np.ndarray  # int64 [K] pool positions, pick order
    row: dict
    report: SelectionReport
    stop: dict | None = None  # the stopping rule that ends the run in this round (nothing queried)


def check_answer(queried, positions, labels, num_classes: int) -> np.ndarray:
    """Where each queried position sits in ``positions`` (``int [K]``), after checking that the
    answer covers every queried position exactly once with a class ``0..num_classes-1``;
    ``ValueError`` naming what is wrong otherwise."""
    queried = np.asarray(queried, dtype=np.int64).reshape(-1)
    positions = np.asarray(positions).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(positions):
        raise ValueError(f"got {len(labels)} labels for {len(positions)} positions")
    if len(positions) != len(queried):
        raise ValueError(
            f"the query holds {len(queried)} positions, got labels for {len(positions)}"
        )
    if (
        positions.dtype.kind not in "iu"
        or len(np.unique(positions)) != len(positions)
        or not np.isin(positions, queried).all()
    ):
        extra = sorted(set(positions.tolist()) - set(queried.tolist()))
        raise ValueError(
            f"positions must be the queried ones ({queried.tolist()}), each once; got "
            f"{positions.tolist()}" + (f" (not queried: {extra})" if extra else "")
        )
    whole = labels.dtype.kind == "f" and np.all(labels == np.round(labels))
    valid = labels.dtype.kind in "iu" or whole
    bad = [] if not valid else [int(v) for v in labels if not 0 <= v < num_classes]
    if not valid or bad:
        shown = bad if valid else labels.tolist()
        raise ValueError(f"labels must be classes 0..{num_classes - 1} (integers), got {shown}")
    index = {int(p): i for i, p in enumerate(positions)}
    return np.array([index[int(p)] for p in queried], dtype=np.int64)


def _train_columns(stats: Mapping) -> dict:
    """The rounds.csv training columns from a training's stats (missing ones: -1 epochs, NaN)."""

    def number(key):
        value = stats.get(key)
        return float(value) if isinstance(value, (int, float, np.number)) else float("nan")

    epochs = stats.get("epochs")
    return {
        "train_epochs": int(epochs) if isinstance(epochs, (int, np.integer)) else -1,
        "train_accuracy": number("train_accuracy"),
        "train_loss": number("train_loss"),
        "train_time": number("seconds"),
    }


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
        train: a training hook instead of ``fit(model, pool, labeled, train_config)``:
            ``train(model, data, labeled, *, seed, device) -> dict`` of stats (``epochs``,
            ``train_accuracy``, ``train_loss``, ``seconds`` go into the row when given; others are
            ignored). ``data`` holds the labels known so far; ``model`` is trained in place.
        train_first: when ``False``, round 0 does not train: the model as given (the initial
            weights) is evaluated and makes the first query (the authors' protocol; see
            :data:`fmlib.config.FIRST_QUERY`). Later rounds always train.
        progress: nested tqdm bars (``leave=False``) inside each round: training epochs, and for a
            strategy with a ``progress`` option (bait, fishermask: the Fisher diagonal, the
            embeddings, the greedy) that option is turned on during its ``select``.
    """

    def __init__(
        self,
        data: ALData,
        model: nn.Module,
        strategy,
        schedule: Sequence[int],
        train_config: TrainConfig,
        *,
        initial,
        seed: int = 0,
        device=None,
        train_first: bool = True,
        progress: bool = False,
        train: Callable | None = None,
    ):
        self.progress, self.train = progress, train
        self.data, self.model, self.strategy, self.train_first = (
            as_al_data(data),
            model,
            strategy,
            train_first,
        )
        self.schedule, self.train_config, self.seed = list(schedule), train_config, seed
        self.device = torch.device(device) if device is not None else default_device()
        self.labeled = np.asarray(initial, dtype=np.int64)
        if len(self.labeled) != self.schedule[0] or len(np.unique(self.labeled)) != len(
            self.labeled
        ):
            raise ValueError(
                f"initial must hold {self.schedule[0]} distinct positions, got {len(self.labeled)}"
            )
        self.round = 0
        self.known = self.data.pool.labels.clone()  # int64 [N]: the pool's labels, answers over
        self.pending: Query | None = None
        self.stop: Callable[[dict], dict | None] | None = None  # row so far -> the rule that stops
        self.stopped: dict | None = None

    @property
    def finished(self) -> bool:
        return self.round >= len(self.schedule) or self.stopped is not None

    def unlabeled(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self.data.pool)), self.labeled)

    def step(self) -> bool:
        """Run one round with the pool's own labels (simulation); return whether another follows."""
        query = self.query()
        labels = self.data.pool.labels[torch.as_tensor(query.positions)].numpy()
        self.label(query.positions, labels, source="pool")
        return not self.finished

    def query(self) -> Query:
        """Train, evaluate and select this round's batch (once: asked again, the same query comes
        back until :meth:`label` answers it). The last round selects nothing (empty positions)."""
        if self.finished:
            raise RuntimeError("the loop is finished")
        if self.pending is not None:
            return self.pending
        try:
            return self._query()
        except NonFiniteError as err:
            raise NonFiniteError(f"round {self.round}: {err}") from None

    def _query(self) -> Query:
        r, pool = self.round, self.known_pool()
        if r == 0 and not self.train_first:
            self.model.to(self.device).eval()  # the initial weights query; nothing trained
            stats = {
                "epochs": 0,
                "train_accuracy": float("nan"),
                "train_loss": float("nan"),
                "seconds": 0.0,
            }
        else:
            stats = self._train(r, pool)
        start = time.perf_counter()
        metrics = evaluate(self.model, self.data.test, device=self.device)
        eval_time = time.perf_counter() - start
        picked, report, select_time = np.zeros(0, dtype=np.int64), SelectionReport(), float("nan")
        stop = None
        if self.stop is not None and r + 1 < len(self.schedule):
            stop = self.stop({"round": r, "n_labeled": len(self.labeled), **metrics})
        if r + 1 < len(self.schedule) and stop is None:
            n = self.schedule[r + 1] - self.schedule[r]
            start = time.perf_counter()
            with seeded(round_seed(self.seed, r, "select"), self.device), self._strategy_progress():
                picked = self.strategy.select(
                    self.model,
                    pool,
                    self.labeled.copy(),
                    self.unlabeled(),
                    n,
                    seed=round_seed(self.seed, r, "select"),
                    device=self.device,
                )
            select_time = time.perf_counter() - start
            name = getattr(self.strategy, "name", "") or type(self.strategy).__name__
            picked = check_picks(
                picked,
                n,
                self.unlabeled(),
                self.labeled,
                what=f"round {r}: strategy {name!r}",
                pool_size=len(pool),
            )
            report = getattr(self.strategy, "report", None) or SelectionReport()
        classes, fisher = range(pool.num_classes), report.fisher
        values = {
            "round": r,
            "n_labeled": len(self.labeled),
            "n_queried": len(picked),
            "accuracy": metrics["accuracy"],
            "balanced_accuracy": metrics["balanced_accuracy"],
            **_train_columns(stats),
            "eval_time": eval_time,
            "select_time": select_time,
            "embed_time": float(report.embed_time) if len(picked) else float("nan"),
            "fisher_trace": float(fisher.fisher_trace) if fisher else float("nan"),
            "mask_size": int(sum(int(m.sum()) for m in fisher.mask.values())) if fisher else -1,
            "torch_threads": torch.get_num_threads(),
        }
        zeros = [0] * len(classes)  # label() fills the counts in: the labels are not known yet
        accuracies = [float(metrics["per_class_accuracy"][c]) for c in classes]
        row = round_row(values, acc=accuracies, count=zeros, query=zeros)
        self.pending = Query(r, picked, row, report, stop)
        return self.pending

    def label(self, positions, labels, *, source: str = "oracle") -> RoundResult:
        """Answer the pending query: ``labels[i]`` is the class of pool position ``positions[i]``
        (any order; every queried position once). Ends the round and returns its result.

        Raises:
            ValueError: no pending query, positions that are not the query's, a count that does not
                match, or labels that are not classes ``0..C-1``; the query stays pending.
        """
        query = self.pending
        if query is None:
            raise ValueError("no pending query: call query() first")
        order = check_answer(query.positions, positions, labels, self.data.pool.num_classes)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)[order]  # [K] in pick order
        picked, r, row = query.positions, query.round, dict(query.row)
        self.known[torch.as_tensor(picked)] = torch.as_tensor(labels)
        classes = self.data.pool.num_classes
        counts = np.bincount(self.known[torch.as_tensor(self.labeled)].numpy(), minlength=classes)
        queried = np.bincount(labels, minlength=self.data.pool.num_classes)
        row.update(class_values("count", [int(n) for n in counts]))
        row.update(class_values("query", [int(n) for n in queried]))
        self.labeled = np.concatenate([self.labeled, picked])
        self.round += 1
        self.pending = None
        self.stopped = query.stop
        self.last = RoundResult(r, row, picked, labels, query.report, source)
        return self.last

    def known_pool(self):
        """The pool with the labels known so far: the pool's own outside the answered positions."""
        pool = self.data.pool
        if torch.equal(self.known, pool.labels):
            return pool
        view = copy.copy(pool)
        view.labels = self.known.clone()
        return view

    def _train(self, r: int, pool) -> dict:
        seed = round_seed(self.seed, r, "train")
        with seeded(seed, self.device):
            if self.train is None:
                return fit(
                    self.model,
                    pool,
                    self.labeled,
                    self.train_config,
                    seed=seed,
                    device=self.device,
                    progress=self.progress,
                )
            name = getattr(self.train, "__qualname__", None) or type(self.train).__qualname__
            start = time.perf_counter()
            try:
                stats = self.train(
                    self.model, pool, self.labeled.copy(), seed=seed, device=self.device
                )
            except Exception as err:
                raise RuntimeError(
                    f"the training hook {name} raised in round {r}: "
                    f"{type(err).__name__}: {err}; the round is not recorded (rerun "
                    "to resume)"
                ) from err
            if not isinstance(stats, Mapping):
                got = type(stats).__name__
                raise ValueError(
                    f"the training hook {name} returned {got} in round "
                    f"{r}; it must return a dict of stats (may be empty: {{}}), e.g. "
                    "{'epochs': 5, 'train_loss': 0.3}"
                )
            return {"seconds": time.perf_counter() - start, **stats}

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
            "labels": self.known[torch.as_tensor(self.labeled)].clone(),  # in labeling order
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.round = int(state["round"])
        self.labeled = state["labeled"].numpy().astype(np.int64)
        self.known = self.data.pool.labels.clone()
        if "labels" in state:
            self.known[torch.as_tensor(self.labeled)] = state["labels"].long()
        self.model.load_state_dict(state["model"])
        self.pending = None

    def pending_state(self) -> dict:
        """The pending query as plain values and tensors (``torch.load(weights_only=True)``), with
        the weights that made it; :meth:`restore_pending` takes it back after
        :meth:`load_state_dict`."""
        query = self.pending
        weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return {
            "round": query.round,
            "positions": torch.from_numpy(query.positions.copy()),
            "row": dict(query.row),
            "stop": query.stop,
            "model": weights,
        }

    def restore_pending(self, state: dict) -> Query:
        if int(state["round"]) != self.round:
            raise ValueError(
                f"the pending query is of round {state['round']}, the loop is at round {self.round}"
            )
        self.model.load_state_dict(state["model"])
        positions = state["positions"].numpy().astype(np.int64)
        self.pending = Query(
            self.round, positions, dict(state["row"]), SelectionReport(), state.get("stop")
        )
        return self.pending
