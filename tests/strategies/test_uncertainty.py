"""Uncertainty strategies against hand-built probabilities and a brute-force MC-dropout BALD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmlib.strategies import (
    get_strategy,
)
from tests.strategies.nets import LookupModel, TinyNet, make_pool

UNIFORM = [0.25, 0.25, 0.25, 0.25]  # most uncertain by every measure, but labeled


TIE = [0.5, 0.5, 0.0, 0.0]  # smallest margin (0)


SPREAD = [0.4, 0.2, 0.2, 0.2]  # highest entropy (1.33) among the unlabeled


FLAT_TOP = [0.36, 0.34, 0.30, 0.0]  # lowest top probability (0.36); margin 0.02, entropy 1.10


SURE = [0.97, 0.01, 0.01, 0.01]


TABLE = [UNIFORM, SURE, TIE, SPREAD, SURE, FLAT_TOP]


@pytest.mark.parametrize(
    "name, expected",
    [("entropy", [3, 5]), ("margin", [2, 5]), ("least_confidence", [5, 3])],
    ids=["entropy", "margin", "least_confidence"],
)
def test_uncertainty_picks_on_hand_built_probabilities(name, expected):
    model, pool = LookupModel(TABLE), make_pool(len(TABLE))
    picks = get_strategy(name).select(model, pool, [0], np.arange(1, 6), 2)
    assert picks.tolist() == expected


def test_bald_matches_brute_force_mc_dropout(float64):
    pool, model = make_pool(12), TinyNet().eval()
    p, samples, seed = 0.3, 7, 5
    strategy = get_strategy("bald", p=p, samples=samples)
    indices = np.arange(2, 12)
    scores = strategy.scores(model, pool, indices, seed=seed, device=torch.device("cpu"))

    with torch.no_grad():
        h = model.embed(pool.inputs(indices).double())  # [N, d]
    keep = torch.rand((samples, *h.shape), generator=torch.Generator().manual_seed(seed)) >= p
    expected = []
    for n in range(len(indices)):
        runs = []
        for t in range(samples):
            with torch.no_grad():
                runs.append(torch.softmax(model.head(h[n] * keep[t, n] / (1 - p)), -1).numpy())
        runs = np.array(runs)  # [T, C]
        mean = runs.mean(0)
        expected.append(-(mean * np.log(mean)).sum() + (runs * np.log(runs)).sum(1).mean())
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-10, atol=1e-12)

    picks = strategy.select(model, pool, [0, 1], indices, 3, seed=seed)
    assert picks.tolist() == indices[np.argsort(expected)[::-1][:3]].tolist()
