"""Base class, registry and the random baseline of the query strategies.

:class:`Strategy` checks options and arguments, puts the model in eval mode on the scoring device
and back, and times the two phases into :class:`SelectionReport` (``strategy.report``). Subclasses
set ``name`` and ``defaults`` and implement ``_select``; ``@register`` makes them available to
:func:`get_strategy`. The helpers here (candidate subsets, input batches, features,
probabilities) are shared by every family.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from fmlib.data import ImageData, as_data
from fmlib.fisher.masks import ParameterMask
from fmlib.inputs import DictBatch
from fmlib.models import eval_mode
from fmlib.named import resolve
from fmlib.train import NonFiniteError

STRATEGIES: dict[str, type[Strategy]] = {}

_CANDIDATES = 1  # random stream of the max_candidates subset, apart from the strategies' own draws


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available to :func:`get_strategy` under ``cls.name``.

    A strategy of your own subclasses :class:`Strategy`, sets ``name``, ``defaults`` (every option
    with its default) and ``needs`` (what it calls on the model besides ``forward``), and implements
    ``_select``, which returns ``n`` positions from ``unlabeled``::

        import numpy as np
        from fmlib.strategies import Strategy, register
        from fmlib.train import predict_proba

        @register
        class LowestMaxProb(Strategy):
            name = "lowest_max_prob"
            defaults = {"batch_size": 256}

            def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
                inputs = pool.inputs(unlabeled, device)
                probs = predict_proba(model, inputs, batch_size=self.options["batch_size"])
                return unlabeled[np.argsort(probs.max(1).values.numpy(), kind="stable")[:n]]

    After ``register`` (the module imported), ``get_strategy("lowest_max_prob")`` builds it; a
    config, the CLI, papermill and the grid can also name it without registering, as
    ``"package.module:LowestMaxProb"`` (the module is imported; it must be importable there).
    """
    STRATEGIES[cls.name] = cls
    return cls


def strategy_class(name: str) -> type[Strategy]:
    """The class behind a strategy name: a registered name, or ``"package.module:Class"`` naming a
    :class:`Strategy` subclass (imported here). ``ValueError`` says what is wrong."""
    if not isinstance(name, str):
        raise ValueError(f"strategy must be a name or 'package.module:Class', got {name!r}")
    if ":" not in name:
        if name not in STRATEGIES:
            raise ValueError(
                f"unknown strategy {name!r}; allowed values: {sorted(STRATEGIES)} "
                "or 'package.module:Class' for a Strategy subclass of your own"
            )
        return STRATEGIES[name]
    cls = resolve(name, "strategy", "Class")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        what = f"class {cls.__name__}" if isinstance(cls, type) else f"a {type(cls).__name__}"
        raise ValueError(
            f"strategy {name!r} is {what}, not a subclass of fmlib.strategies.Strategy"
        )
    return cls


def get_strategy(name: str, **options) -> Strategy:
    """Build a strategy by name (registered, or ``"package.module:Class"``: :func:`strategy_class`);
    unknown names or options raise ``ValueError`` listing the valid ones."""
    return strategy_class(name)(**options)


def build_strategy(name, options: Mapping) -> Strategy:
    """The strategy of a config's ``strategy`` and ``strategy_options``: as :func:`get_strategy`,
    but a bad option's ``ValueError`` names ``strategy_options``."""
    cls = strategy_class(name)  # ValueError: unknown name, module, attribute, or not a Strategy
    try:
        return cls(**options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"strategy_options: {err}") from None


@dataclass
class FisherReport:
    """What a Fisher strategy (``bait``, ``fishermask``) reports about its last selection."""

    # name -> diagonal Fisher on the subsample, shaped like the parameter (CPU)
    fisher_diag: dict[str, torch.Tensor]
    mask: ParameterMask  # the parameter entries the embeddings keep
    picked_scores: np.ndarray  # [K] tr F(x) = ||V(x)||² in the mask of every pick, in pick order
    fisher_trace: float  # tr F_U: the pool Fisher's trace in the mask's subspace
    # FisherMask with split_half: Jaccard of the masks picked by the same rule from two disjoint
    # random halves of the Fisher sample (its sampling noise at half the size); else NaN
    split_jaccard: float = float("nan")


@dataclass
class SelectionReport:
    """What a strategy's last ``select`` call reports (``strategy.report``)."""

    embed_time: float = 0.0  # seconds computing scores, embeddings and the Fisher
    select_time: float = 0.0  # seconds choosing among the candidates
    fisher: FisherReport | None = None  # Fisher strategies only


class Strategy:
    """Base class: validates options and arguments, handles modes, devices and timing.

    Subclasses set ``name`` and ``defaults`` (every allowed option with its default) and implement
    ``_select``, which returns positions into ``pool``.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    # What the strategy calls on the model besides forward (logits [N, C]): "embed" (x ->
    # penultimate features [N, d]) and/or "head" (the final nn.Linear, d -> C). See model_needs().
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown options {unknown} for strategy {self.name!r}; allowed:"
                f" {sorted(self.defaults)}"
            )
        self.options = {**self.defaults, **options}
        self.report = SelectionReport()
        batch_size = self.options.get("batch_size", 1)
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        max_candidates = self.options.get("max_candidates")
        if max_candidates is not None and not (
            isinstance(max_candidates, int) and max_candidates >= 1
        ):
            raise ValueError(
                f"max_candidates must be None or a positive int, got {max_candidates!r}"
            )

    def model_needs(self) -> tuple[str, ...]:
        """What this strategy, with its options, needs of the model besides ``forward``."""
        return tuple(self.needs)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"

    def select(
        self,
        model: nn.Module,
        pool: ImageData,
        labeled: np.ndarray,
        unlabeled: np.ndarray,
        n: int,
        *,
        seed: int = 0,
        device=None,
    ) -> np.ndarray:
        """Pick ``n`` distinct pool positions from ``unlabeled``.

        Args:
            model: classifier returning logits ``[N, C]``; with ``embed(x)`` ``[N, d]`` and ``head``
                (``nn.Linear``) where the strategy needs them (:meth:`model_needs`).
            pool: the pool: an :class:`~fmlib.data.ImageData` or any torch ``Dataset`` (or
                ``DataLoader``) of ``(x, y)`` items; ``labeled`` and ``unlabeled`` are positions
                into it.
            labeled: ``int [L]`` already labeled positions (may be empty).
            unlabeled: ``int [U]`` candidate positions, distinct.
            n: how many to pick.
            seed: seeds every random choice; the same seed gives the same picks.
            device: where to score (default: the model's device); the model is moved there and back.

        Returns:
            ``int64 [min(n, U)]`` pool positions, in the order the strategy picked them.
        """
        pool = as_data(pool)
        labeled = np.asarray(labeled, dtype=np.int64).reshape(-1)
        unlabeled = np.asarray(unlabeled, dtype=np.int64).reshape(-1)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if len(np.unique(unlabeled)) != len(unlabeled):
            raise ValueError("unlabeled contains duplicate positions")
        if n > len(unlabeled):
            warnings.warn(
                f"strategy {self.name!r}: asked for {n} points but only {len(unlabeled)} are"
                " unlabeled",
                stacklevel=2,
            )
            n = len(unlabeled)
        self.report = SelectionReport()
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        params = list(model.parameters())
        home = params[0].device if params else torch.device("cpu")
        device = torch.device(device) if device is not None else home
        try:
            with eval_mode(model.to(device)):  # each module's mode restored, not just the top's
                picks = self._select(
                    model, pool, labeled, unlabeled, int(n), seed=int(seed), device=device
                )
        finally:
            model.to(home)
        return check_picks(picks, n, unlabeled, labeled, what=f"strategy {self.name!r}")

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device) -> np.ndarray:
        raise NotImplementedError

    @contextmanager
    def _timed(self, key: str, device: torch.device):
        start = time.perf_counter()
        try:
            yield
        finally:
            if device.type == "cuda":
                # GPU work is asynchronous: wait before reading the clock
                torch.cuda.synchronize(device)
            setattr(self.report, key, getattr(self.report, key) + time.perf_counter() - start)


# ----------------------------------------------------------------------------- helpers


def check_picks(
    picks,
    n: int,
    unlabeled: np.ndarray,
    labeled: np.ndarray = (),
    *,
    what: str = "the strategy",
    pool_size: int | None = None,
) -> np.ndarray:
    """``picks`` as ``int64 [n]`` pool positions, or ``RuntimeError`` saying what is wrong with
    them: not an array of integers, how many, out of range, duplicates, already labeled."""
    array = None if picks is None else np.asarray(picks)
    if (
        array is None
        or array.dtype == object
        or not (np.issubdtype(array.dtype, np.integer) or array.size == 0)
    ):
        got = "None" if array is None else f"{array.dtype} values {array.reshape(-1)[:5].tolist()}"
        raise RuntimeError(
            f"{what} must return integer pool positions (an int array of {n}), got {got}"
        )
    array = array.astype(np.int64).reshape(-1)
    problems = []
    if len(array) != n:
        problems.append(f"{len(array)} picks where {n} were asked for")
    if pool_size is not None and ((array < 0) | (array >= pool_size)).any():
        problems.append(
            f"positions out of range 0..{pool_size - 1}:"
            f" {array[(array < 0) | (array >= pool_size)][:5].tolist()}"
        )
    values, counts = np.unique(array, return_counts=True)
    if (counts > 1).any():
        problems.append(
            f"{int((counts > 1).sum())} duplicated positions: {values[counts > 1][:5].tolist()}"
        )
    done = np.isin(array, np.asarray(labeled, dtype=np.int64))
    if done.any():
        problems.append(f"{int(done.sum())} already labeled: {array[done][:5].tolist()}")
    elsewhere = ~np.isin(array, unlabeled) & ~done
    if pool_size is not None:
        elsewhere &= (array >= 0) & (array < pool_size)
    if elsewhere.any():
        problems.append(
            f"{int(elsewhere.sum())} not among the unlabeled candidates:"
            f" {array[elsewhere][:5].tolist()}"
        )
    if problems:
        raise RuntimeError(f"{what} returned invalid picks: {'; '.join(problems)}")
    return array


def _candidates(unlabeled: np.ndarray, n: int, max_candidates: int | None, seed: int) -> np.ndarray:
    """All of ``unlabeled``, or a sorted seeded subset of ``max(max_candidates, n)`` of them."""
    if max_candidates is None or max(max_candidates, n) >= len(unlabeled):
        return unlabeled
    rng = np.random.default_rng([seed, _CANDIDATES])
    return np.sort(rng.choice(unlabeled, size=max(max_candidates, n), replace=False))


def _batches(model: nn.Module, pool: ImageData, indices: np.ndarray, batch_size: int, device):
    """Normalised inputs of ``pool[indices]`` in batches, in the model's dtype (float64 oracle
    tests)."""
    dtype = next(model.parameters()).dtype
    for start in range(0, len(indices), batch_size):
        x = pool.inputs(indices[start : start + batch_size], device)
        bad = _nonfinite_rows(x)
        if bad:
            positions = np.asarray(indices[start : start + batch_size])[bad]
            raise NonFiniteError(
                f"the pool's inputs hold NaN or inf: samples {positions[:5].tolist()} "
                f"({len(bad)} in a batch of {len(x)})"
            )
        # integer inputs (token ids) stay integers
        yield (x.to(dtype) if x.is_floating_point() else x)


def _nonfinite_rows(x) -> list[int]:
    """Rows of a batch ``[N, ...]`` (a tensor or a :class:`~fmlib.inputs.DictBatch`) whose
    floating-point values hold NaN or inf."""
    parts = [v for _, v in x.items()] if isinstance(x, DictBatch) else [x]
    bad = torch.zeros(len(x), dtype=torch.bool, device=parts[0].device if parts else None)
    for v in parts:
        if v.is_floating_point():
            bad |= ~torch.isfinite(v.reshape(len(v), -1)).all(1)
    return torch.nonzero(bad).flatten().tolist()


@torch.no_grad()
def _features(model, pool, indices, batch_size, device) -> torch.Tensor:
    """Penultimate features ``[N, d]`` on ``device``."""
    return torch.cat([model.embed(x) for x in _batches(model, pool, indices, batch_size, device)])


@torch.no_grad()
def _probabilities(model, pool, indices, batch_size, device) -> torch.Tensor:
    """Softmax outputs ``[N, C]`` on ``device``."""
    return torch.cat(
        [model(x).softmax(-1) for x in _batches(model, pool, indices, batch_size, device)]
    )


# ----------------------------------------------------------------------------- random


@register
class Random(Strategy):
    """Uniformly random picks (seeded)."""

    name = "random"

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        with self._timed("select_time", device):
            return np.random.default_rng(seed).choice(unlabeled, size=n, replace=False)
