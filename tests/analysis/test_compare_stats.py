"""The paired statistics of :func:`fmlib.analysis.compare.paired_differences` against scipy and
hand cases: the t interval and the exact sign-flip (permutation) p-value beside it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fmlib.analysis.compare import paired_differences, t_quantile
from fmlib.analysis.stats import sign_flip_p as sign_flip_p_value


@pytest.mark.parametrize("p, df", [(0.975, 1), (0.975, 4), (0.995, 9), (0.025, 3), (0.9, 30)])
def test_t_quantile_is_scipys(p, df):
    assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-12)


@pytest.mark.parametrize(
    "diff, expected",
    [
        ([1, 2, 3, 4, 5], 0.0625),
        ([-1, -2, -3, -4, -5], 0.0625),
        ([1, -1], 1.0),
        ([2, 1], 0.5),
        ([3], 1.0),
    ],
)
def test_sign_flip_p_value_hand_cases(diff, expected):
    assert sign_flip_p_value(np.array(diff, float)) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(4))
def test_sign_flip_p_value_is_scipys_exact_permutation_test(seed):
    diff = np.random.default_rng(seed).normal(0.3, 1.0, size=7)
    want = stats.permutation_test(
        (diff,), np.mean, permutation_type="samples", n_resamples=np.inf, alternative="two-sided"
    ).pvalue
    assert sign_flip_p_value(diff) == pytest.approx(want)


def test_paired_differences_carry_the_t_interval_and_the_p_value():
    rng = np.random.default_rng(0)
    fm, ent = rng.normal(0.8, 0.02, 6), rng.normal(0.78, 0.02, 6)
    per_run = pd.DataFrame(
        [
            {"arm": "a", "label": label, "seed": s, "auc": v}
            for label, values in (("fm", fm), ("entropy", ent))
            for s, v in enumerate(values)
        ]
    )
    row = paired_differences(per_run, "auc", treatment="fm").iloc[0]
    low, high = stats.t.interval(0.95, 5, loc=(fm - ent).mean(), scale=stats.sem(fm - ent))
    assert row["ci_low"] == pytest.approx(low) and row["ci_high"] == pytest.approx(high)
    assert row["p_value"] == pytest.approx(sign_flip_p_value(fm - ent))
    assert row["t_p_value"] == pytest.approx(stats.ttest_rel(fm, ent).pvalue)
