"""Diversity strategies: cover the pool in feature space (Coreset's k-center greedy) or in the
space of last-layer gradient embeddings (BADGE's k-means++ seeding)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fmlib.strategies.base import Strategy, _candidates, _features, register


def k_center_greedy(
    features: torch.Tensor, centres: torch.Tensor, n: int, *, seed: int = 0
) -> list[int]:
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
    """k-center greedy on penultimate features, started from the labeled set (Sener & Savarese
    2018).

    Distances are Euclidean in ``model.embed`` space; the minimum distance to the centres is updated
    incrementally after each pick. With no labeled points the first pick is seeded uniform.
    """

    name = "coreset"
    needs = ("embed",)
    defaults = {"batch_size": 256, "max_candidates": None}

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        cand = _candidates(unlabeled, n, self.options["max_candidates"], seed)
        bs = self.options["batch_size"]
        with self._timed("embed_time", device):
            features = _features(model, pool, cand, bs, device)  # [N, d]
            centres = _features(model, pool, labeled, bs, device) if len(labeled) else features[:0]
        with self._timed("select_time", device):
            return cand[k_center_greedy(features, centres, n, seed=seed)]


def kronecker_sq_distances(
    a: torch.Tensor, h: torch.Tensor, a2: torch.Tensor, h2: torch.Tensor
) -> torch.Tensor:
    """Squared distances ``[N, M]`` between rows of ``a ⊗ h`` and ``a2 ⊗ h2`` without forming them.

    Uses ``<a⊗h, a'⊗h'> = <a, a'><h, h'>``: memory ``O((N + M)(C + d) + N M)`` instead of
    ``O(N C d)``.
    """
    sq = a.square().sum(1) * h.square().sum(1)  # [N]
    sq2 = a2.square().sum(1) * h2.square().sum(1)  # [M]
    cross = (a @ a2.T) * (h @ h2.T)  # [N, M]
    return (sq[:, None] + sq2[None, :] - 2 * cross).clamp_min_(0)


def kmeans_pp(
    a: torch.Tensor, h: torch.Tensor, n: int, *, seed: int = 0, first: str = "norm"
) -> list[int]:
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
        min_sq = torch.minimum(
            min_sq, kronecker_sq_distances(a, h, a[i : i + 1], h[i : i + 1])[:, 0]
        )
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
    needs = ("embed", "head")
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
            # [N, C]
            a = nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype) - probs
        with self._timed("select_time", device):
            return cand[kmeans_pp(a, h, n, seed=seed, first=self.options["first"])]
