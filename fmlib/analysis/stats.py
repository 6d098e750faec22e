"""Verdicts from differences paired by seed: exact tests, multiplicity, equivalence, power.

A study compares a treatment with baselines on the same seeds: d_s = treatment_s − baseline_s,
s = 1..n. With n = 3–10 seeds the usual large-sample habits mislead, so each verdict here says
what n can carry:

* :func:`sign_flip_p` — the exact two-sided permutation p-value of mean(d) under "d is symmetric
  about 0": all 2ⁿ sign patterns. It cannot go below 2/2ⁿ (0.0625 with 5 seeds, 0.25 with 3).
* :func:`holm` — Holm's step-down adjustment of a table's p-values (family-wise error ≤ α).
* :func:`tost` — two one-sided t tests for equivalence: "level with" within ±margin needs
  p < α for both mean(d) > −margin and mean(d) < +margin.
* :func:`seeds_for_power` — the seeds a paired t test needs to detect a gap with the given power,
  from the spread the seeds showed (noncentral t, exact).
* :func:`verdict` — one word per comparison from the adjusted p and the equivalence p.

:func:`fmlib.analysis.compare.judged_differences` puts all of them beside a table of paired
differences.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

EXACT_LIMIT = 20  # 2**20 sign patterns; above, a seeded Monte-Carlo sample of them


def sign_flip_p(diffs: Sequence[float], *, resamples: int = 100_000, seed: int = 0) -> float:
    """Two-sided p-value of mean(d) = 0 by flipping the signs of the paired differences.

    Exact (all 2ⁿ patterns) up to ``EXACT_LIMIT`` pairs, else ``resamples`` seeded random
    patterns. NaN with no pairs.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)]
    n = len(d)
    if n == 0:
        return float("nan")
    observed = abs(d.mean())
    if n <= EXACT_LIMIT:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))  # [2ⁿ, n]
    else:
        rng = np.random.default_rng(seed)
        signs = rng.choice((1.0, -1.0), size=(resamples, n))
    means = np.abs(signs @ d) / n
    # ties count as extreme; a tolerance keeps float rounding from splitting equal means
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN, not counted)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def tost(diffs: Sequence[float], margin: float) -> float:
    """Equivalence p-value of the mean paired difference within ±``margin`` (two one-sided t
    tests; the larger of the two p-values). NaN with fewer than 2 pairs."""
    if not margin > 0:
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)]
    if len(d) < 2:
        return float("nan")
    lower = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, margin, alternative="less").pvalue
    return float(max(lower, upper))


def paired_t_power(n: int, effect: float, sd: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t test with ``n`` pairs to detect a mean gap ``effect``
    when the differences have standard deviation ``sd``."""
    if n < 2:
        return float("nan")
    df = n - 1
    nc = abs(effect) / sd * math.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_for_power(
    effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8, most: int = 1000
) -> int:
    """Fewest pairs (seeds) for which the paired t test reaches ``power`` against ``effect``
    (``most`` + 1 when even ``most`` pairs do not)."""
    if not sd > 0 or not effect:
        raise ValueError(f"need sd > 0 and a nonzero effect, got sd={sd!r}, effect={effect!r}")
    for n in range(2, most + 1):
        if paired_t_power(n, effect, sd, alpha=alpha) >= power:
            return n
    return most + 1


def verdict(p_adjusted: float, p_equivalent: float, diff: float, *, alpha: float = 0.05) -> str:
    """``"ahead"`` / ``"behind"`` (adjusted p < α, by the sign of ``diff``), ``"level"``
    (equivalent within the margin, TOST p < α), else ``"undecided"``."""
    if p_adjusted < alpha:
        return "ahead" if diff > 0 else "behind"
    if p_equivalent < alpha:
        return "level"
    return "undecided"
