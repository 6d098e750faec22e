"""The parts of an AL run, built from a validated config and checked against the data.

:func:`build` trusts a config that :meth:`fmlib.config.ExperimentConfig.validate` passed, checks
what only the data can show and hands on the built parts (:class:`RunParts`: data, model, strategy,
training, schedule, initial set, device), so nothing is written for a config that cannot run and
nothing is built twice. :data:`MODEL_CONTRACT` says what a model must offer; :func:`check_model`
checks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fmlib.bounds import check_memory
from fmlib.config import ExperimentConfig
from fmlib.data import ALData, as_al_data
from fmlib.datasets import initial_labeled, prepare_data
from fmlib.inputs import DictBatch
from fmlib.models import default_device, eval_mode, trial_model
from fmlib.named import is_named, resolve_callable
from fmlib.seeds import round_seed, seeded
from fmlib.strategies import build_strategy
from fmlib.train import TrainConfig


def load_data(config: ExperimentConfig) -> ALData:
    """Pool and test set of a config (:func:`fmlib.datasets.prepare_data`)."""
    return prepare_data(
        config.dataset,
        root=config.data_root,
        download=config.download,
        imbalance=config.imbalance,
        ratio=config.ratio,
        minority_classes=config.minority_classes,
        pool_size=config.pool_size,
        test_size=config.test_size,
        seed=config.data_seed_or_seed(),
        options=config.dataset_options,
    )


@dataclass
class RunParts:
    """Everything a run is made of, built from a config and checked (:func:`build`)."""

    config: ExperimentConfig
    data: ALData
    model: nn.Module  # initialised from round_seed(seed, 0, "init")
    strategy: object  # a Strategy, or the caller's object with the same select()
    training: TrainConfig
    schedule: list[int]  # labeled-set size per round
    initial: np.ndarray  # int64 [initial_size] pool positions labeled before round 0
    device: torch.device
    source: str  # "config" (data loaded from the config) | "in-memory" (the caller's data)
    model_factory: str | None = (
        None  # module.qualname of the caller's model factory, None: config.model
    )
    train: object = None  # (model, data, labeled, *, seed, device) -> stats; None: fit


def build(
    config: ExperimentConfig,
    *,
    data=None,
    strategy=None,
    model=None,
    train=None,
    memory_checked: bool = False,
) -> RunParts:
    """Build a validated config's parts and check them against the data; raises ``ValueError``
    naming the field before anything is written.

    Args:
        config: an :class:`ExperimentConfig` that :meth:`~ExperimentConfig.validate` passed
            (``check_dataset`` unless ``data`` is given); it is not checked again here.
        data: a pool and test set instead of loading ``config.dataset``: an :class:`ALData` or a
            ``(pool, test)`` pair of torch Datasets of ``(x, y)`` items
            (:func:`fmlib.data.as_al_data`).
        strategy: a strategy object instead of
            ``get_strategy(config.strategy, **strategy_options)``.
        model: a factory ``model(num_classes) -> nn.Module`` instead of ``config.model``
            (:data:`MODEL_CONTRACT`; checked here on a batch of the pool, with what the strategy
            needs).
        train: a training hook ``train(model, data, labeled, *, seed, device) -> dict`` instead of
            ``config.trainer`` (by name) or :func:`fmlib.train.fit`.
        memory_checked: validation ran the memory bound (:func:`fmlib.bounds.check_memory`) on
            this strategy and the config's model and dataset; otherwise it runs here, on the
            built model and the data's shape, before round 0.
    """
    training = config.training()
    strategy = (
        strategy
        if strategy is not None
        else build_strategy(config.strategy, config.strategy_options)
    )
    device = torch.device(config.device) if config.device is not None else default_device()
    if model is not None and (isinstance(model, nn.Module) or not callable(model)):
        got = (
            f"an nn.Module instance ({type(model).__name__})"
            if isinstance(model, nn.Module)
            else type(model).__name__
        )
        raise ValueError(
            "model must be a factory: model(num_classes) -> nn.Module (a class or a function), got"
            f" {got}"
        )
    source = "config" if data is None else "in-memory"
    data = as_al_data(data) if data is not None else load_data(config)
    check_data(data)
    pool = data.pool
    empty = [c for c, n in enumerate(pool.class_counts()) if n == 0]
    if empty:
        cause = (
            f"ratio {config.ratio:g}"
            if config.imbalance in ("step", "longtail")
            else f"pool_size {config.pool_size}"
        )
        raise ValueError(
            f"{cause} leaves classes {empty} without samples in the pool "
            f"({dict(enumerate(pool.class_counts().tolist()))}); lower it"
        )
    config.check_pool(len(pool))
    with seeded(round_seed(config.seed, 0, "init"), device):
        factory = model
        if factory is not None:
            model = factory(pool.num_classes)
            check_model(
                model,
                strategy,
                pool,
                what=f"the model of {getattr(factory, '__qualname__', factory)!r}",
            )
        elif is_named(config.model):
            model = _named_model(config.model, config.model_options, pool.num_classes)
            check_model(model, strategy, pool, what=f"model {config.model!r}")
        else:
            if len(pool.shape) != 3 or pool.shape[1] != pool.shape[2]:
                raise ValueError(
                    f"model {config.model!r} takes square images [C, H, W], but the pool's inputs"
                    f" have shape {pool.shape}; pass model=factory (factory(num_classes) ->"
                    " nn.Module)"
                )
            model = trial_model(
                config.model, config.model_options, pool.num_classes, pool.shape[0], pool.shape[1]
            )
            check_model(model, strategy, pool, what=f"model {config.model!r}")
    if not memory_checked:
        check_memory(config, strategy, model, (len(pool), pool.num_classes))  # before round 0
    initial = initial_labeled(
        pool.labels.numpy(),
        config.initial_size,
        config.initial_method,
        seed=config.data_seed_or_seed(),
    )
    factory_name = None
    if factory is not None:
        module = getattr(factory, "__module__", "?")
        factory_name = f"{module}.{getattr(factory, '__qualname__', repr(factory))}"
    if train is None and config.trainer is not None:
        train = resolve_callable(config.trainer, "trainer", "function")
    if train is not None and not callable(train):
        raise ValueError(
            "train must be a callable train(model, data, labeled, *, seed, device) -> "
            f"dict, got {type(train).__name__}"
        )
    schedule = config.schedule()
    return RunParts(
        config,
        data,
        model,
        strategy,
        training,
        schedule,
        initial,
        device,
        source,
        factory_name,
        train,
    )


def check_data(data: ALData) -> None:
    """``ValueError`` unless both sets are non-empty, their labels are class indices of the class
    names, and in-memory inputs are finite (naming the first bad samples)."""
    for part, name in ((data.pool, "pool"), (data.test, "test set")):
        if len(part) == 0:
            raise ValueError(f"data: the {name} is empty")
        labels = part.labels
        bad = torch.nonzero((labels < 0) | (labels >= part.num_classes)).flatten()
        if len(bad):
            raise ValueError(
                f"data: the {name}'s labels must be class indices 0..{part.num_classes - 1} (its"
                f" {part.num_classes} class names {list(part.classes)}), but sample {int(bad[0])}"
                f" has label {int(labels[bad[0]])} ({len(bad)} such samples); pass every class name"
            )
        x = getattr(part, "_x", None)  # a TensorDataset's inputs: in memory, cheap to check
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            rows = torch.nonzero(~torch.isfinite(x.reshape(len(x), -1)).all(1)).flatten()
            if len(rows):
                raise ValueError(
                    f"data: the {name}'s inputs must be finite, but samples {rows[:5].tolist()} "
                    f"({len(rows)} in all) hold NaN or inf"
                )


MODEL_CONTRACT = """A model factory is called as factory(num_classes) and returns an nn.Module
whose forward(x) gives logits [N, num_classes] for a batch of the data's inputs; strategies that
need more name it: embed(x) -> penultimate features [N, d] (coreset, badge, bald, bait) and head,
the final nn.Linear d -> num_classes (badge, bald, bait, fishermask unless include_head=False or a
fixed mask)."""


def check_model(model: nn.Module, strategy, pool, *, what: str = "the model") -> None:
    """``ValueError`` unless ``model`` maps a batch of ``pool``'s inputs to logits ``[n, C]`` and
    has what ``strategy`` needs (``strategy.model_needs()``: ``embed``, ``head``), naming what is
    missing."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"{what} must be a torch nn.Module, got {type(model).__name__}")
    x = pool.inputs([0, 1] if len(pool) > 1 else [0])
    try:
        dtype = next(model.parameters()).dtype
    except StopIteration:
        raise ValueError(f"{what} has no parameters to train") from None
    try:
        with torch.no_grad(), eval_mode(model):
            logits = model(x.to(dtype) if x.is_floating_point() else x)
    except Exception as err:  # noqa: BLE001 - whatever the user's forward raises, say where
        shown, hint = f"shape {tuple(x.shape)}", ""
        if isinstance(x, DictBatch):  # name the keys: the usual mistake is a key it does not read
            shown = f"a dict batch with {x.describe()}"
            hint = (
                "; dict inputs reach forward(batch) as one argument (batch['key']); a "
                "forward that takes them as keywords goes through "
                "fmlib.hf.KeywordModel(model)"
            )
        raise ValueError(
            f"{what} fails on a batch of the pool's inputs ({shown}): "
            f"{type(err).__name__}: {err}{hint}"
        ) from None
    if not isinstance(logits, torch.Tensor) or logits.shape != (len(x), pool.num_classes):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"{what} must return logits [N, {pool.num_classes}] (one per class), got {got}"
        )
    if logits.is_floating_point() and not torch.isfinite(logits).all():
        raise ValueError(
            f"{what} returns NaN or inf logits on pool samples {list(range(len(x)))}, whose inputs "
            f"are {'finite' if torch.isfinite(x.float()).all() else 'not finite'}: fix the model"
        )
    needs = tuple(strategy.model_needs()) if hasattr(strategy, "model_needs") else ()
    name = getattr(strategy, "name", "") or type(strategy).__name__
    missing = []
    if "embed" in needs and not callable(getattr(model, "embed", None)):
        missing.append("embed(x) -> penultimate features [N, d]")
    if "head" in needs and not isinstance(getattr(model, "head", None), nn.Linear):
        missing.append("head (the final nn.Linear)")
    if missing:
        hint = " (or include_head=False)" if name == "fishermask" else ""
        raise ValueError(
            f"strategy {name!r} needs {' and '.join(missing)}, which {what} "
            f"({type(model).__name__}) lacks; add it{hint} or pick a strategy that needs only "
            "logits (random, entropy, margin, least_confidence)"
        )


# ----------------------------------------------------------------------------- checks


def _named_model(name: str, options: Mapping, num_classes: int) -> nn.Module:
    """The model of the factory ``name`` (``"package.module:function"``):
    ``function(num_classes, **options)``."""
    try:
        return resolve_callable(name, "model")(num_classes, **options)
    except TypeError as err:
        raise ValueError(
            f"model {name!r} cannot be called as {name.partition(':')[2]}(num_classes, "
            f"**model_options) with model_options {dict(options)!r}: {err}"
        ) from None
