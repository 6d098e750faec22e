"""Figures of an ablation: paired differences (FisherMask minus each baseline) with their
confidence intervals, per arm at one measure or against the label budget in panels."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fmlib.analysis.plots.common import _STRATEGY_HUES, _axes, _title, strategy_palette


def _hue_colours(hue: str, values) -> dict:
    """A colour per ``hue`` value: :func:`strategy_palette` when the values are strategies (the
    baselines), else tab10 in order."""
    if hue in _STRATEGY_HUES:
        return strategy_palette(values)
    return dict(zip(values, sns.color_palette("tab10", len(values))))


def _measure_label(measure: str, metric: str = "accuracy") -> str:
    """What a ``measure`` of :func:`fmlib.analysis.ablation.arm_differences` measures, in words."""
    if measure == "auc":
        return f"AUC (mean {metric} over the label range)"
    if measure == "auc_from_first_query":
        return f"AUC from the first query on (mean {metric}, round 0 left out)"
    if str(measure).isdigit():
        return f"{metric} at {measure} labels"
    return str(measure).replace("_", " ")


def _range_of(low, high, keep) -> tuple[float, float] | None:
    """``(low, high)`` over the rows ``keep`` with finite ends, padded by 5 %; None without any."""
    lo, hi = np.asarray(low, float)[keep], np.asarray(high, float)[keep]
    ok = np.isfinite(lo) & np.isfinite(hi)
    if not ok.any():
        return None
    lo, hi = min(lo[ok].min(), 0.0), max(hi[ok].max(), 0.0)
    pad = 0.05 * (hi - lo or 1.0)
    return lo - pad, hi + pad


def _seed_floor(n, range_seeds) -> float:
    """The fewest seeds a row needs to set a shared axis range: ``range_seeds``, by default the
    median seed count over the rows (a row with fewer, and wider intervals, is cut instead)."""
    if range_seeds is not None:
        if range_seeds < 1:
            raise ValueError(f"range_seeds must be a positive integer or None, got {range_seeds!r}")
        return range_seeds
    n = np.asarray(n, float)
    return float(np.median(n[np.isfinite(n)])) if np.isfinite(n).any() else 0.0


def paired_differences(
    table: pd.DataFrame,
    *,
    measure: str = "auc",
    row: str = "arm",
    hue: str = "baseline",
    ax=None,
    metric: str = "accuracy",
    range_seeds: int | None = None,
) -> Figure:
    """Paired differences with their confidence intervals
    (:func:`fmlib.analysis.compare.paired_differences`): one row per ``row`` (arm), one marker per
    ``hue`` (baseline), a line at zero; right of zero the treatment (FisherMask) is better.
    ``measure`` picks the rows of a table with a ``measure`` column (e.g.
    :func:`fmlib.analysis.ablation.arm_differences`; ``"85"``: ``metric`` at 85 labels), and the
    axis says what it measures. A row paired over fewer seeds than the most has its count in its
    label. The x range is set by the rows paired over at least ``range_seeds`` seeds (default: the
    median count): a wider interval of a row with fewer seeds is cut at the edge, marked with an
    arrow and its end printed, so it does not squeeze the others."""
    if "measure" in table:
        table = table[table["measure"] == measure]
    rows, hues = list(dict.fromkeys(table[row])), list(dict.fromkeys(table[hue]))
    ax = _axes(ax, figsize=(7.0, 0.9 + 0.45 * len(rows) * max(1, len(hues)) ** 0.5))
    colors = _hue_colours(hue, hues)
    offsets = np.linspace(-0.3, 0.3, len(hues)) if len(hues) > 1 else [0.0]
    floor = _seed_floor(table["n"], range_seeds) if len(table) else 0.0
    xlim = _range_of(table["ci_low"], table["ci_high"], (table["n"] >= floor).to_numpy())
    for offset, name in zip(offsets, hues):
        part = table[table[hue] == name].set_index(row).reindex(rows)
        y = np.arange(len(rows)) + offset
        low, high = part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float)
        if xlim is not None:
            low, high, _ = _mark_cut(ax, y, low, high, xlim, colors[name], horizontal=True)
        diff = part["diff"].to_numpy(float)
        err = np.vstack([diff - low, high - diff])
        ax.errorbar(
            diff,
            y,
            xerr=np.nan_to_num(np.clip(err, 0, None)),
            fmt="o",
            ms=4,
            capsize=2,
            color=colors[name],
            label=f"{name}",
        )
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.axvline(0, color="black", lw=0.8)
    n = table["n"].max() if len(table) else 0
    fewest = table.groupby(row, sort=False)["n"].min()  # a row with fewer seeds says so
    ax.set_yticks(
        np.arange(len(rows)), [r if fewest[r] == n else f"{r} ({fewest[r]} seeds)" for r in rows]
    )
    ax.invert_yaxis()
    ax.set_xlabel(
        f"FisherMask − baseline, {_measure_label(measure, metric)}\n"
        f"mean of paired differences over ≤{n} seeds, 95 % t interval"
    )
    _title(ax, f"FisherMask minus each baseline: {_measure_label(measure, metric)}")
    ax.legend(title=hue, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return ax.figure


def _mark_cut(ax, at, low, high, limits, colour, *, horizontal: bool, values: bool = True):
    """Interval ends beyond ``limits`` moved to the edge, each marked by an arrow head (and its
    value printed beside it with ``values``); returns the cut ``(low, high)`` and how many ends
    were cut."""
    lo, hi = limits
    cut_low, cut_high = np.where(low < lo, lo, low), np.where(high > hi, hi, high)
    for pos, end, edge, marker, side in [
        *[(p, e, lo, "<" if horizontal else "v", "low") for p, e in zip(at, low) if e < lo],
        *[(p, e, hi, ">" if horizontal else "^", "high") for p, e in zip(at, high) if e > hi],
    ]:
        xy = (edge, pos) if horizontal else (pos, edge)
        ax.plot(*xy, marker=marker, color=colour, ms=6, clip_on=False, zorder=4)
        if not values:
            continue
        inward = -8 if side == "high" else 8  # just inside the edge, on a white patch
        offset = (inward, 0) if horizontal else (0, inward)
        ax.annotate(
            f"{end:+.2f}",
            xy,
            xytext=offset,
            textcoords="offset points",
            fontsize=7,
            color=colour,
            ha=("right" if side == "high" else "left") if horizontal else "center",
            va="center",
            annotation_clip=False,
            zorder=5,
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"},
        )
    return cut_low, cut_high, int((low < lo).sum() + (high > hi).sum())


def paired_differences_by_budget(
    table: pd.DataFrame,
    *,
    row: str = "arm",
    hue: str = "baseline",
    metric: str = "accuracy",
    ncols: int = 2,
    range_seeds: int | None = None,
) -> Figure:
    """Paired difference (FisherMask − each baseline) against the label budget, one panel per
    ``row`` (arm), one line per ``hue`` (baseline) with its 95 % t interval as a band, a line at
    zero; above zero FisherMask is better. ``table``:
    :func:`fmlib.analysis.ablation.arm_differences` with ``budgets`` (the rows whose ``measure``
    is a number of labels are drawn). Every panel shares one y range, set by the arms paired over
    at least ``range_seeds`` seeds (default: the median count); a band of an arm with fewer seeds
    is cut there, its ends marked and printed."""
    if ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    if "measure" not in table:
        raise ValueError("table needs a 'measure' column (fmlib.analysis.ablation.arm_differences)")
    table = table[table["measure"].astype(str).str.isdigit()].assign(
        budget=lambda t: t["measure"].astype(int)
    )
    if table.empty:
        raise ValueError("table holds no per-budget rows: pass budgets= to arm_differences")
    rows, hues = list(dict.fromkeys(table[row])), list(dict.fromkeys(table[hue]))
    colors = _hue_colours(hue, hues)
    seeds = table.groupby(row, sort=False)["n"].min()
    floor = _seed_floor(seeds, range_seeds)
    ylim = _range_of(table["ci_low"], table["ci_high"], table[row].map(seeds).ge(floor).to_numpy())
    ncols = min(ncols, len(rows))
    nrows = -(-len(rows) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.0 * ncols, 3.3 * nrows), layout="constrained", squeeze=False
    )
    budgets = sorted(table["budget"].unique())
    most = int(table["n"].max())
    for i, (ax, name) in enumerate(zip(axes.flat, rows)):
        part, cut = table[table[row] == name], 0
        for base in hues:
            line = part[part[hue] == base].sort_values("budget")
            x = line["budget"].to_numpy(float)
            low, high = line["ci_low"].to_numpy(float), line["ci_high"].to_numpy(float)
            if ylim is not None:
                low, high, ends = _mark_cut(
                    ax, x, low, high, ylim, colors[base], horizontal=False, values=False
                )
                cut += ends
            ax.fill_between(x, low, high, color=colors[base], alpha=0.15, lw=0)
            ax.plot(x, line["diff"], marker="o", ms=3.5, color=colors[base], label=base)
        ax.axhline(0, color="black", lw=0.8)
        if ylim is not None:
            ax.set_ylim(*ylim)
        n = int(seeds[name])
        ax.set_title(f"{name} ({n} seeds)" + (", bands cut at ▲▼" if cut else ""), fontsize=10)
        if len(budgets) <= 10:
            ax.set_xticks(budgets)
        else:  # one tick per budget would overlap: whole numbers, as many as fit
            ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3)
        if i + ncols >= len(rows):  # nothing below it
            ax.set_xlabel("labels")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"FisherMask − baseline\n({metric})")
    for ax in list(axes.flat)[len(rows) :]:
        ax.remove()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, title=hue, loc="outside lower center", ncol=len(hues), fontsize="small"
    )
    title = (
        f"FisherMask minus each baseline in {metric} at each budget, paired by seed "
        f"(mean, 95 % t interval over ≤{most} seeds)"
    )
    fig.suptitle(textwrap.fill(title, width=int(13 * fig.get_figwidth())), fontsize=11)
    return fig
