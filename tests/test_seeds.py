"""The seeds of a run (fmlib.seeds): one independent seed per run seed, round and purpose, and a
block that seeds every global RNG and leaves them as it found them."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from fmlib.seeds import round_seed, seeded


def test_round_seeds_are_fixed_32_bit_and_differ_by_seed_round_and_purpose():
    seeds = {
        (seed, r, purpose): round_seed(seed, r, purpose)
        for seed in (0, 1)
        for r in range(3)
        for purpose in ("init", "train", "select")
    }
    assert len(set(seeds.values())) == len(seeds)
    assert all(0 <= s < 2**32 for s in seeds.values())
    assert round_seed(0, 2, "select") == seeds[(0, 2, "select")]


def test_an_unknown_purpose_is_named_with_the_allowed_ones():
    with pytest.raises(
        ValueError,
        match=r"purpose must be one of \['init', 'train', 'select'\], "
        r"got 'query'",
    ):
        round_seed(0, 0, "query")


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def reseed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def test_a_seeded_block_draws_the_same_whatever_came_before():
    with seeded(7):
        first = draws()
    draws()  # the global streams move on
    with seeded(7):
        assert draws() == first
    with seeded(8):
        assert draws() != first


def test_a_seeded_block_leaves_every_global_stream_where_it_was():
    reseed(1)
    expected = draws()
    reseed(1)
    with seeded(7):
        draws()
    assert draws() == expected
    reseed(1)
    with pytest.raises(RuntimeError), seeded(7):
        draws()
        raise RuntimeError
    assert draws() == expected  # restored on the way out of an error too
