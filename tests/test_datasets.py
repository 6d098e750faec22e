"""Datasets: the imbalanced subsample of a pool."""

from __future__ import annotations

import numpy as np

from fmlib.datasets import make_imbalanced


def test_make_imbalanced_keeps_other_samples_for_another_seed_with_the_same_counts():
    # kills: make_imbalanced ignoring its seed
    labels = np.repeat(np.arange(4), 50)
    first, second = (make_imbalanced(labels, "step", ratio=4.0, seed=s) for s in (0, 1))
    assert np.array_equal(np.bincount(labels[first]), np.bincount(labels[second]))
    assert not np.array_equal(first, second)
    assert np.array_equal(first, make_imbalanced(labels, "step", ratio=4.0, seed=0))
