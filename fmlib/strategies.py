"""Query strategies: which unlabeled pool points to label next.

Every strategy answers ``select(model, pool, labeled, unlabeled, n, seed=, device=)`` with ``n``
distinct positions into ``pool`` taken from ``unlabeled`` (fewer, with a warning, only when fewer
are unlabeled), deterministically for a fixed seed. It scores with the model in eval mode on
``device`` and restores the model's mode and device afterwards. ``strategy.info`` describes the
last call: ``embed_time`` and ``select_time`` in seconds (computing scores/embeddings/Fisher vs.
choosing), and for ``bait``/``fishermask`` also ``fisher_diag``, ``mask``, ``picked_scores`` and
``fisher_trace``.

Every strategy but ``random`` takes ``max_candidates`` (default ``None``: all of ``unlabeled``): for
big pools, score only a seeded random subset of that many unlabeled points (at least ``n``).
Among equal scores the earlier position in ``unlabeled`` wins.
"""

from __future__ import annotations

import copy
import time
import warnings
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from fmlib.data import ImageData
from fmlib.fisher import FISH_SAMPLES, SCALES, fisher_diagonal, fisher_subsample, gradient_embeddings, sample_scores
from fmlib.masks import METHODS, ParameterMask, fisher_mask
from fmlib.select import greedy_trace_select

STRATEGIES: dict[str, type[Strategy]] = {}

PRECISIONS = ("float32", "float64")  # of the Fisher strategies' computations
_CANDIDATES = 1  # random stream of the max_candidates subset, apart from the strategies' own draws


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available to :func:`get_strategy` under ``cls.name``."""
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str, **options) -> Strategy:
    """Build a strategy by name; unknown names or options raise ``ValueError`` listing the valid ones."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; allowed values: {sorted(STRATEGIES)}")
    return STRATEGIES[name](**options)


class Strategy:
    """Base class: validates options and arguments, handles modes, devices and timing.

    Subclasses set ``name`` and ``defaults`` (every allowed option with its default) and implement
    ``_select``, which returns positions into ``pool``.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(f"unknown options {unknown} for strategy {self.name!r}; allowed: {sorted(self.defaults)}")
        self.options = {**self.defaults, **options}
        self.info: dict[str, Any] = {}
        batch_size = self.options.get("batch_size", 1)
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        max_candidates = self.options.get("max_candidates")
        if max_candidates is not None and not (isinstance(max_candidates, int) and max_candidates >= 1):
            raise ValueError(f"max_candidates must be None or a positive int, got {max_candidates!r}")

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
            model: classifier with ``embed(x)`` ``[N, d]`` and ``head`` (``nn.Linear``).
            pool: the pool images; ``labeled`` and ``unlabeled`` are positions into it.
            labeled: ``int [L]`` already labeled positions (may be empty).
            unlabeled: ``int [U]`` candidate positions, distinct.
            n: how many to pick.
            seed: seeds every random choice; the same seed gives the same picks.
            device: where to score (default: the model's device); the model is moved there and back.

        Returns:
            ``int64 [min(n, U)]`` pool positions, in the order the strategy picked them.
        """
        labeled = np.asarray(labeled, dtype=np.int64).reshape(-1)
        unlabeled = np.asarray(unlabeled, dtype=np.int64).reshape(-1)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if len(np.unique(unlabeled)) != len(unlabeled):
            raise ValueError("unlabeled contains duplicate positions")
        if n > len(unlabeled):
            warnings.warn(
                f"strategy {self.name!r}: asked for {n} points but only {len(unlabeled)} are unlabeled",
                stacklevel=2,
            )
            n = len(unlabeled)
        self.info = {"embed_time": 0.0, "select_time": 0.0}
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        params = list(model.parameters())
        home = params[0].device if params else torch.device("cpu")
        device = torch.device(device) if device is not None else home
        modes = [(module, module.training) for module in model.modules()]  # each one's, not just the top's
        model.eval().to(device)
        try:
            picks = self._select(model, pool, labeled, unlabeled, int(n), seed=int(seed), device=device)
        finally:
            model.to(home)
            for module, training in modes:
                module.training = training
        picks = np.asarray(picks, dtype=np.int64).reshape(-1)
        if len(picks) != n or len(np.unique(picks)) != n or not np.isin(picks, unlabeled).all():
            raise RuntimeError(f"strategy {self.name!r} returned invalid picks {picks.tolist()}")
        return picks

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device) -> np.ndarray:
        raise NotImplementedError

    @contextmanager
    def _timed(self, key: str, device: torch.device):
        start = time.perf_counter()
        try:
            yield
        finally:
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # GPU work is asynchronous: wait before reading the clock
            self.info[key] = self.info.get(key, 0.0) + time.perf_counter() - start


# ----------------------------------------------------------------------------- helpers


def _candidates(unlabeled: np.ndarray, n: int, max_candidates: int | None, seed: int) -> np.ndarray:
    """All of ``unlabeled``, or a sorted seeded subset of ``max(max_candidates, n)`` of them."""
    if max_candidates is None or max(max_candidates, n) >= len(unlabeled):
        return unlabeled
    rng = np.random.default_rng([seed, _CANDIDATES])
    return np.sort(rng.choice(unlabeled, size=max(max_candidates, n), replace=False))


def _batches(model: nn.Module, pool: ImageData, indices: np.ndarray, batch_size: int, device):
    """Normalised inputs of ``pool[indices]`` in batches, in the model's dtype (float64 oracle tests)."""
    dtype = next(model.parameters()).dtype
    for start in range(0, len(indices), batch_size):
        yield pool.inputs(indices[start : start + batch_size], device).to(dtype)


@torch.no_grad()
def _features(model, pool, indices, batch_size, device) -> torch.Tensor:
    """Penultimate features ``[N, d]`` on ``device``."""
    return torch.cat([model.embed(x) for x in _batches(model, pool, indices, batch_size, device)])


@torch.no_grad()
def _probabilities(model, pool, indices, batch_size, device) -> torch.Tensor:
    """Softmax outputs ``[N, C]`` on ``device``."""
    return torch.cat([model(x).softmax(-1) for x in _batches(model, pool, indices, batch_size, device)])


# ----------------------------------------------------------------------------- random and uncertainty


@register
class Random(Strategy):
    """Uniformly random picks (seeded)."""

    name = "random"

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        with self._timed("select_time", device):
            return np.random.default_rng(seed).choice(unlabeled, size=n, replace=False)


class _ScoreStrategy(Strategy):
    """Scores every candidate independently and takes the ``n`` highest (stable for ties)."""

    defaults = {"batch_size": 256, "max_candidates": None}

    def scores(self, model, pool, indices, *, seed, device) -> torch.Tensor:
        """``[N]`` informativeness of ``pool[indices]``; higher is picked first."""
        raise NotImplementedError

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        cand = _candidates(unlabeled, n, self.options["max_candidates"], seed)
        with self._timed("embed_time", device):
            scores = self.scores(model, pool, cand, seed=seed, device=device).double().cpu().numpy()
        with self._timed("select_time", device):
            return cand[np.argsort(-scores, kind="stable")[:n]]


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Predictive entropy ``-Σ_c p_c log p_c`` of ``probs [..., C]`` (``0 log 0 = 0``)."""
    return torch.special.entr(probs).sum(-1)


@register
class Entropy(_ScoreStrategy):
    """Highest predictive entropy."""

    name = "entropy"

    def scores(self, model, pool, indices, *, seed, device):
        return entropy(_probabilities(model, pool, indices, self.options["batch_size"], device))


@register
class Margin(_ScoreStrategy):
    """Smallest gap between the two most probable classes (score = minus the gap)."""

    name = "margin"

    def scores(self, model, pool, indices, *, seed, device):
        top2 = _probabilities(model, pool, indices, self.options["batch_size"], device).topk(2, dim=-1).values
        return top2[:, 1] - top2[:, 0]


@register
class LeastConfidence(_ScoreStrategy):
    """Lowest top-class probability (score = ``1 - max_c p_c``)."""

    name = "least_confidence"

    def scores(self, model, pool, indices, *, seed, device):
        return 1 - _probabilities(model, pool, indices, self.options["batch_size"], device).amax(-1)


def bald_scores(probs: torch.Tensor) -> torch.Tensor:
    """BALD mutual information from MC samples ``probs [T, N, C]``: ``H(mean_t p_t) - mean_t H(p_t)``."""
    return entropy(probs.mean(0)) - entropy(probs).mean(0)


@register
class BALD(_ScoreStrategy):
    """BALD (Houlsby et al. 2011) with MC dropout on the penultimate features.

    Our models have no dropout layers, so dropout with rate ``p`` is applied to ``model.embed(x)``
    (the same features as in eval mode; inverted scaling ``1/(1-p)``) before ``model.head``, ``samples``
    times per point. Masks come from a CPU ``torch.Generator`` seeded with ``seed`` and are drawn
    batch by batch as ``torch.rand(samples, b, d) >= p``, so scores depend on ``seed`` and
    ``batch_size`` only, not on the device.

    Options: ``p`` (0.5), ``samples`` (T, 20), ``batch_size``, ``max_candidates``.
    """

    name = "bald"
    defaults = {**_ScoreStrategy.defaults, "p": 0.5, "samples": 20}

    def __init__(self, **options):
        super().__init__(**options)
        if not 0 <= self.options["p"] < 1:
            raise ValueError(f"dropout rate p must be in [0, 1), got {self.options['p']}")
        if not (isinstance(self.options["samples"], int) and self.options["samples"] >= 1):
            raise ValueError(f"samples must be a positive int, got {self.options['samples']!r}")

    @torch.no_grad()
    def scores(self, model, pool, indices, *, seed, device):
        p, samples = self.options["p"], self.options["samples"]
        generator = torch.Generator().manual_seed(seed)
        out = []
        for x in _batches(model, pool, indices, self.options["batch_size"], device):
            h = model.embed(x)  # [b, d]
            keep = torch.rand((samples, *h.shape), generator=generator) >= p  # [T, b, d]
            h = h * keep.to(device=h.device, dtype=h.dtype) / (1 - p)
            out.append(bald_scores(model.head(h).softmax(-1)))  # [T, b, C] -> [b]
        return torch.cat(out)


# ----------------------------------------------------------------------------- diversity


def k_center_greedy(features: torch.Tensor, centres: torch.Tensor, n: int, *, seed: int = 0) -> list[int]:
    """Greedy k-center (Sener & Savarese 2018): ``n`` times add the point farthest from all centres.

    Args:
        features: ``[N, d]`` candidates.
        centres: ``[L, d]`` initial centres (the labeled set); when empty the first pick is a
            seeded uniform choice.
        n: how many to pick, ``<= N``.

    Returns:
        Positions into ``features`` in pick order.
    """
    num = len(features)
    # Squared distances (same argmax) as |f|² - 2 f·c + |c|²: matrix products, ~6x faster than
    # forming f - c. The nearest-centre distance is kept incrementally, O(N d) a pick.
    sq_norms = features.square().sum(1)  # [N]
    min_sq = torch.full((num,), float("inf"), dtype=features.dtype, device=features.device)
    chunk = max(1, 2**24 // max(num, 1))  # bounds the [N, chunk] distance block
    for start in range(0, len(centres), chunk):
        block = centres[start : start + chunk]  # [c, d]
        dist = sq_norms[:, None] - 2 * features @ block.T + block.square().sum(1)  # [N, c]
        min_sq = torch.minimum(min_sq, dist.amin(1).clamp_min_(0))
    picks = []
    for _ in range(n):
        if picks or len(centres):
            i = int(min_sq.argmax())
        else:
            i = int(np.random.default_rng(seed).integers(num))
        picks.append(i)
        dist = (sq_norms - 2 * (features @ features[i]) + sq_norms[i]).clamp_min_(0)
        min_sq = torch.minimum(min_sq, dist)
        min_sq[picks] = -float("inf")  # never pick twice, even among duplicate points
    return picks


@register
class Coreset(Strategy):
    """k-center greedy on penultimate features, started from the labeled set (Sener & Savarese 2018).

    Distances are Euclidean in ``model.embed`` space; the minimum distance to the centres is updated
    incrementally after each pick. With no labeled points the first pick is seeded uniform.
    """

    name = "coreset"
    defaults = {"batch_size": 256, "max_candidates": None}

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        cand = _candidates(unlabeled, n, self.options["max_candidates"], seed)
        bs = self.options["batch_size"]
        with self._timed("embed_time", device):
            features = _features(model, pool, cand, bs, device)  # [N, d]
            centres = _features(model, pool, labeled, bs, device) if len(labeled) else features[:0]
        with self._timed("select_time", device):
            return cand[k_center_greedy(features, centres, n, seed=seed)]


def kronecker_sq_distances(a: torch.Tensor, h: torch.Tensor, a2: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
    """Squared distances ``[N, M]`` between rows of ``a ⊗ h`` and ``a2 ⊗ h2`` without forming them.

    Uses ``<a⊗h, a'⊗h'> = <a, a'><h, h'>``: memory ``O((N + M)(C + d) + N M)`` instead of ``O(N C d)``.
    """
    sq = a.square().sum(1) * h.square().sum(1)  # [N]
    sq2 = a2.square().sum(1) * h2.square().sum(1)  # [M]
    cross = (a @ a2.T) * (h @ h2.T)  # [N, M]
    return (sq[:, None] + sq2[None, :] - 2 * cross).clamp_min_(0)


def kmeans_pp(a: torch.Tensor, h: torch.Tensor, n: int, *, seed: int = 0, first: str = "norm") -> list[int]:
    """k-means++ seeding on the implicit embeddings ``a ⊗ h`` (rows of ``a [N, C]``, ``h [N, d]``).

    Args:
        first: ``"norm"``: the first centre is the largest embedding (BADGE's code); ``"random"``:
            a seeded uniform choice.

    Later centres are drawn with probability proportional to the squared distance to the nearest
    centre (uniform over the unpicked points if all those distances are zero).
    """
    rng = np.random.default_rng(seed)
    num = len(a)
    if first == "norm":
        i = int((a.square().sum(1) * h.square().sum(1)).argmax())
    else:
        i = int(rng.integers(num))
    picks = [i]
    min_sq = torch.full((num,), float("inf"), dtype=a.dtype, device=a.device)
    while len(picks) < n:
        min_sq = torch.minimum(min_sq, kronecker_sq_distances(a, h, a[i : i + 1], h[i : i + 1])[:, 0])
        weights = min_sq.double().cpu().numpy()
        weights[picks] = 0
        if weights.sum() <= 0:
            weights = np.ones(num)
            weights[picks] = 0
        i = int(rng.choice(num, p=weights / weights.sum()))
        picks.append(i)
    return picks


@register
class BADGE(Strategy):
    """BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings.

    The embedding is ``g = (e_ŷ - p) ⊗ h`` (``ŷ`` the predicted class, ``h = model.embed(x)``), the
    gradient of the cross-entropy at the predicted label w.r.t. the head weight (up to sign).
    Distances use the factorised inner product, so the ``N x C·d`` embeddings never exist.
    Option ``first``: ``"norm"`` (default, as BADGE's code: largest embedding) or ``"random"``.
    """

    name = "badge"
    defaults = {"batch_size": 256, "max_candidates": None, "first": "norm"}

    def __init__(self, **options):
        super().__init__(**options)
        if self.options["first"] not in ("norm", "random"):
            raise ValueError(f"first must be 'norm' or 'random', got {self.options['first']!r}")

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        cand = _candidates(unlabeled, n, self.options["max_candidates"], seed)
        with self._timed("embed_time", device):
            h = _features(model, pool, cand, self.options["batch_size"], device)  # [N, d]
            with torch.no_grad():
                probs = model.head(h).softmax(-1)  # [N, C]
            a = nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype) - probs  # [N, C]
        with self._timed("select_time", device):
            return cand[kmeans_pp(a, h, n, seed=seed, first=self.options["first"])]


# ----------------------------------------------------------------------------- Fisher: BAIT and FisherMask


def head_gradient_embeddings(probs: torch.Tensor, h: torch.Tensor, *, include_bias: bool = False) -> torch.Tensor:
    """BAIT's Fisher embeddings of the head, in closed form: ``[N, C, k]``.

    Row ``c`` is ``sqrt(p_c) ∂ log p(c|x)/∂θ`` with ``θ`` the head weight ``[C, d]`` (row-major,
    ``k = C·d``), then the bias (``k = C·d + C``) when ``include_bias``. For a linear head,
    ``∂ log p_c/∂W = (e_c - p) ⊗ h`` and ``∂ log p_c/∂b = e_c - p``.
    """
    num, classes = probs.shape
    diff = torch.eye(classes, dtype=probs.dtype, device=probs.device) - probs[:, None, :]  # [N, C, C]
    diff = diff * probs.sqrt()[:, :, None]
    emb = (diff[..., None] * h[:, None, None, :]).reshape(num, classes, -1)  # [N, C, C·d]
    return torch.cat([emb, diff], -1) if include_bias else emb


def _head_names(model: nn.Module, include_bias: bool) -> list[str]:
    by_id = {id(p): name for name, p in model.named_parameters()}
    params = [model.head.weight] + ([model.head.bias] if include_bias and model.head.bias is not None else [])
    return [by_id[id(p)] for p in params]


class _FisherStrategy(Strategy):
    """BAIT's pipeline (Ash et al. 2021) on the parameters a :class:`ParameterMask` selects.

    1. Diagonal Fisher on a seeded subsample of ``fisher_samples`` points of ``labeled ∪ unlabeled``,
       and the mask (subclasses).
    2. Embeddings ``V(x) [C, k]`` of the candidates and of the labeled points, ``batch_size`` at a time.
    3. ``F_U`` = mean over candidates of ``VᵀV``, ``F_L`` = mean over labeled, summed in float64
       (sums of thousands of rank-C terms lose digits in float32; the greedy works in float64 too).
    4. :func:`greedy_trace_select` with ``lamb`` and ``backward_steps``.

    Memory: the candidates' embeddings ``[N, C, k]`` and a few ``[k, k]``. ``progress``: tqdm bars.

    ``precision``: ``"float32"`` computes the Fisher diagonal, the embeddings and the greedy's
    candidate products in the model's float32; ``"float64"`` does all three on a float64 copy of
    the model. Float32 rounding differs between thread counts and CPUs (summation order), and the
    mask's top-k and the greedy's argmax have near-ties, so a float32 selection can differ across
    machines; float64 makes such flips ~1e9 times rarer at about twice the cost (README, "numerical
    noise").
    """

    defaults = {
        "lamb": 1.0,
        "backward_steps": 0,
        "fisher_samples": FISH_SAMPLES,  # 1024, FISH's and FisherMask's
        "batch_size": 256,
        "max_candidates": None,
        "precision": "float32",
        "progress": False,
    }

    def __init__(self, **options):
        super().__init__(**options)
        opts = self.options
        if isinstance(opts["lamb"], bool) or not isinstance(opts["lamb"], (int, float)) or not opts["lamb"] > 0:
            raise ValueError(f"lamb must be a number > 0, got {opts['lamb']!r}")
        for key in ("backward_steps", "fisher_samples"):
            low = 0 if key == "backward_steps" else 1
            if isinstance(opts[key], bool) or not isinstance(opts[key], int) or opts[key] < low:
                raise ValueError(f"{key} must be an int >= {low}, got {opts[key]!r}")
        if opts["precision"] not in PRECISIONS:
            raise ValueError(f"unknown precision {opts['precision']!r}; allowed values: {list(PRECISIONS)}")

    def _mask_and_diag(self, model, inputs, *, seed) -> tuple[ParameterMask, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def _embed(self, model, x, mask) -> torch.Tensor:
        """``[b, C, k]`` embeddings of a batch."""
        raise NotImplementedError

    def _embeddings(self, model, pool, indices, mask, device, *, keep: bool):
        """Embeddings (when ``keep``) and ``mean_x V(x)ᵀV(x)`` in float64."""
        kept, fisher = [], None
        batches = _batches(model, pool, indices, self.options["batch_size"], device)
        total = -(-len(indices) // self.options["batch_size"])
        for x in tqdm(batches, total=total, desc=f"{self.name} embeddings", disable=not self.options["progress"]):
            emb = self._embed(model, x, mask).detach()  # [b, C, k]
            flat = emb.reshape(-1, emb.shape[-1]).double()  # [b·C, k]
            fisher = flat.T @ flat if fisher is None else fisher.addmm_(flat.T, flat)
            if keep:
                kept.append(emb)
        return (torch.cat(kept) if keep else None), fisher / len(indices)

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        cand = _candidates(unlabeled, n, self.options["max_candidates"], seed)
        with self._timed("embed_time", device):
            if self.options["precision"] == "float64":
                model = copy.deepcopy(model).double()  # inputs follow the model's dtype (_batches)
            everyone = np.union1d(labeled, unlabeled)
            sample = everyone[fisher_subsample(len(everyone), self.options["fisher_samples"], seed)]
            inputs = next(_batches(model, pool, sample, len(sample), device))  # [S, C, H, W]
            mask, fisher_diag = self._mask_and_diag(model, inputs, seed=seed)
            emb, fisher_u = self._embeddings(model, pool, cand, mask, device, keep=True)  # [N, C, k], [k, k]
            fisher_l = None
            if len(labeled):
                _, fisher_l = self._embeddings(model, pool, labeled, mask, device, keep=False)
        with self._timed("select_time", device):
            picks = greedy_trace_select(
                emb,
                n,
                fisher=fisher_u,
                labeled_fisher=fisher_l,
                n_labeled=len(labeled),
                lamb=self.options["lamb"],
                backward_steps=self.options["backward_steps"],
                progress=self.options["progress"],
            )
        picks = np.asarray(picks, dtype=np.int64)
        self.info.update(
            fisher_diag={name: t.detach().cpu() for name, t in fisher_diag.items()},
            mask=mask,
            picked_scores=sample_scores(emb[torch.as_tensor(picks)]).double().cpu().numpy(),
            fisher_trace=float(fisher_u.diagonal().sum()),
        )
        return cand[picks]


@register
class BAIT(_FisherStrategy):
    """BAIT (Ash et al. 2021) on the head weight, with closed-form embeddings.

    The mask is the head weight (plus the bias with ``include_bias=True``; default ``False`` as in
    BAIT's code, whose embedding is the weight only). Rows are weighted by ``sqrt(p_c)`` so ``VᵀV`` is
    the Fisher of ``x``. ``backward_steps=0`` by default (the paper's setting); BAIT's original
    oversample-2x-then-prune is ``backward_steps=1``. ``info["fisher_diag"]`` is the head's diagonal
    Fisher on the ``fisher_samples`` subsample (closed form, no backward pass) and ``info["mask"]``
    a :class:`ParameterMask` over the same head parameters, all selected.
    """

    name = "bait"
    defaults = {**_FisherStrategy.defaults, "include_bias": False}

    def _embed(self, model, x, mask):
        with torch.no_grad():
            h = model.embed(x)  # [b, d]
            return head_gradient_embeddings(model.head(h).softmax(-1), h, include_bias=self.options["include_bias"])

    def _mask_and_diag(self, model, inputs, *, seed):
        params = dict(model.named_parameters())
        names = _head_names(model, self.options["include_bias"])
        # Over the head only (not ParameterMask.full): info's mask and fisher_diag cover the same names.
        mask = ParameterMask({name: torch.ones_like(params[name], dtype=torch.bool) for name in names})
        diag = sum(self._embed(model, x, None).square().sum((0, 1)) for x in inputs.split(self.options["batch_size"]))
        diag = diag / len(inputs)  # [k]
        sizes = [params[name].numel() for name in names]
        return mask, {name: d.view_as(params[name]) for name, d in zip(names, diag.split(sizes))}


@register
class FisherMask(_FisherStrategy):
    """FisherMask (Gul et al. 2024): BAIT on whole-network gradients restricted to a Fisher mask.

    The diagonal true Fisher on a seeded subsample of ``fisher_samples`` (1024) points of the pool,
    with test-time inputs, picks ``fraction`` (0.002) of all parameters by ``method`` (``"global"``,
    ``"per_layer"`` or ``"random"``), the head always included when ``include_head``. Embeddings are
    ``gradient_embeddings(scale=scale)`` (``"fisher"``: ``sqrt(p_c)`` rows as in BAIT; ``"none"``: as
    the authors' code). ``mask=`` injects a fixed :class:`ParameterMask` instead (the Fisher diagonal
    is still computed for ``info``). ``chunk_size``: samples per forward/backward in the Fisher
    engine (``None``: its default; the backward holds C times the activations); ``batch_size``:
    samples per embedding block.
    """

    name = "fishermask"
    defaults = {
        **_FisherStrategy.defaults,
        "fraction": 0.002,
        "method": "global",
        "include_head": True,
        "scale": "fisher",
        "mask": None,
        "chunk_size": None,
    }

    def __init__(self, **options):
        super().__init__(**options)
        opts = self.options
        if opts["method"] not in METHODS:
            raise ValueError(f"unknown method {opts['method']!r}; allowed values: {list(METHODS)}")
        if opts["scale"] not in SCALES:
            raise ValueError(f"unknown scale {opts['scale']!r}; allowed values: {list(SCALES)}")
        fraction = opts["fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ValueError(f"fraction must be a number in (0, 1], got {opts['fraction']!r}")
        if opts["mask"] is not None and not isinstance(opts["mask"], ParameterMask):
            raise ValueError(f"mask must be None or a ParameterMask, got {type(opts['mask']).__name__}")

    def _embed(self, model, x, mask):
        return gradient_embeddings(model, x, mask, scale=self.options["scale"], chunk_size=self.options["chunk_size"])

    def _mask_and_diag(self, model, inputs, *, seed):
        diag = fisher_diagonal(model, inputs, chunk_size=self.options["chunk_size"])
        mask = self.options["mask"]
        if mask is None:
            opts = self.options
            mask = fisher_mask(
                diag, opts["fraction"], method=opts["method"], include_head=opts["include_head"], model=model, seed=seed
            )
        return mask, diag
