"""Uncertainty strategies: score every candidate by the model's predictive uncertainty and take
the ``n`` highest (entropy, margin, least confidence, BALD with MC dropout on the features)."""

from __future__ import annotations

import numpy as np
import torch

from fmlib.strategies.base import Strategy, _batches, _candidates, _probabilities, register


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
        top2 = (
            _probabilities(model, pool, indices, self.options["batch_size"], device)
            .topk(2, dim=-1)
            .values
        )
        return top2[:, 1] - top2[:, 0]


@register
class LeastConfidence(_ScoreStrategy):
    """Lowest top-class probability (score = ``1 - max_c p_c``)."""

    name = "least_confidence"

    def scores(self, model, pool, indices, *, seed, device):
        return 1 - _probabilities(model, pool, indices, self.options["batch_size"], device).amax(-1)


def bald_scores(probs: torch.Tensor) -> torch.Tensor:
    """BALD mutual information from MC samples ``probs [T, N, C]``:
    ``H(mean_t p_t) - mean_t H(p_t)``."""
    return entropy(probs.mean(0)) - entropy(probs).mean(0)


@register
class BALD(_ScoreStrategy):
    """BALD (Houlsby et al. 2011) with MC dropout on the penultimate features.

    Our models have no dropout layers, so dropout with rate ``p`` is applied to ``model.embed(x)``
    (the same features as in eval mode; inverted scaling ``1/(1-p)``) before ``model.head``,
    ``samples`` times per point. Masks come from a CPU ``torch.Generator`` seeded with ``seed`` and
    are drawn batch by batch as ``torch.rand(samples, b, d) >= p``, so scores depend on ``seed`` and
    ``batch_size`` only, not on the device.

    Options: ``p`` (0.5), ``samples`` (T, 20), ``batch_size``, ``max_candidates``.
    """

    name = "bald"
    needs = ("embed", "head")
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
