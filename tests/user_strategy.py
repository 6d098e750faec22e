"""Strategies defined outside fmlib, reached by name as ``"tests.user_strategy:Class"``."""

import numpy as np

from fmlib.strategies import Strategy
from fmlib.train import predict_proba


class LowestMaxProb(Strategy):
    """Least confident first, written as a user would: only logits, no ``embed``/``head``."""

    name = "lowest_max_prob"
    defaults = {"batch_size": 256}

    def _select(self, model, pool, labeled, unlabeled, n, *, seed, device):
        probs = predict_proba(
            model, pool.inputs(unlabeled, device), batch_size=self.options["batch_size"]
        )
        return unlabeled[np.argsort(probs.max(1).values.numpy(), kind="stable")[:n]]


class NeedsEmbed(LowestMaxProb):
    """Declares that it calls ``model.embed`` (the up-front model check names it)."""

    name = "needs_embed"
    needs = ("embed",)


NOT_A_STRATEGY = object()


class NotAStrategy:
    """A class with a select method but not a Strategy subclass: refused by name."""

    def select(self, model, pool, labeled, unlabeled, n, *, seed=0, device=None):
        return unlabeled[:n]
