"""Numbers that compare AL runs: area under the learning curve, labels needed to reach an
accuracy, accuracy at a label budget, each per run and then mean ± std over seeds.

Every function takes the tidy per-round table of :func:`fmlib.records.load_runs` (one row per
run and round, config fields as columns) and identifies a run by its ``path`` (its ``run`` name
when the runs were never written to disk).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fmlib.analysis.stats import holm, seeds_for_power, sign_flip_p, tost, verdict
from fmlib.records.formats import QUERY_TIME_COLUMNS
from fmlib.records.tables import curve_area

# what a comparison row stands for; seeds are averaged over
GROUP = (
    "dataset",
    "setting",
    "strategy",
)


def with_setting(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``setting``: ``"balanced"`` for ``imbalance == "none"``, else ``"imbalanced"``.

    Where runs of one dataset and setting follow different label schedules (e.g. the paper's
    imbalanced 250 -> 5750 by 250 and 15 -> 575 by 70), each schedule becomes its own setting,
    ``"imbalanced 15-575 by 70"``, so their runs are never averaged together.
    """
    out = frame.copy()
    out["setting"] = np.where(out["imbalance"].fillna("none") == "none", "balanced", "imbalanced")
    if not {"initial_size", "query_size", "n_labeled"} <= set(out.columns):
        return out
    key = "path" if "path" in out and out["path"].notna().all() else "run"
    final = out.groupby(key)["n_labeled"].transform("max")
    schedule = (
        out["initial_size"].astype(int).astype(str)
        + "-"
        + final.astype(int).astype(str)
        + " by "
        + out["query_size"].astype(int).astype(str)
    )
    by = [c for c in ("dataset", "setting") if c in out]
    mixed = schedule.groupby([out[c] for c in by]).transform("nunique") > 1
    out.loc[mixed, "setting"] = out.loc[mixed, "setting"] + " " + schedule[mixed]
    return out


def _run_key(frame: pd.DataFrame) -> str:
    return "path" if "path" in frame and frame["path"].notna().all() else "run"


def _per_run(frame: pd.DataFrame, value, name: str, by: Sequence[str]) -> pd.DataFrame:
    """One row per run: the ``by`` columns present, ``seed`` and ``value(run_rows)`` as ``name``."""
    key = _run_key(frame)
    keep = [c for c in dict.fromkeys([*by, "seed"]) if c in frame and c != key]
    rows = []
    for run, rounds in frame.groupby(key, sort=True):
        rounds = rounds.sort_values("n_labeled")
        rows.append({key: run, **rounds.iloc[0][keep].to_dict(), name: value(rounds)})
    return pd.DataFrame(rows, columns=[key, *keep, name])


def area_under_curve(
    frame: pd.DataFrame,
    *,
    metric: str = "accuracy",
    upto: int | None = None,
    by: Sequence[str] = GROUP,
) -> pd.DataFrame:
    """Normalised area under each run's learning curve (``metric`` against ``n_labeled``).

    The trapezoid area divided by the label range, i.e. the mean ``metric`` over the budget
    (a run with one round gives that round's value). ``upto`` keeps the rounds with at most that
    many labels, so runs with different budgets can be compared on a common range.

    Returns:
        One row per run: its ``by`` columns, ``seed`` and ``auc``.
    """

    def auc(rounds: pd.DataFrame) -> float:
        if upto is not None:
            rounds = rounds[rounds["n_labeled"] <= upto]
        return curve_area(rounds["n_labeled"], rounds[metric])

    return _per_run(frame, auc, "auc", by)


def labels_to_reach(
    frame: pd.DataFrame, target: float, *, metric: str = "accuracy", by: Sequence[str] = GROUP
) -> pd.DataFrame:
    """Labels each run needed before ``metric`` first reached ``target`` (NaN: never reached).

    Returns:
        One row per run: its ``by`` columns, ``seed`` and ``labels``.
    """

    def first(rounds: pd.DataFrame) -> float:
        reached = rounds.loc[rounds[metric] >= target, "n_labeled"]
        return float(reached.iloc[0]) if len(reached) else float("nan")

    return _per_run(frame, first, "labels", by)


def at_budget(
    frame: pd.DataFrame,
    budget: int | None = None,
    *,
    metric: str = "accuracy",
    by: Sequence[str] = GROUP,
) -> pd.DataFrame:
    """``metric`` of each run's last round with at most ``budget`` labels (``None``: its last
    round).

    Returns:
        One row per run: its ``by`` columns, ``seed``, ``n_labeled`` of that round and ``metric``
        (NaN when the run never had that few labels, or stopped before reaching ``budget``).
    """

    def last(rounds: pd.DataFrame) -> tuple[float, float]:
        if budget is not None:
            if rounds["n_labeled"].max() < budget:  # unfinished or smaller budget: no value "at" it
                return float("nan"), float("nan")
            rounds = rounds[rounds["n_labeled"] <= budget]
        if rounds.empty:
            return float("nan"), float("nan")
        return float(rounds["n_labeled"].iloc[-1]), float(rounds[metric].iloc[-1])

    out = _per_run(frame, last, "_pair", by)
    out["n_labeled"] = [p[0] for p in out["_pair"]]
    out[metric] = [p[1] for p in out["_pair"]]
    return out.drop(columns="_pair")


def mean_std(
    per_run: pd.DataFrame, value: str, *, by: Sequence[str] = GROUP, digits: int = 3
) -> pd.DataFrame:
    """Mean, sample std (ddof 1; NaN for one run) and count of ``value`` over runs (seeds) per
    group.

    NaN values (e.g. a target never reached) are left out of mean and std; ``n`` counts all runs,
    ``n_valid`` those with a value. ``text`` is ``"mean ± std"`` rounded to ``digits``.
    """
    by = [c for c in by if c in per_run]
    grouped = (
        per_run.groupby(by, sort=True, dropna=False)[value]
        if by
        else per_run.assign(_all=0).groupby("_all")[value]
    )
    out = grouped.agg(mean="mean", std="std", n="size", n_valid="count").reset_index()
    if not by:
        out = out.drop(columns="_all")
    out["text"] = [_pm(m, s, digits) for m, s in zip(out["mean"], out["std"])]
    return out


def _pm(mean: float, std: float, digits: int) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def comparison_table(
    frame: pd.DataFrame,
    *,
    target: float | None = None,
    budget: int | None = None,
    metric: str = "accuracy",
    by: Sequence[str] = GROUP,
) -> pd.DataFrame:
    """One row per group (default: dataset × setting × strategy), seeds averaged.

    Columns: ``runs``; ``auc`` (normalised area under the curve, mean ± std); ``at_budget``
    (``metric`` at ``budget`` labels, default each run's last round); with a ``target``,
    ``labels_to_reach`` (mean ± std over the runs that reached it) and ``reached`` (``k/n`` runs).
    """
    if "setting" in by and "setting" not in frame:
        frame = with_setting(frame)
    by = [c for c in by if c in frame]
    auc = mean_std(area_under_curve(frame, metric=metric, by=by), "auc", by=by)
    final = mean_std(at_budget(frame, budget, metric=metric, by=by), metric, by=by)
    table = auc[by].copy()
    table["runs"] = auc["n"].to_numpy()
    table["auc"] = auc["text"].to_numpy()
    table[f"{metric}_at_{budget if budget is not None else 'end'}"] = final["text"].to_numpy()
    if target is not None:
        reach = mean_std(
            labels_to_reach(frame, target, metric=metric, by=by), "labels", by=by, digits=0
        )
        table[f"labels_to_{target:g}"] = reach["text"].to_numpy()
        table["reached"] = [f"{v}/{n}" for v, n in zip(reach["n_valid"], reach["n"])]
    return table


def budget_table(
    frame: pd.DataFrame,
    budgets: Sequence[int],
    *,
    metric: str = "accuracy",
    by: Sequence[str] = GROUP,
    digits: int = 3,
) -> pd.DataFrame:
    """``metric`` at fixed label budgets, mean ± std over seeds: one row per group, one column per
    budget. A run counts at a budget it reached (its last round with at most that many labels);
    ``–`` where no run of the group reached it, or none had so few labels."""
    if "setting" in by and "setting" not in frame:
        frame = with_setting(frame)
    by = [c for c in by if c in frame]
    table = None
    for budget in budgets:
        per_run = at_budget(frame, budget, metric=metric, by=by)
        stats = mean_std(per_run, metric, by=by, digits=digits)
        if table is None:
            table = stats[by].copy()
        table[str(budget)] = stats["text"].to_numpy()
    return table if table is not None else pd.DataFrame(columns=by)


def cost_table(
    frame: pd.DataFrame,
    *,
    phases: Sequence[str] = QUERY_TIME_COLUMNS,
    by: Sequence[str] = GROUP,
    digits: int = 2,
) -> pd.DataFrame:
    """Seconds per round of each phase, mean ± std over runs of each run's mean over its rounds.

    ``phases``: ``rounds.csv`` time columns (default: the query's,
    :data:`fmlib.records.formats.QUERY_TIME_COLUMNS`).

    Rounds without a value are left out (the last round selects nothing; strategies without
    embeddings have no ``embed_time``), so a phase no run timed reads ``–``.
    """
    if "setting" in by and "setting" not in frame:
        frame = with_setting(frame)
    by = [c for c in by if c in frame]
    table = None
    for phase in phases:
        per_run = _per_run(frame, lambda rounds, p=phase: float(rounds[p].mean()), phase, by)
        stats = mean_std(per_run, phase, by=by, digits=digits)
        if table is None:
            table = stats[by].copy()
            table["runs"] = stats["n"].to_numpy()
        table[f"{phase} [s]"] = stats["text"].to_numpy()
    return table


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """``frame`` as a GitHub markdown table (no index; floats to ``digits``, NaN as ``–``)."""

    def cell(value) -> str:
        if isinstance(value, float):
            return "–" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


def markdown_report(tables: dict[str, pd.DataFrame], *, intro: str = "", digits: int = 3) -> str:
    """Markdown with an optional intro paragraph and one ``### title`` section per table."""
    parts = [intro.strip() + "\n"] if intro.strip() else []
    parts += [f"### {title}\n\n{markdown_table(table, digits)}" for title, table in tables.items()]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- paired by seed


def t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``)."""
    from scipy import stats

    if not 0 < p < 1 or df < 1:
        raise ValueError(f"need 0 < p < 1 and df >= 1, got p={p}, df={df}")
    return float(stats.t.ppf(p, df))


def paired_differences(
    per_run: pd.DataFrame,
    value: str,
    *,
    treatment: str,
    baselines: Sequence[str] | None = None,
    group: Sequence[str] = ("arm",),
    label: str = "label",
    pair: str = "seed",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Treatment minus each baseline, paired by ``pair`` (seed), within each ``group`` (arm).

    Args:
        per_run: one row per run: the ``group`` columns, ``label`` (which strategy variant),
            ``pair`` and ``value`` (e.g. :func:`area_under_curve`'s ``auc``).
        treatment: the ``label`` of the method tested (e.g. ``"fm"``).
        baselines: labels to compare with (default: every other label of the group).
        confidence: of the two-sided t interval of the mean difference.

    Returns:
        One row per group and baseline: ``n`` pairs (seeds where both have a value),
        ``treatment_mean``, ``baseline_mean``, ``diff`` (mean paired difference), ``ci_low`` and
        ``ci_high`` (NaN with fewer than 2 pairs), ``p_value`` (exact paired sign-flip test,
        :func:`fmlib.analysis.stats.sign_flip_p`), ``t_p_value`` (paired t test), ``wins`` /
        ``losses`` (pairs where the treatment is higher / lower) and ``excludes_zero``.
    """
    group = [c for c in group if c in per_run]
    rows = []
    for key, part in per_run.groupby(group, sort=False) if group else [((), per_run)]:
        key = key if isinstance(key, tuple) else (key,)
        values = part.pivot_table(index=pair, columns=label, values=value, aggfunc="first")
        if treatment not in values:
            continue
        others = [b for b in (baselines or values.columns) if b != treatment and b in values]
        for base in others:
            both = values[[treatment, base]].dropna()
            diff = (both[treatment] - both[base]).to_numpy(float)
            n = len(diff)
            mean = float(diff.mean()) if n else float("nan")
            half = t_p = float("nan")
            if n >= 2:
                se = float(diff.std(ddof=1)) / math.sqrt(n)
                half = t_quantile(0.5 + confidence / 2, n - 1) * se
                t_p = _t_p_value(mean, se, n - 1)
            rows.append(
                {
                    **dict(zip(group, key)),
                    "baseline": base,
                    "n": n,
                    "treatment_mean": float(both[treatment].mean()) if n else float("nan"),
                    "baseline_mean": float(both[base].mean()) if n else float("nan"),
                    "diff": mean,
                    "ci_low": mean - half,
                    "ci_high": mean + half,
                    "p_value": sign_flip_p(diff),
                    "t_p_value": t_p,
                    "wins": int((diff > 0).sum()),
                    "losses": int((diff < 0).sum()),
                    "excludes_zero": bool(n >= 2 and (mean - half > 0 or mean + half < 0)),
                }
            )
    columns = [
        *group,
        "baseline",
        "n",
        "treatment_mean",
        "baseline_mean",
        "diff",
        "ci_low",
        "ci_high",
        "p_value",
        "t_p_value",
        "wins",
        "losses",
        "excludes_zero",
    ]
    return pd.DataFrame(rows, columns=columns)


def _t_p_value(mean: float, se: float, df: int) -> float:
    """Two-sided p of the paired t statistic (``scipy.stats.ttest_rel``'s); 1 when all differences
    are 0."""
    from scipy import stats

    if se == 0:
        return 1.0 if mean == 0 else 0.0
    return float(2 * stats.t.sf(abs(mean / se), df))


def judged_differences(
    per_run: pd.DataFrame,
    value: str,
    *,
    treatment: str,
    margin: float,
    alpha: float = 0.05,
    power: float = 0.8,
    gap: float | None = None,
    **options,
) -> pd.DataFrame:
    """:func:`paired_differences` (``options`` are its keywords) with the verdict of each row, the
    whole table one family (Holm).

    Args:
        margin: equivalence margin of :func:`fmlib.analysis.stats.tost`, in ``value``'s units
            (e.g. 0.02 AUC).
        gap: the gap ``seeds_needed`` is computed for (default ``margin``).

    Returns:
        ``paired_differences``' table plus ``p_holm`` (``t_p_value`` adjusted), ``p_tost`` and
        ``p_tost_holm``, ``verdict`` (:func:`fmlib.analysis.stats.verdict` of the two adjusted
        p-values) and ``seeds_needed`` (pairs for ``power`` against ``gap`` at the row's spread;
        NaN with fewer than 2 pairs or no spread).
    """
    table = paired_differences(per_run, value, treatment=treatment, **options)
    group = [c for c in options.get("group", ("arm",)) if c in per_run]
    label, pair = options.get("label", "label"), options.get("pair", "seed")
    p_tost, needed = [], []
    for _, row in table.iterrows():
        part = per_run
        for column in group:
            part = part[part[column] == row[column]]
        values = part.pivot_table(index=pair, columns=label, values=value, aggfunc="first")
        both = values[[treatment, row["baseline"]]].dropna()
        d = (both[treatment] - both[row["baseline"]]).to_numpy(float)
        spread = float(d.std(ddof=1)) if len(d) >= 2 else float("nan")
        ok = len(d) >= 2 and spread > 0
        p_tost.append(tost(d, margin) if ok else float("nan"))
        needed.append(
            seeds_for_power(gap or margin, spread, alpha=alpha, power=power) if ok else float("nan")
        )
    table["p_holm"] = holm(table["t_p_value"].where(table["n"] >= 2))
    table["p_tost"] = p_tost
    table["p_tost_holm"] = holm(p_tost)
    table["verdict"] = [
        "undecided" if np.isnan(h) else verdict(h, e, diff, alpha=alpha)
        for h, e, diff in zip(table["p_holm"], table["p_tost_holm"], table["diff"])
    ]
    table["seeds_needed"] = needed
    return table


def strategy_differences(
    frame: pd.DataFrame,
    *,
    treatment: str,
    margin: float = 0.02,
    budgets: Sequence[int] = (),
    metric: str = "accuracy",
    baselines: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``treatment`` minus every other strategy, paired by seed, within each dataset and setting:
    :func:`judged_differences` for each measure, one Holm family per measure and setting.

    The measures: ``auc_from_first_query`` (the primary one: the AUC over the rounds after round
    0, whose labels and model every strategy shares), ``auc`` (the whole curve), then ``metric``
    at each of ``budgets``.

    Returns:
        One row per setting, measure and baseline: ``dataset``, ``setting``, ``measure``, then
        :func:`judged_differences`' columns.
    """
    if "setting" not in frame:
        frame = with_setting(frame)
    by = ("dataset", "setting", "strategy")
    measures = [
        (
            "auc_from_first_query",
            area_under_curve(frame[frame["round"] >= 1], metric=metric, by=by),
            "auc",
        ),
        ("auc", area_under_curve(frame, metric=metric, by=by), "auc"),
        *((str(b), at_budget(frame, b, metric=metric, by=by), metric) for b in budgets),
    ]
    tables = []
    for measure, per_run, value in measures:
        for (dataset, setting), part in per_run.groupby(["dataset", "setting"], sort=True):
            labeled = part.assign(label=part["strategy"])
            table = judged_differences(
                labeled, value, margin=margin, treatment=treatment, baselines=baselines, group=()
            )
            tables.append(table.assign(dataset=dataset, setting=setting, measure=measure))
    if not tables:
        return pd.DataFrame(columns=["dataset", "setting", "measure"])
    out = pd.concat(tables, ignore_index=True)
    return out[["dataset", "setting", "measure", *out.columns[:-3]]]
