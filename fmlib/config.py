"""What defines an AL run: the config and its validation.

:class:`ExperimentConfig` holds plain values (papermill parameters, ``config.json``).
:meth:`~ExperimentConfig.validate` checks every field without data and names every problem at
once (the bounds of sizes, schedule, training values and memory: :mod:`fmlib.bounds`), building
a trial model and the strategy where asked; a run calls it once, and :func:`fmlib.build.build`
trusts the config it passed, checks the rest with the data and builds the run's parts.

Comparing configs. A run directory refuses a config that differs from the one it was made with in
a field that changes results; ``RESULT_NEUTRAL_FIELDS`` (where the data and the outputs live, the
device, the progress bar, the thread-change permission) are ignored. A field that an older
``config.json`` lacks compares as its default (:func:`comparison`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from fmlib.bounds import (
    check_labels_fit,
    check_memory,
    integer,
    label_schedule,
    schedule_rounds,
    size_problems,
    training_problems,
)
from fmlib.checks import is_int, is_real
from fmlib.datasets import DATASETS, IMBALANCE_PROFILES, INITIAL_METHODS, pool_shape
from fmlib.models import MODELS, trial_model
from fmlib.named import is_named, resolve_callable
from fmlib.stopping import rule_specs, stop_rules
from fmlib.train import TRAIN_PRESETS, TrainConfig, train_config

RESULT_NEUTRAL_FIELDS = (
    "data_root",
    "download",
    "device",
    "output_dir",
    "progress",
    "allow_thread_change",
    "allow_torch_change",
)
# Who makes round 0's query. "trained" (ours, the fair protocol): every strategy queries with the
# model trained on the initial labels. "initial": the query is made by the initial, untrained
# weights (seeded by (seed, 0, "init"), the same for every strategy) and round 0 records that
# model's accuracy. "authors": the FisherMask authors' experiments.py, "initial" for every strategy
# but BAIT, which trains first.
FIRST_QUERY = ("trained", "initial", "authors")
# (channels, side) to check model choices
_IMAGE_SHAPES = {
    "fashion_mnist": (1, 28),
    "cifar10": (3, 32),
}
_FLAGS = ("download", "full_fisher", "progress", "allow_thread_change", "allow_torch_change")
# fields that must be dicts: keyword arguments merged key by key (``--set FIELD.KEY=VALUE``, grids)
OPTION_FIELDS = ("dataset_options", "model_options", "strategy_options", "train_options")


@dataclass
class ExperimentConfig:
    """Everything that defines an AL run. Plain values only: ``from_dict``/``to_dict`` map it
    onto papermill parameters and ``config.json``. The defaults are the paper's tiny-budget
    imbalanced FashionMNIST setting (15 -> 575 labels, +70 per round) with FisherMask."""

    # data
    # "fashion_mnist" | "cifar10" | "package.module:function" (your dataset factory)
    dataset: str = "fashion_mnist"
    dataset_options: dict = field(default_factory=dict)  # keyword arguments of a dataset factory
    data_root: str | None = None  # folder holding the data; None: the loaders' default places
    download: bool = False  # fetch through torchvision when missing (needs internet)
    # "none" | "step" | "longtail" | "paper" (classes 0-3: 250/5000/250/250)
    imbalance: str = "paper"
    ratio: float = 1.0  # largest / smallest class for "step" and "longtail"
    minority_classes: list[int] | None = None  # classes "step" shrinks; None: the first half
    pool_size: int | None = None  # cap on the pool (stratified subset); None: all
    test_size: int | None = None  # test subset (stratified); None: all (4000 for "paper")
    data_seed: int | None = None  # pool, test subset and initial set; None: seed
    # model
    # "cnn" (28x28) | "resnet18" (32x32, 28x28) | "authors_resnet18" | "package.module:function"
    model: str = "cnn"
    # e.g. {"width": 16} for resnet18; a factory's keyword arguments
    model_options: dict = field(default_factory=dict)
    # active learning
    initial_size: int = 15  # labels before round 0
    initial_method: str = "random"  # "random" | "balanced"
    query_size: int = 70  # labels added per round (the last batch may be smaller to hit the budget)
    budget: int | None = 575  # total labels at the end; None: initial_size + rounds * query_size
    rounds: int | None = None  # query rounds (the run trains rounds + 1 times); None: to budget
    # a name in fmlib.strategies.STRATEGIES, or "package.module:Class" (your Strategy)
    strategy: str = "fishermask"
    strategy_options: dict = field(default_factory=dict)  # get_strategy's, e.g. {"fraction": 0.003}
    # "trained" | "initial" | "authors": who makes round 0's query (see FIRST_QUERY)
    first_query: str = "trained"
    # training
    train_preset: str = "paper"  # "default" | "paper"
    train_options: dict = field(default_factory=dict)  # TrainConfig overrides, e.g. {"epochs": 50}
    trainer: str | None = None  # None: fmlib.train.fit; "package.module:function": your own
    stopping: list = field(default_factory=list)  # rules that end the run early (fmlib.stopping)
    # run
    seed: int = 0  # training and selection seeds derive from (seed, round)
    device: str | None = None  # "cpu" | "cuda" | "cuda:1"; None: cuda when available
    output_dir: str | None = None  # run directory (records, resume); None: records in memory
    full_fisher: bool = False  # save the whole Fisher diagonal in the snapshots (large)
    progress: bool = True  # tqdm bar over rounds
    allow_thread_change: bool = (
        False  # resume a run made with another torch thread count (its records then say so)
    )
    allow_torch_change: bool = (
        False  # resume a run made with another torch version (its records then say so)
    )

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
        from fmlib.records import RunDirectory  # reading a run is the records' job

        meta = RunDirectory(path).read_meta()
        if meta is None:
            raise FileNotFoundError(f"{path} holds no config.json: not a run directory")
        return cls.from_dict(meta["config"])

    @classmethod
    def defaults(cls) -> dict:
        """Every field's default, as :meth:`to_dict` writes it."""
        return {
            f.name: f.default if f.default is not MISSING else f.default_factory()
            for f in fields(cls)
        }

    def to_dict(self) -> dict:
        out = asdict(self)
        if out["minority_classes"] is not None:
            out["minority_classes"] = [int(c) if is_int(c) else c for c in out["minority_classes"]]
        if isinstance(out["stopping"], (list, tuple)):
            out["stopping"] = rule_specs(out["stopping"])
        if isinstance(out["output_dir"], os.PathLike):
            out["output_dir"] = os.fspath(out["output_dir"])
        return out

    def training(self) -> TrainConfig:
        """The per-round training config: ``train_preset`` with ``train_options``, every value
        checked."""
        preset = (
            TRAIN_PRESETS[self.train_preset].to_dict() if self.train_preset in TRAIN_PRESETS else {}
        )
        problems = [
            f"train_options: {p}" for p in training_problems({**preset, **self.train_options})
        ]
        if problems:
            raise ValueError("; ".join(problems))
        try:
            return train_config(self.train_preset, **self.train_options)
        except (TypeError, ValueError) as err:
            raise ValueError(f"train_options: {err}") from None

    def problems(
        self,
        *,
        check_dataset: bool = True,
        check_strategy: bool = True,
        parts: bool = True,
        built: dict | None = None,
    ) -> list[str]:
        """Every problem of this config that can be found without data, one message per problem,
        each naming the field and what is allowed.

        Args:
            check_dataset: check ``dataset`` and ``data_root`` (off when the caller brings the
                data).
            check_strategy: check ``strategy`` and ``strategy_options`` by building the strategy.
            parts: build a trial model (and run it on a dummy batch); :func:`fmlib.build.build`
                builds the real one instead.
            built: a dict that receives the strategy built by ``check_strategy`` (key
                ``"strategy"``), for a caller that runs it instead of building another, and
                under ``"memory"`` that strategy once its memory bound
                (:func:`fmlib.bounds.check_memory`) passed on a built-in dataset's known shape.
        """
        from fmlib.strategies import build_strategy  # imports the Fisher engine: only when called

        out: list[str] = []
        trial: dict = {}  # the trial model, when one is built
        shape = (
            pool_shape(
                self.dataset, self.imbalance, self.ratio, self.minority_classes, self.pool_size
            )
            if check_dataset
            else None
        )

        def check(fn, *args, **kwargs):
            try:
                fn(*args, **kwargs)
            except ValueError as err:
                out.append(str(err))

        if check_dataset:
            check(_dataset, self.dataset, self.dataset_options, self.imbalance)
            check(_data_root, self.data_root, self.download)
        for name in _FLAGS:
            check(_flag, name, getattr(self, name))
        check(_choice, "imbalance", self.imbalance, IMBALANCE_PROFILES)
        check(_choice, "initial_method", self.initial_method, INITIAL_METHODS)
        check(_model, self.model)
        check(_choice, "train_preset", self.train_preset, TRAIN_PRESETS)
        check(_choice, "first_query", self.first_query, FIRST_QUERY)
        if not is_real(self.ratio) or not self.ratio >= 1:
            out.append(f"ratio must be a finite number >= 1, got {self.ratio!r}")
        check(_minority, self.minority_classes, self.imbalance)
        sizes = len(out)
        out += size_problems(self)
        check(integer, "seed", self.seed, 0)
        check(integer, "data_seed", self.data_seed, 0, optional=True)
        if self.budget is None and self.rounds is None:
            out.append("set budget (total labels) or rounds (query rounds); both are None")
        if len(out) == sizes:  # the sizes are valid: is the schedule bounded, does it fit?
            check(schedule_rounds, self.initial_size, self.query_size, self.budget, self.rounds)
        if self.pool_size is not None and len(out) == sizes:
            check(check_labels_fit, self, self.pool_size, "pool_size")
        if self.output_dir is not None and not (
            isinstance(self.output_dir, (str, os.PathLike)) and os.fspath(self.output_dir)
        ):
            out.append(f"output_dir must be a directory path or None, got {self.output_dir!r}")
        out += _option_problems(self)
        check(_device, self.device)
        check(_trainer, self.trainer)
        check(stop_rules, self.stopping)
        if not any(p.startswith(("train_preset", "train_options")) for p in out):
            check(self.training)
        if (
            parts
            and not is_named(self.model)
            and not any(p.startswith(("unknown model", "model_options")) for p in out)
        ):
            channels, side = _IMAGE_SHAPES.get(self.dataset, (1, 28))
            classes = shape[1] if shape else 2
            with torch.random.fork_rng(devices=[]):  # a trial build leaves the global RNG alone
                check(
                    lambda: trial.update(
                        model=trial_model(self.model, self.model_options, classes, channels, side)
                    )
                )
        built = {} if built is None else built
        if check_strategy and not any(p.startswith("strategy_options") for p in out):
            check(
                lambda: built.update(strategy=build_strategy(self.strategy, self.strategy_options))
            )
        if shape and "model" in trial and "strategy" in built:
            before = len(out)
            check(check_memory, self, built["strategy"], trial["model"], shape)
            if len(out) == before:  # build() need not run it again on this strategy
                built["memory"] = built["strategy"]
        return out

    def validate(
        self,
        *,
        check_dataset: bool = True,
        check_strategy: bool = True,
        parts: bool = True,
        built: dict | None = None,
    ) -> None:
        """Check every field that can be checked without data (:meth:`problems`, same arguments);
        ``ValueError`` names every problem (field and allowed values) at once.

        A config passes once per run: called again with the same field values and no more
        checks than passed before, it returns at once and ``built`` receives what the pass built
        (the CLI validates before it starts the run, and :func:`fmlib.experiment.run_experiment`
        validates what it is given).
        """
        checks = (check_dataset, check_strategy, parts)
        passed = self.__dict__.get("_passed")  # (field values, checks, built) of the last pass
        if passed is not None and passed[0] == self.to_dict():
            if all(before >= now for before, now in zip(passed[1], checks)):
                if built is not None:
                    built.update(passed[2])
                return
        made = {}
        problems = self.problems(
            check_dataset=check_dataset, check_strategy=check_strategy, parts=parts, built=made
        )
        if problems:
            raise ValueError(problem_message(problems))
        self.__dict__["_passed"] = (self.to_dict(), checks, made)
        if built is not None:
            built.update(made)

    def data_seed_or_seed(self) -> int:
        """The seed of the pool, the test subset and the initial set: ``data_seed``, else
        ``seed``."""
        return self.seed if self.data_seed is None else self.data_seed

    def trains_first(self) -> bool:
        """Whether round 0 trains before its query (``first_query``; "authors": only BAIT does)."""
        return self.first_query == "trained" or (
            self.first_query == "authors" and self.strategy == "bait"
        )

    def schedule(self) -> list[int]:
        """Labeled-set size of every round: ``[initial_size, ..., final]``."""
        return label_schedule(
            self.initial_size, self.query_size, budget=self.budget, rounds=self.rounds
        )

    def check_pool(self, pool_size: int, what: str = "the pool") -> None:
        """``ValueError`` when the initial set or the label budget does not fit in ``pool_size``."""
        check_labels_fit(self, pool_size, what)


def problem_message(problems: list[str]) -> str:
    """One ``ValueError`` message for a list of problems: the problem itself when there is one,
    else a count and one indented line per problem."""
    return (
        problems[0]
        if len(problems) == 1
        else "\n  ".join([f"{len(problems)} problems:", *problems])
    )


def comparison() -> dict:
    """Keyword arguments of the run directories' config comparison
    (:meth:`fmlib.records.RunDirectory.differences`): the fields that do not change results, the
    defaults that stand in for fields an older ``config.json`` lacks, and :func:`filled_in`."""
    return {
        "neutral": RESULT_NEUTRAL_FIELDS,
        "defaults": ExperimentConfig.defaults(),
        "normalize": filled_in,
    }


def filled_in(values: Mapping) -> dict:
    """Config fields as compared: ``train_options`` with the preset's values filled in, so an
    option set to the value it has anyway is the same config."""
    out = dict(values)
    preset, options = out.get("train_preset"), out.get("train_options")
    if isinstance(preset, str) and preset in TRAIN_PRESETS and isinstance(options, Mapping):
        out["train_options"] = {**TRAIN_PRESETS[preset].to_dict(), **options}
    return out


def smoke_config(
    config: ExperimentConfig | Mapping,
    *,
    pool_size: int = 200,
    test_size: int = 200,
    initial_size: int = 15,
    query_size: int = 10,
    rounds: int = 2,
    epochs: int = 2,
    fisher_samples: int = 64,
) -> ExperimentConfig:
    """A tiny copy of ``config`` that runs the same code paths in seconds on a CPU (notebook smoke
    tests, demos): pool and test set, initial set and batch capped at these sizes, ``rounds`` query
    rounds (no budget), at most ``epochs`` per round, and for strategies with a ``fisher_samples``
    option (bait, fishermask) at most that many points for the Fisher. Other fields are kept.
    A bad size or option field is a ``ValueError`` naming it, never shrunk into a valid one."""
    from fmlib.strategies import strategy_class

    config = ExperimentConfig.from_dict(config) if isinstance(config, Mapping) else config
    problems = size_problems(config) + _option_problems(config)  # named, never shrunk away
    if problems:
        raise ValueError(problem_message(problems))
    options = dict(config.strategy_options)
    try:
        defaults = strategy_class(config.strategy).defaults
    except ValueError:  # validation names the bad strategy later
        defaults = {}
    if "fisher_samples" in defaults:
        options["fisher_samples"] = min(
            options.get("fisher_samples", defaults["fisher_samples"]), fisher_samples
        )
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


# ----------------------------------------------------------------------------- checks


def _option_problems(config: ExperimentConfig) -> list[str]:
    """The option fields that are not dicts."""
    return [
        f"{name} must be a dict, got {type(getattr(config, name)).__name__}"
        for name in OPTION_FIELDS
        if not isinstance(getattr(config, name), Mapping)
    ]


def _choice(name: str, value, allowed) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed values: {list(allowed)}")


def _flag(name: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def _data_root(root, download) -> None:
    if root is None:
        return
    if not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
        raise ValueError(f"data_root must be a folder path or None, got {root!r}")
    if download is not True and not Path(root).expanduser().is_dir():
        raise ValueError(
            f"data_root {os.fspath(root)!r} does not exist (download=True fetches the data there; "
            "None looks in the loaders' default places)"
        )


def _dataset(name, options, imbalance) -> None:
    if is_named(name):
        resolve_callable(name, "dataset", "function")
        if imbalance == "paper":
            raise ValueError(
                "imbalance 'paper' is the FashionMNIST/CIFAR-10 preset (classes 0-3 with"
                f" 250/5000/250/250); with dataset factory {name!r} use 'none' (its data as it is),"
                " 'step' or 'longtail'"
            )
        return
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; allowed values: {list(DATASETS)} or"
            " 'package.module:function' (your factory returning (pool, test) Datasets)"
        )
    if isinstance(options, Mapping) and options:
        raise ValueError(
            f"dataset_options {dict(options)!r} are passed to a dataset factory"
            f" ('package.module:function'); built-in dataset {name!r} takes none"
        )


def _model(name) -> None:
    if is_named(name):
        resolve_callable(name, "model", "function")
    elif not isinstance(name, str) or name not in MODELS:
        raise ValueError(
            f"unknown model {name!r}; allowed values: {list(MODELS)} or 'package.module:function' "
            "(your factory: function(num_classes, **model_options) -> nn.Module)"
        )


def _trainer(name) -> None:
    if name is None:
        return
    if not is_named(name):
        raise ValueError(
            "trainer must be None (fmlib.train.fit) or 'package.module:function' "
            "(your training hook: function(model, data, labeled, *, seed, device) -> "
            f"dict), got {name!r}"
        )
    resolve_callable(name, "trainer", "function")


def _minority(classes, imbalance) -> None:
    if classes is None:
        return
    if not isinstance(classes, (list, tuple)) or not all(is_int(c) for c in classes):
        raise ValueError(
            f"minority_classes must be a list of class indices or None, got {classes!r}"
        )
    if imbalance != "step":
        raise ValueError(
            f"minority_classes {list(classes)} is used only with imbalance 'step' (got imbalance "
            f"{imbalance!r}); set it to None"
        )


def _device(device) -> None:
    if device is None:
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: {err}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device is {device!r} but CUDA is not available; use 'cpu' or None")
