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


def seeds_for_power(effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8,
                    most: int = 1000) -> int:  # fmt: skip
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



def judge(per_run, value: str, *, treatment: str, margin: float, baselines: Sequence[str] | None = None,
          group: Sequence[str] = ("arm",), label: str = "label", pair: str = "seed",
          alpha: float = 0.05, power: float = 0.8, gap: float | None = None):  # fmt: skip
    """:func:`~fmlib.analysis.compare.paired_differences` with every test beside each row, Holm
    over the whole table (one table = one family).

    Args:
        per_run: one row per run, as for ``paired_differences``.
        margin: equivalence margin of :func:`tost`, in ``value``'s units (e.g. 0.02 AUC).
        gap: the gap ``seeds_needed`` is computed for (default ``margin``).

    Returns:
        ``paired_differences``' table plus ``p_t`` (paired t), ``p_sign`` (exact sign flip),
        ``p_holm`` (``p_t`` adjusted), ``p_tost`` and ``p_tost_holm`` (adjusted over the table
        too), ``verdict`` (:func:`verdict` of the two adjusted p-values) and ``seeds_needed``
        (pairs for ``power`` against ``gap`` at the row's spread).
    """
    from fmlib.analysis.compare import paired_differences

    table = paired_differences(per_run, value, treatment=treatment, baselines=baselines, group=group,
                               label=label, pair=pair)  # fmt: skip
    group = [c for c in group if c in per_run]
    p_t, p_sign, p_tost, needed = [], [], [], []
    for _, row in table.iterrows():
        part = per_run
        for column in group:
            part = part[part[column] == row[column]]
        values = part.pivot_table(index=pair, columns=label, values=value, aggfunc="first")
        both = values[[treatment, row["baseline"]]].dropna()
        d = (both[treatment] - both[row["baseline"]]).to_numpy(float)
        spread = float(d.std(ddof=1)) if len(d) >= 2 else float("nan")
        ok = len(d) >= 2 and spread > 0
        p_t.append(float(stats.ttest_1samp(d, 0.0).pvalue) if ok else float("nan"))
        p_sign.append(sign_flip_p(d))
        p_tost.append(tost(d, margin) if ok else float("nan"))
        needed.append(seeds_for_power(gap or margin, spread, alpha=alpha, power=power) if ok else float("nan"))
    table["p_t"], table["p_sign"], table["p_tost"] = p_t, p_sign, p_tost
    table["p_holm"], table["p_tost_holm"] = holm(p_t), holm(p_tost)
    table["verdict"] = [
        "undecided" if np.isnan(h) else verdict(h, e, diff, alpha=alpha)
        for h, e, diff in zip(table["p_holm"], table["p_tost_holm"], table["diff"])
    ]
    table["seeds_needed"] = needed
    return table
