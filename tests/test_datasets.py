"""Datasets: the imbalanced subsample of a pool, the initial labeled set, the capped pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmlib.datasets import initial_labeled, make_imbalanced, prepare_data


def test_make_imbalanced_keeps_other_samples_for_another_seed_with_the_same_counts():
    # kills: make_imbalanced ignoring its seed
    labels = np.repeat(np.arange(4), 50)
    first, second = (make_imbalanced(labels, "step", ratio=4.0, seed=s) for s in (0, 1))
    assert np.array_equal(np.bincount(labels[first]), np.bincount(labels[second]))
    assert not np.array_equal(first, second)
    assert np.array_equal(first, make_imbalanced(labels, "step", ratio=4.0, seed=0))


def test_a_balanced_initial_set_gives_the_remainder_one_each_to_distinct_classes():
    # 23 labels over 5 classes: 4 each and one more for 3 of them, whatever the seed
    labels = np.repeat(np.arange(5), [100, 80, 120, 100, 90])
    for seed in range(10):
        counts = np.bincount(labels[initial_labeled(labels, 23, "balanced", seed=seed)])
        assert sorted(counts.tolist()) == [4, 4, 5, 5, 5], seed


@pytest.mark.parametrize("method", ["random", "balanced"])
def test_the_initial_set_may_be_the_whole_pool(method):
    labels = np.repeat(np.arange(3), [4, 5, 6])
    assert initial_labeled(labels, 15, method, seed=3).tolist() == list(range(15))
    with pytest.raises(ValueError, match=r"initial size must be in 1\.\.15"):
        initial_labeled(labels, 16, method)


def test_a_capped_pool_is_another_stratified_subset_for_another_seed():
    # 90 blobs, 30 a class: a pool of 30 keeps 10 a class, and which ones follows the seed
    pools = [
        prepare_data("tests.user_parts:blob_data", imbalance="none", pool_size=30, seed=s).pool
        for s in (0, 1, 0)
    ]
    assert all(pool.class_counts().tolist() == [10, 10, 10] for pool in pools)
    assert not torch.equal(pools[0].inputs(), pools[1].inputs())
    assert torch.equal(pools[0].inputs(), pools[2].inputs())
