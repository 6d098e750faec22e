"""Exact tests, Holm, TOST and power for differences paired by seed, against scipy and hand
cases."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fmlib.analysis.compare import judged_differences
from fmlib.analysis.stats import (
    holm,
    paired_t_power,
    seeds_for_power,
    sign_flip_p,
    tost,
    verdict,
)


def sign_flip_brute(d):
    """Every sign pattern, one at a time."""
    d = np.asarray(d, float)
    observed = abs(d.mean())
    hits = [
        abs(np.mean(np.array(s) * d)) >= observed - 1e-12
        for s in itertools.product((1, -1), repeat=len(d))
    ]
    return sum(hits) / len(hits)


@pytest.mark.parametrize(
    "d, expected",
    [
        (
            [0.1, 0.2, 0.3, 0.4, 0.5],
            2 / 32,
        ),  # all positive: only the two all-same patterns are as extreme
        ([0.1, 0.2, 0.3], 0.25),  # three seeds can never go below 0.25
        ([0.2, -0.2], 1.0),
    ],
    ids=["five-all-positive", "three-all-positive", "cancelling"],
)
def test_sign_flip_p_hand_cases(d, expected):
    assert sign_flip_p(d) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(4))
def test_sign_flip_p_matches_brute_force_and_scipy(seed):
    rng = np.random.default_rng(seed)
    d = rng.normal(0.02, 0.03, size=7)
    assert sign_flip_p(d) == pytest.approx(sign_flip_brute(d))
    scipy_p = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=np.inf, alternative="two-sided"
    ).pvalue
    assert sign_flip_p(d) == pytest.approx(scipy_p)


def test_holm_hand_case_and_order():
    # sorted 0.01, 0.02, 0.04 -> 3*0.01, max(0.03, 2*0.02), max(0.04, 1*0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone
    out = holm([np.nan, 0.01])
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.01)  # NaN is not a test


def test_tost_against_two_scipy_one_sided_tests():
    d = np.array([0.004, -0.003, 0.006, 0.001, -0.002, 0.003])
    lower = stats.ttest_1samp(d, -0.02, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, 0.02, alternative="less").pvalue
    assert tost(d, 0.02) == pytest.approx(max(lower, upper))
    assert tost(d, 0.02) < 0.05 < tost(d, 0.002)  # equivalent within ±0.02, not within ±0.002
    with pytest.raises(ValueError, match="margin"):
        tost(d, 0)


def test_power_matches_the_textbook_value_and_seeds_grow_as_the_gap_shrinks():
    assert paired_t_power(10, 1.0, 1.0) == pytest.approx(0.8031, abs=5e-4)  # d = 1, n = 10
    assert seeds_for_power(1.0, 1.0) == 10
    assert seeds_for_power(0.5, 1.0) > seeds_for_power(1.0, 1.0)


def test_verdict_words():
    assert verdict(0.01, 0.5, +0.03) == "ahead" and verdict(0.01, 0.5, -0.03) == "behind"
    assert verdict(0.4, 0.01, 0.001) == "level" and verdict(0.4, 0.3, 0.001) == "undecided"


def test_judged_differences_add_every_test_and_adjust_over_the_table():
    rows = []
    for seed in range(5):
        rows += [
            {"arm": "a", "label": "fm", "seed": seed, "auc": 0.80 + 0.01 * seed},
            {
                "arm": "a",
                "label": "entropy",
                "seed": seed,
                "auc": 0.70 + 0.01 * seed + 0.001 * (-1) ** seed,
            },
            {
                "arm": "a",
                "label": "margin",
                "seed": seed,
                "auc": 0.80 + 0.01 * seed + 0.002 * (-1) ** seed,
            },
        ]
    table = judged_differences(pd.DataFrame(rows), "auc", treatment="fm", margin=0.02)
    by = table.set_index("baseline")
    assert by.loc["entropy", "verdict"] == "ahead" and by.loc["margin", "verdict"] == "level"
    assert by.loc["entropy", "p_value"] == pytest.approx(2 / 32)
    assert list(table["p_holm"]) == pytest.approx(list(holm(table["t_p_value"])))
    assert list(table["p_tost_holm"]) == pytest.approx(list(holm(table["p_tost"])))
