"""Bounds a run is checked against before anything is allocated: its sizes, its label schedule,
its training values and the memory of the Fisher strategies' candidate embeddings.

The sizes (pool, test set, initial set, batch, rounds, budget) are integers with a minimum
(:func:`size_problems`). A label schedule has at most :data:`MAX_ROUNDS` query rounds, counted
before its list is built (:func:`schedule_rounds`, :func:`label_schedule`), and fits in the pool
(:func:`check_labels_fit`). Training values stay in their ranges (:func:`training_problems`).
BAIT's and FisherMask's candidate embeddings ``[N, C, k]`` and their
``[k, k]`` Fishers fit in the memory free on the device (:func:`check_memory`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields

import torch

from fmlib.checks import is_int, is_real
from fmlib.fisher.masks import mask_size
from fmlib.models import default_device
from fmlib.train import TrainConfig

MAX_ROUNDS = 10_000  # query rounds of one run: a schedule is a list, bounded before it is built


def integer(name: str, value, minimum: int, optional: bool = False) -> None:
    """``ValueError`` unless ``value`` is an integer >= ``minimum`` (or ``None``, ``optional``)."""
    if value is None and optional:
        return
    if not is_int(value) or value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}{' or None' if optional else ''}, got {value!r}"
        )


def size_problems(config) -> list[str]:
    """Problems of a config's sizes (pool, test set, initial set, batch, rounds, budget)."""
    checks = [(name, getattr(config, name), 1, True) for name in ("pool_size", "test_size")]
    checks += [
        ("initial_size", config.initial_size, 1, False),
        ("query_size", config.query_size, 1, False),
        ("rounds", config.rounds, 0, True),
    ]
    if is_int(config.initial_size):
        checks.append(("budget", config.budget, config.initial_size, True))
    out = []
    for name, value, minimum, optional in checks:
        try:
            integer(name, value, minimum, optional)
        except ValueError as err:
            out.append(str(err))
    return out


def schedule_rounds(
    initial_size: int, query_size: int, budget: int | None, rounds: int | None
) -> int:
    """Query rounds of a label schedule, computed without building it; ``ValueError`` beyond
    :data:`MAX_ROUNDS`."""
    by_budget = math.inf if budget is None else max(0, -(-(budget - initial_size) // query_size))
    n = min(math.inf if rounds is None else rounds, by_budget)
    if n > MAX_ROUNDS:
        what = (
            f"rounds {rounds}" if rounds is not None and rounds <= by_budget else f"budget {budget}"
        )
        count = "unbounded" if n == math.inf else n
        raise ValueError(
            f"{what}: the run would have {count} query rounds (initial_size "
            f"{initial_size}, query_size {query_size} per round); at most "
            f"{MAX_ROUNDS}: lower budget/rounds or raise query_size"
        )
    return int(n)


def label_schedule(
    initial_size: int, query_size: int, *, budget: int | None = None, rounds: int | None = None
) -> list[int]:
    """Labeled-set size per round: start at ``initial_size``, add ``query_size`` per round, stop
    after ``rounds`` query rounds or at ``budget`` labels (the last step shrinks to hit it),
    whichever comes first."""
    if query_size < 1:
        raise ValueError(f"query_size must be >= 1, got {query_size}")
    schedule_rounds(initial_size, query_size, budget, rounds)  # bounded before the list is built
    sizes = [initial_size]
    while (rounds is None or len(sizes) <= rounds) and (budget is None or sizes[-1] < budget):
        sizes.append(
            sizes[-1] + query_size if budget is None else min(sizes[-1] + query_size, budget)
        )
    return sizes


def check_labels_fit(config, pool_size: int, what: str = "the pool") -> None:
    """``ValueError`` when a config's initial set or label budget does not fit in ``pool_size``."""
    initial, query = config.initial_size, config.query_size
    if initial > pool_size:
        raise ValueError(f"initial_size {initial} is larger than {what} ({pool_size})")
    final = initial + schedule_rounds(initial, query, config.budget, config.rounds) * query
    final = final if config.budget is None else min(final, config.budget)
    if final > pool_size:
        raise ValueError(
            f"budget: the run would label {final} samples, beyond {what} "
            f"({pool_size}); lower budget/rounds (initial_size {initial} + "
            f"query_size {query} per round)"
        )


def check_memory(config, strategy, model: torch.nn.Module, shape: tuple[int, int]) -> None:
    """``ValueError`` when a Fisher strategy's candidate embeddings ``[N, C, k]`` and its two
    ``[k, k]`` Fishers would not fit in the memory free on the config's device, naming the
    options and the values that would fit: FisherMask (``k`` the mask's entries: ``fraction``
    of the parameters) and BAIT (``k`` the head's weights, ``C × d``, and its bias with
    ``include_bias``). ``shape``: ``(pool size, classes)``, a built-in dataset's known shape at
    validation, the data's in :func:`fmlib.build.build`. Other strategies pass."""
    from fmlib.strategies import fisher as fs  # the strategies import the Fisher engine

    if isinstance(strategy, fs.FisherMask) and strategy.options["mask"] is None:
        opts = strategy.options
        k = mask_size(
            model, opts["fraction"], method=opts["method"], include_head=opts["include_head"]
        )
    elif isinstance(strategy, fs.BAIT) and isinstance(
        getattr(model, "head", None), torch.nn.Linear
    ):
        opts, head = strategy.options, model.head
        k = head.weight.numel() + (
            head.bias.numel() if opts["include_bias"] and head.bias is not None else 0
        )
    else:
        return
    device = torch.device(config.device) if config.device is not None else default_device()
    free = fs.available_memory(device)
    if free is None:
        return
    pool, classes = shape
    most = opts["max_candidates"]
    start = config.initial_size if is_int(config.initial_size) else 0
    n = max(pool - start, 1) if most is None else min(pool, most)
    dtype = torch.float64 if opts["precision"] == "float64" else torch.float32
    try:
        fs.check_embedding_memory(n, classes, k, dtype, device)
    except MemoryError as err:
        if isinstance(strategy, fs.BAIT):
            raise ValueError(
                f"strategy_options: BAIT's embeddings hold the {k} weights of the head of "
                f"{type(model).__name__} ({classes} classes x {head.in_features} features"
                f"{', with the bias' if opts['include_bias'] else ''}) for each of {n} candidates "
                f"(max_candidates={most}): {err}"
            ) from None
        total = sum(p.numel() for p in model.parameters() if p.requires_grad)
        row = n * classes * torch.empty((), dtype=dtype).element_size()
        k_fit = int((math.sqrt(row * row + 64 * free) - row) // 32)  # 16 k^2 + row k <= free
        raise ValueError(
            f"strategy_options: fraction={opts['fraction']} keeps {k} of the {total} parameters of "
            f"model {config.model!r} and max_candidates={most} gives {n} candidates of {classes} "
            f"classes: {err}; with {n} candidates a fraction of at most {k_fit / total:.2g} fits"
        ) from None


# Per-round training values (train_options over the preset): field -> (what is allowed, test)
TRAINING_RULES = {
    "epochs": ("an integer >= 1", lambda v: is_int(v) and v >= 1),
    "batch_size": ("an integer >= 1", lambda v: is_int(v) and v >= 1),
    "lr": ("a finite number > 0 (at most 10)", lambda v: is_real(v) and 0 < v <= 10),
    "momentum": ("a finite number in [0, 1)", lambda v: is_real(v) and 0 <= v < 1),
    "weight_decay": ("a finite number >= 0", lambda v: is_real(v) and v >= 0),
    "target_train_acc": (
        "a number in (0, 1] or None",
        lambda v: v is None or (is_real(v) and 0 < v <= 1),
    ),
    "grad_clip_value": (
        "a finite number > 0 or None",
        lambda v: v is None or (is_real(v) and v > 0),
    ),
}


def training_problems(values: Mapping) -> list[str]:
    """Problems of the training values; any field whose default is a bool must be a bool."""
    flags = {f.name for f in fields(TrainConfig) if isinstance(f.default, bool)}
    out = [
        f"{name} must be {what}, got {values[name]!r}"
        for name, (what, ok) in TRAINING_RULES.items()
        if name in values and not ok(values[name])
    ]
    return out + [
        f"{name} must be true or false, got {values[name]!r}"
        for name in sorted(flags & set(values))
        if not isinstance(values[name], bool)
    ]
