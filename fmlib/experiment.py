"""The active-learning loop: a config, one round at a time, whole runs with records and resume.

Round ``r`` of a run trains a freshly seeded model on the labeled set ``L_r`` (``fit``),
evaluates it once on the test set, and, unless the label budget is reached, asks the strategy
for the next batch ``B_r`` and labels it: ``L_{r+1} = L_r + B_r``. Round 0 trains on the
initial set. :class:`ActiveLoop` does one round per :meth:`~ActiveLoop.step`;
:func:`run_experiment` builds its parts from an :class:`ExperimentConfig`, drives it, and
writes the records (:mod:`fmlib.records`). Strategies never see the loop.

Seeds. ``data_seed`` (default ``seed``) fixes the pool, the test subset and the initial set.
Everything random in round ``r`` (weight init, shuffling, the strategy's choices) is seeded from
``round_seed(seed, r, purpose)``, never from RNG state carried over from earlier rounds.

Resume. After each round the run directory gets ``checkpoint.pt``: the round reached, the
labeled positions in labeling order, the model weights (selection in the next round uses them;
they also carry over when training does not re-initialise) and the records so far. ``fit``
builds a new optimizer every round, so there is no optimizer state to keep, and no RNG state is
kept because none is carried between rounds. Re-running the same config on the same directory
continues after the last finished round and ends with the records an uninterrupted run gives
(on CPU bit for bit, wall times aside); a finished run returns its records without work. A
different config refuses with a ``ValueError`` listing the differing fields; fields that do not
change results are ignored in that comparison: ``RESULT_NEUTRAL_FIELDS`` (where the data and the
outputs live, the device, the progress bar). Moving a run between CPU and GPU therefore resumes,
but the results are no longer bit-identical to a one-device run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from fmlib.data import DATASETS, IMBALANCE_PROFILES, INITIAL_METHODS, ALData, initial_labeled, prepare_data
from fmlib.models import MODELS, build_model, default_device
from fmlib.records import (
    RunDirectory,
    RunRecords,
    config_differences,
    environment,
    fisher_snapshot,
    fmlib_version,
    git_commit,
    mask_tensors,
)
from fmlib.train import TRAIN_PRESETS, TrainConfig, evaluate, fit, train_config

RESULT_NEUTRAL_FIELDS = ("data_root", "download", "device", "output_dir", "progress")
# Who makes round 0's query. "trained" (ours, the fair protocol): every strategy queries with the
# model trained on the initial labels. "initial": the query is made by the initial, untrained
# weights (seeded by (seed, 0, "init"), the same for every strategy) and round 0 records that
# model's accuracy. "authors": the FisherMask authors' experiments.py, "initial" for every strategy
# but BAIT, which trains first.
FIRST_QUERY = ("trained", "initial", "authors")
_PURPOSES = {"init": 0, "train": 1, "select": 2}
_IMAGE_SHAPES = {"fashion_mnist": (1, 28), "cifar10": (3, 32)}  # (channels, side) to check model choices


@dataclass
class ExperimentConfig:
    """Everything that defines an AL run. Plain values only: ``from_dict``/``to_dict`` map it
    onto papermill parameters and ``config.json``. The defaults are the paper's tiny-budget
    imbalanced FashionMNIST setting (15 -> 575 labels, +70 per round) with FisherMask."""

    # data
    dataset: str = "fashion_mnist"  # "fashion_mnist" | "cifar10"
    data_root: str | None = None  # folder holding the data; None: the loaders' default places
    download: bool = False  # fetch through torchvision when missing (needs internet)
    imbalance: str = "paper"  # "none" | "step" | "longtail" | "paper" (classes 0-3: 250/5000/250/250)
    ratio: float = 1.0  # largest / smallest class for "step" and "longtail"
    minority_classes: list[int] | None = None  # classes "step" shrinks; None: the first half
    pool_size: int | None = None  # cap on the pool (stratified subset); None: all
    test_size: int | None = None  # test subset (stratified); None: all (4000 for "paper")
    data_seed: int | None = None  # pool, test subset and initial set; None: seed
    # model
    model: str = "cnn"  # "cnn" (28x28) | "resnet18" (32x32, 28x28) | "authors_resnet18" (the authors' network)
    model_options: dict = field(default_factory=dict)  # e.g. {"width": 16, "head_bias": False} for resnet18
    # active learning
    initial_size: int = 15  # labels before round 0
    initial_method: str = "random"  # "random" | "balanced"
    query_size: int = 70  # labels added per round (the last batch may be smaller to hit the budget)
    budget: int | None = 575  # total labels at the end; None: initial_size + rounds * query_size
    rounds: int | None = None  # query rounds (the run trains rounds + 1 times); None: up to the budget
    strategy: str = "fishermask"  # a name in fmlib.strategies.STRATEGIES
    strategy_options: dict = field(default_factory=dict)  # passed to get_strategy, e.g. {"fraction": 0.003}
    first_query: str = "trained"  # "trained" | "initial" | "authors": who makes round 0's query (see FIRST_QUERY)
    # training
    train_preset: str = "paper"  # "default" | "paper"
    train_options: dict = field(default_factory=dict)  # TrainConfig overrides, e.g. {"epochs": 50}
    # run
    seed: int = 0  # training and selection seeds derive from (seed, round)
    device: str | None = None  # "cpu" | "cuda" | "cuda:1"; None: cuda when available
    output_dir: str | None = None  # run directory (records, resume); None: keep records in memory only
    full_fisher: bool = False  # save the whole Fisher diagonal in the snapshots (large)
    progress: bool = True  # tqdm bar over rounds

    @classmethod
    def from_dict(cls, values: Mapping) -> ExperimentConfig:
        """Build from a plain dict; unknown keys raise ``ValueError`` listing the valid ones."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; allowed: {valid}")
        return cls(**dict(values))

    @classmethod
    def from_run(cls, path) -> ExperimentConfig:
        """The config a run directory was made with (its ``config.json``)."""
        meta = RunDirectory(path).read_meta()
        if meta is None:
            raise FileNotFoundError(f"{path} holds no config.json: not a run directory")
        return cls.from_dict(meta["config"])

    def to_dict(self) -> dict:
        out = asdict(self)
        if out["minority_classes"] is not None:
            out["minority_classes"] = [int(c) for c in out["minority_classes"]]
        return out

    def result_fields(self) -> dict:
        """The fields that change results (compared on resume)."""
        return {k: v for k, v in self.to_dict().items() if k not in RESULT_NEUTRAL_FIELDS}

    def training(self) -> TrainConfig:
        return train_config(self.train_preset, **self.train_options)

    def validate(self, *, check_dataset: bool = True, check_strategy: bool = True) -> None:
        """Check every field that can be checked without data; ``ValueError`` names field and allowed values."""
        _choice("dataset", self.dataset, DATASETS, check_dataset)
        _choice("imbalance", self.imbalance, IMBALANCE_PROFILES)
        _choice("initial_method", self.initial_method, INITIAL_METHODS)
        _choice("model", self.model, MODELS)
        _choice("train_preset", self.train_preset, TRAIN_PRESETS)
        _choice("first_query", self.first_query, FIRST_QUERY)
        if not self.ratio >= 1:
            raise ValueError(f"ratio must be >= 1, got {self.ratio}")
        for name in ("pool_size", "test_size"):
            _integer(name, getattr(self, name), 1, optional=True)
        _integer("initial_size", self.initial_size, 1)
        _integer("query_size", self.query_size, 1)
        _integer("rounds", self.rounds, 0, optional=True)
        _integer("budget", self.budget, self.initial_size, optional=True)
        _integer("seed", self.seed, 0)
        _integer("data_seed", self.data_seed, 0, optional=True)
        if self.budget is None and self.rounds is None:
            raise ValueError("set budget (total labels) or rounds (query rounds); both are None")
        if self.pool_size is not None:
            self.check_pool(self.pool_size, "pool_size")
        for name in ("model_options", "strategy_options", "train_options"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"{name} must be a dict, got {type(getattr(self, name)).__name__}")
        try:
            self.training()
        except (TypeError, ValueError) as err:
            raise ValueError(f"train_options: {err}") from None
        channels, side = _IMAGE_SHAPES.get(self.dataset, (1, 28))
        try:
            build_model(self.model, 2, channels, side, **self.model_options)
        except (TypeError, ValueError) as err:
            raise ValueError(f"model_options: {err}") from None
        if check_strategy:
            from fmlib.strategies import STRATEGIES, get_strategy

            _choice("strategy", self.strategy, sorted(STRATEGIES))
            try:
                get_strategy(self.strategy, **self.strategy_options)
            except (TypeError, ValueError) as err:
                raise ValueError(f"strategy_options: {err}") from None
        if self.device is not None:
            try:
                device = torch.device(self.device)
            except RuntimeError as err:
                raise ValueError(f"device: {err}") from None
            if device.type == "cuda" and not torch.cuda.is_available():
                raise ValueError(f"device is {self.device!r} but CUDA is not available; use 'cpu' or None")

    def trains_first(self) -> bool:
        """Whether round 0 trains before its query (``first_query``; "authors": only BAIT does)."""
        return self.first_query == "trained" or (self.first_query == "authors" and self.strategy == "bait")

    def schedule(self) -> list[int]:
        """Labeled-set size of every round: ``[initial_size, ..., final]``."""
        return label_schedule(self.initial_size, self.query_size, budget=self.budget, rounds=self.rounds)

    def check_pool(self, pool_size: int, what: str = "the pool") -> None:
        """``ValueError`` when the initial set or the label budget does not fit in ``pool_size``."""
        if self.initial_size > pool_size:
            raise ValueError(f"initial_size {self.initial_size} is larger than {what} ({pool_size})")
        final = self.schedule()[-1]
        if final > pool_size:
            raise ValueError(f"budget: the run would label {final} samples, beyond {what} ({pool_size}); "
                             f"lower budget/rounds (initial_size {self.initial_size} + query_size {self.query_size} "
                             "per round)")  # fmt: skip


def smoke_config(config: ExperimentConfig | Mapping, *, pool_size: int = 200, test_size: int = 200,
                 initial_size: int = 15, query_size: int = 10, rounds: int = 2, epochs: int = 2,
                 fisher_samples: int = 64) -> ExperimentConfig:  # fmt: skip
    """A tiny copy of ``config`` that runs the same code paths in seconds on a CPU (notebook smoke
    tests, demos): pool and test set, initial set and batch capped at these sizes, ``rounds`` query
    rounds (no budget), at most ``epochs`` per round, and for strategies with a ``fisher_samples``
    option (bait, fishermask) at most that many points for the Fisher. Other fields are kept."""
    from fmlib.strategies import STRATEGIES

    config = ExperimentConfig.from_dict(config) if isinstance(config, Mapping) else config
    options = dict(config.strategy_options)
    defaults = getattr(STRATEGIES.get(config.strategy), "defaults", {})
    if "fisher_samples" in defaults:
        options["fisher_samples"] = min(options.get("fisher_samples", defaults["fisher_samples"]), fisher_samples)
    return replace(
        config,
        pool_size=min(config.pool_size or pool_size, pool_size),
        test_size=min(config.test_size or test_size, test_size),
        initial_size=min(config.initial_size, initial_size),
        query_size=min(config.query_size, query_size),
        budget=None,
        rounds=min(config.rounds, rounds) if config.rounds is not None else rounds,
        train_options={**config.train_options, "epochs": min(config.training().epochs, epochs)},
        strategy_options=options,
    )


def _choice(name: str, value, allowed, check: bool = True) -> None:
    if check and value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed values: {list(allowed)}")


def _integer(name: str, value, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if optional else ''}, got {value!r}")


def label_schedule(initial_size: int, query_size: int, *, budget: int | None = None, rounds: int | None = None) -> list[int]:
    """Labeled-set size per round: start at ``initial_size``, add ``query_size`` per round, stop
    after ``rounds`` query rounds or at ``budget`` labels (the last step shrinks to hit it),
    whichever comes first."""
    if query_size < 1:
        raise ValueError(f"query_size must be >= 1, got {query_size}")
    sizes = [initial_size]
    while (rounds is None or len(sizes) <= rounds) and (budget is None or sizes[-1] < budget):
        sizes.append(sizes[-1] + query_size if budget is None else min(sizes[-1] + query_size, budget))
    return sizes


def round_seed(seed: int, round: int, purpose: str) -> int:
    """Independent 32-bit seed for one purpose (``"init"``, ``"train"``, ``"select"``) in one round."""
    return int(np.random.SeedSequence(entropy=seed, spawn_key=(round, _PURPOSES[purpose])).generate_state(1)[0])


@contextmanager
def seeded(seed: int, device: torch.device | None = None):
    """Seed torch, numpy and ``random``'s global RNGs inside the block and restore them after,
    so a strategy or model that draws from global state stays a function of ``seed``."""
    devices = [device] if device is not None and device.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@dataclass
class RoundResult:
    """What one round produced: the rounds.csv row, the batch picked (pool positions, pick order),
    its labels and the strategy's ``info`` (empty in the last round, which picks nothing)."""

    round: int
    row: dict
    picked: np.ndarray
    picked_labels: np.ndarray
    info: dict


class ActiveLoop:
    """Train -> evaluate -> select -> label, one round per :meth:`step`.

    Args:
        data: pool and test set.
        model: the network (re-initialised by ``fit`` when ``train_config.reinit``).
        strategy: anything with ``select(model, pool, labeled, unlabeled, n, *, seed, device)``
            and an ``info`` dict.
        schedule: labeled-set size per round, ``schedule[0] == len(initial)``.
        train_config: per-round training.
        initial: pool positions labeled before round 0.
        seed: per-round seeds derive from it (:func:`round_seed`).
        device: where to train, evaluate and select.
        train_first: when ``False``, round 0 does not train: the model as given (the initial
            weights) is evaluated and makes the first query (the authors' protocol; see
            ``FIRST_QUERY``). Later rounds always train.
    """

    def __init__(self, data: ALData, model: nn.Module, strategy, schedule: Sequence[int], train_config: TrainConfig,
                 *, initial, seed: int = 0, device=None, train_first: bool = True):  # fmt: skip
        self.data, self.model, self.strategy, self.train_first = data, model, strategy, train_first
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
        r, pool, classes = self.round, self.data.pool, range(self.data.pool.num_classes)
        if r == 0 and not self.train_first:
            self.model.to(self.device).eval()  # the initial weights query; nothing trained
            stats = {"epochs": 0, "train_accuracy": float("nan"), "train_loss": float("nan"), "seconds": 0.0}
        else:
            with seeded(round_seed(self.seed, r, "train"), self.device):
                stats = fit(self.model, pool, self.labeled, self.train_config,
                            seed=round_seed(self.seed, r, "train"), device=self.device)  # fmt: skip
        start = time.perf_counter()
        metrics = evaluate(self.model, self.data.test, device=self.device)
        eval_time = time.perf_counter() - start
        picked, info, select_time = np.zeros(0, dtype=np.int64), {}, float("nan")
        if r + 1 < len(self.schedule):
            n = self.schedule[r + 1] - self.schedule[r]
            start = time.perf_counter()
            with seeded(round_seed(self.seed, r, "select"), self.device):
                picked = self.strategy.select(self.model, pool, self.labeled.copy(), self.unlabeled(), n,
                                              seed=round_seed(self.seed, r, "select"), device=self.device)  # fmt: skip
            select_time = time.perf_counter() - start
            picked, info = np.asarray(picked, dtype=np.int64).reshape(-1), dict(getattr(self.strategy, "info", {}))
            if len(picked) != n or len(np.unique(picked)) != n or np.isin(picked, self.labeled).any():
                raise RuntimeError(f"strategy returned {len(picked)} picks, expected {n} distinct unlabeled positions")
        counts, queried = pool.class_counts(self.labeled), pool.class_counts(picked)
        mask = mask_tensors(info.get("mask"))
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
            "embed_time": float(info.get("embed_time", float("nan"))),
            "fisher_trace": float(info.get("fisher_trace", float("nan"))),
            "mask_size": int(sum(int(m.sum()) for m in mask.values())) if mask else -1,
        }
        labels = pool.labels[torch.as_tensor(picked)].numpy()
        self.labeled = np.concatenate([self.labeled, picked])
        self.round += 1
        self.last = RoundResult(r, row, picked, labels, info)
        return not self.finished

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


def load_data(config: ExperimentConfig) -> ALData:
    """Pool and test set of a config (:func:`fmlib.data.prepare_data`)."""
    return prepare_data(
        config.dataset,
        root=config.data_root,
        download=config.download,
        imbalance=config.imbalance,
        ratio=config.ratio,
        minority_classes=config.minority_classes,
        pool_size=config.pool_size,
        test_size=config.test_size,
        seed=config.seed if config.data_seed is None else config.data_seed,
    )


def run_experiment(config: ExperimentConfig | Mapping, *, data: ALData | None = None, strategy=None,
                   max_rounds: int | None = None) -> RunRecords:  # fmt: skip
    """Run (or resume, or just reload) a whole AL run.

    Args:
        config: an :class:`ExperimentConfig` or a plain dict of its fields.
        data: a pre-built pool and test set instead of loading ``config.dataset`` (tests,
            custom data); resuming then trusts the caller to pass the same data again.
        strategy: a strategy object instead of ``get_strategy(config.strategy, **strategy_options)``.
        max_rounds: stop after this many rounds in this call (the directory resumes later).

    Returns:
        The run's records (all finished rounds so far).
    """
    config = ExperimentConfig.from_dict(config) if isinstance(config, Mapping) else config
    config.validate(check_dataset=data is None, check_strategy=strategy is None)
    run_dir = RunDirectory(config.output_dir) if config.output_dir else None
    checkpoint = None
    if run_dir is not None:
        old = run_dir.read_meta()
        if old is not None:
            diff = config_differences(old["config"], config.to_dict(), RESULT_NEUTRAL_FIELDS)
            if diff:
                raise ValueError(f"{run_dir.path} holds a run with a different config ({'; '.join(diff)}); "
                                 "use another output_dir or delete that one")  # fmt: skip
            checkpoint = run_dir.load_checkpoint()
        elif (run_dir.path / "checkpoint.pt").exists():
            raise ValueError(f"{run_dir.path} has a checkpoint but no config.json; refusing to resume it")
    if checkpoint is not None:
        records = RunRecords.from_state(checkpoint["records"], run_dir.path)
        if records.finished:
            return records

    source = "config" if data is None else "in-memory"
    data = data if data is not None else load_data(config)
    config.check_pool(len(data.pool))
    device = torch.device(config.device) if config.device is not None else default_device()
    if strategy is None:
        from fmlib.strategies import get_strategy

        strategy = get_strategy(config.strategy, **config.strategy_options)
    pool = data.pool
    with seeded(round_seed(config.seed, 0, "init"), device):
        model = build_model(config.model, pool.num_classes, pool.shape[0], pool.shape[1], **config.model_options)
    data_seed = config.seed if config.data_seed is None else config.data_seed
    initial = initial_labeled(pool.labels.numpy(), config.initial_size, config.initial_method, seed=data_seed)
    loop = ActiveLoop(data, model, strategy, config.schedule(), config.training(), initial=initial,
                      seed=config.seed, device=device, train_first=config.trains_first())  # fmt: skip
    if checkpoint is not None:
        loop.load_state_dict(checkpoint["loop"])
    else:
        meta = {
            "config": config.to_dict(),
            "fmlib_version": fmlib_version(),
            "git": git_commit(),
            "environment": environment(device),
            "data": {"source": source, "name": pool.name,
                     "pool_size": len(pool), "test_size": len(data.test), "classes": list(pool.classes),
                     "pool_counts": pool.class_counts().tolist(), "test_counts": data.test.class_counts().tolist()},
            "schedule": loop.schedule,
        }  # fmt: skip
        records = RunRecords(meta, path=run_dir.path if run_dir else None)
        records.queries += _query_rows(0, initial, pool.labels[torch.as_tensor(initial)].numpy())
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
            if run_dir is not None:
                if "fisher_diag" in result.info:
                    snapshot = fisher_snapshot(result.info, result.picked, result.picked_labels, round=result.round,
                                               full=config.full_fisher)  # fmt: skip
                    run_dir.write_snapshot(result.round, snapshot)
                run_dir.write_records(records)
                run_dir.save_checkpoint({"loop": loop.state_dict(), "records": records.state()})
            bar.update(1)
            bar.set_postfix(acc=f"{result.row['accuracy']:.3f}", labeled=result.row["n_labeled"])
    finally:
        bar.close()
    return records


def _query_rows(round: int, picked: np.ndarray, labels: np.ndarray) -> list[dict]:
    return [{"round": round, "order": i, "pool_index": int(p), "label": int(y)}
            for i, (p, y) in enumerate(zip(picked, labels))]  # fmt: skip
