"""Figures of runs: learning curves (one axes or a grid of panels), per-class accuracy, the class
make-up of the labeled set and of each query, and seconds per round by phase."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fmlib.analysis.plots.common import (
    _STRATEGY_HUES,
    _axes,
    _class_colours,
    _hue,
    _integer_x,
    _labels_palette,
    _round_labels,
    _title,
    strategy_palette,
)
from fmlib.records.formats import class_columns, column_class


def _ticks_at_values(ax, values, most: int = 10) -> None:
    """x ticks at the label counts (or rounds) the runs have, when there are at most ``most``."""
    values = sorted({int(v) for v in pd.Series(values).dropna()})
    if 1 < len(values) <= most:
        ax.set_xticks(values)


def _runs_per_hue(frame: pd.DataFrame, hue) -> dict:
    if hue is None or "run" not in frame.columns:
        return {}
    return frame.groupby(hue)["run"].nunique().to_dict()


def _label_counts(ax, counts: dict) -> None:
    """Append ``(n=runs)`` to the legend entries."""
    legend = ax.get_legend()
    if legend is None or not counts:
        return
    for text in legend.get_texts():
        key = text.get_text()
        match = next((k for k in counts if str(k) == key), None)
        if match is not None:
            text.set_text(f"{key} (n={counts[match]})")


def _class_name(column: str, classes) -> str:
    c = column_class(column)
    return classes[c] if classes is not None else str(c)


def learning_curves(
    runs: pd.DataFrame,
    *,
    x="n_labeled",
    y="accuracy",
    hue="strategy",
    errorbar=("ci", 95),
    hue_order=None,
    ax=None,
    seed: int = 0,
    palette=None,
) -> Figure:
    """Test ``y`` against labels, one line per ``hue`` value, mean and band over runs (seeds);
    ``palette``: ``{hue value: colour}`` (default: :func:`strategy_palette` when ``hue`` names
    strategies, ``strategy`` or ``label``, else seaborn's)."""
    ax, hue = _axes(ax), _hue(runs, hue)
    if palette is None and hue in _STRATEGY_HUES:
        palette = strategy_palette(sorted(runs[hue].dropna().unique(), key=str))
    sns.lineplot(
        data=runs,
        x=x,
        y=y,
        hue=hue,
        hue_order=hue_order if hue else None,
        palette=palette if hue else None,
        errorbar=errorbar,
        seed=seed,
        marker="o",
        ax=ax,
    )
    _label_counts(ax, _runs_per_hue(runs, hue))
    ax.set(xlabel="labeled samples" if x == "n_labeled" else x, ylabel=y.replace("_", " "))
    if x in ("n_labeled", "round"):
        _integer_x(ax)
        _ticks_at_values(ax, runs[x])
    _title(ax, f"test {y.replace('_', ' ')} against {'labels' if x == 'n_labeled' else x}")
    ax.grid(alpha=0.3)
    return ax.figure


def _hue_palette(values) -> dict:
    """``{value: colour}`` for ``values`` in order: tab10 up to 10 values, tab20 up to 20, then
    husl (the same colour for a value in every panel of a figure)."""
    values = list(values)
    return dict(zip(values, _class_colours(len(values))))


def _legend_below(ax, n: int) -> None:
    """The axes' legend under its x label, in up to three columns: it covers no curve."""
    if ax.get_legend() is None:
        return
    sns.move_legend(
        ax,
        "upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=min(3, max(1, n)),
        fontsize="small",
        title=None,
        frameon=False,
    )


def learning_curve_panels(
    runs: pd.DataFrame,
    *,
    col="setting",
    x="n_labeled",
    y="accuracy",
    hue="strategy",
    errorbar=("ci", 95),
    seed: int = 0,
    ncols: int | None = None,
) -> Figure:
    """:func:`learning_curves` in a grid, one panel per value of ``col`` (e.g. balanced |
    imbalanced), each on its own label range, ``ncols`` panels a row (default: up to three panels
    in one row, more in rows of two). A ``hue`` value keeps its colour in every panel; each
    panel's legend, under it, lists only the series that panel draws."""
    if ncols is not None and ncols < 1:
        raise ValueError(f"ncols must be a positive integer or None, got {ncols!r}")
    panels = sorted(runs[col].dropna().unique(), key=str)
    hue = _hue(runs, hue)
    values = sorted(runs[hue].dropna().unique(), key=str) if hue else []
    palette = (strategy_palette if hue in _STRATEGY_HUES else _hue_palette)(values) if hue else None
    n = max(1, len(panels))
    ncols = min(n, ncols or (n if n <= 3 else 2))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.2 * ncols, 4.6 * nrows), layout="constrained", squeeze=False
    )
    for ax, value in zip(axes.flat, panels):
        part = runs[runs[col] == value]
        order = [h for h in palette if (part[hue] == h).any()] if hue else None
        ax.set_title(f"{col}: {value}")
        colours = {h: palette[h] for h in order} if hue else None
        learning_curves(
            part,
            x=x,
            y=y,
            hue=hue,
            errorbar=errorbar,
            hue_order=order,
            ax=ax,
            seed=seed,
            palette=colours,
        )
        _legend_below(ax, len(order) if hue else 0)
    for ax in list(axes.flat)[len(panels) :]:
        ax.remove()  # empty cells of the last row
    return fig


def per_class_accuracy(
    runs: pd.DataFrame, *, x="n_labeled", classes=None, errorbar=("ci", 95), ax=None, seed: int = 0
) -> Figure:
    """Per-class test accuracy (``acc_<c>`` columns) against labels, one line per class."""
    ax = _axes(ax)
    columns = class_columns(runs, "acc")
    long = runs[[x, *columns]].melt(
        id_vars=[x], value_vars=columns, var_name="class", value_name="class_accuracy"
    )
    long["class"] = [_class_name(c, classes) for c in long["class"]]
    palette = _labels_palette([column_class(c) for c in columns], classes)
    sns.lineplot(
        data=long,
        x=x,
        y="class_accuracy",
        hue="class",
        hue_order=list(palette),
        palette=palette,
        errorbar=errorbar,
        seed=seed,
        marker=".",
        ax=ax,
    )
    ax.set(xlabel="labeled samples" if x == "n_labeled" else x, ylabel="per-class accuracy")
    if x in ("n_labeled", "round"):
        _integer_x(ax)
    _title(ax, "test accuracy per class")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), title="class", fontsize="small")
    ax.grid(alpha=0.3)
    return ax.figure


def class_histogram(runs: pd.DataFrame, *, kind: str = "count", classes=None, ax=None) -> Figure:
    """Class make-up per round, stacked bars (mean over runs): of the labeled set (``kind="count"``)
    or of the batch each round queried (``kind="query"``)."""
    if kind not in ("count", "query"):
        raise ValueError(f"kind must be 'count' or 'query', got {kind!r}")
    ax = _axes(ax)
    columns = sorted(class_columns(runs, kind), key=column_class)
    table = runs.groupby("round")[columns].mean()
    palette = _labels_palette([column_class(c) for c in columns], classes)
    table.columns = list(palette)
    if kind == "query":
        table = table.loc[table.sum(axis=1) > 0]  # the last round queries nothing
    table.plot(kind="bar", stacked=True, ax=ax, width=0.85, color=list(palette.values()))
    ax.set(xlabel="round", ylabel="labeled samples" if kind == "count" else "queried samples")
    _round_labels(ax)
    _title(ax, "classes of the labeled set" if kind == "count" else "classes of each round's query")
    ax.legend(title="class", fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    return ax.figure


def round_timings(
    runs: pd.DataFrame, *, phases=("train_time", "embed_time", "select_time", "eval_time"), ax=None
) -> Figure:
    """Seconds per round, phases stacked, one panel per ``setting`` (settings are never pooled).

    With several strategies a panel has one horizontal bar per strategy (mean seconds per round
    over rounds and runs); with one strategy, one bar per round (mean over runs). ``ax`` draws one
    panel: it takes the rows of one setting only. ``select_time`` is the whole selection call and
    ``embed_time`` a part of it, so with both the select segment is the rest of the call
    (``select_time - embed_time``) and a bar's length is the round's time."""
    phases = [p for p in phases if p in runs.columns]
    if "embed_time" in phases and "select_time" in phases:
        rest = (runs["select_time"] - runs["embed_time"].fillna(0)).clip(lower=0)
        runs = runs.assign(select_time=rest)
    colours = dict(zip(phases, sns.color_palette("tab10", 10)))
    settings = sorted(runs["setting"].dropna().unique(), key=str) if "setting" in runs else [None]
    if ax is not None and len(settings) > 1:
        names = ", ".join(map(str, settings))
        raise ValueError(
            f"ax draws one panel but the rows hold {len(settings)} settings "
            f"({names}); pass ax=None or one setting's rows"
        )
    by_strategy = "strategy" in runs.columns and runs["strategy"].nunique() > 1
    strategies = sorted(runs["strategy"].unique(), key=str) if by_strategy else []
    if ax is None:
        height = max(2.8, 0.38 * len(strategies) + 1.6) if by_strategy else 3.6
        _, axes = plt.subplots(
            1,
            len(settings),
            figsize=(4.6 * len(settings) + 1.2, height),
            layout="constrained",
            sharex=by_strategy,
            squeeze=False,
        )
        axes = list(axes.flat)
        if settings != [None]:
            axes[0].figure.suptitle("seconds per round by phase")
    else:
        axes = [ax]
    for ax, setting in zip(axes, settings):
        part = runs if setting is None else runs[runs["setting"] == setting]
        if by_strategy:
            table = part.groupby("strategy")[phases].mean().reindex(strategies)
        else:
            table = part.groupby("round")[phases].mean()
        base = np.zeros(len(table))
        for phase in phases:
            values = table[phase].fillna(0).to_numpy()
            label = phase.removesuffix("_time")
            if phase == "select_time" and "embed_time" in phases:
                label = "select, besides embed"
            if by_strategy:
                ax.barh(np.arange(len(table)), values, left=base, color=colours[phase], label=label)
            else:
                ax.bar(table.index, values, bottom=base, color=colours[phase], label=label)
            base = base + values
        if by_strategy:
            ax.set(
                yticks=np.arange(len(table)),
                yticklabels=table.index,
                xlabel="seconds per round (mean over rounds and runs)",
            )
            ax.invert_yaxis()
            ax.grid(axis="x", alpha=0.3)
        else:
            ax.set(xlabel="round", ylabel="seconds (mean over runs)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(axis="y", alpha=0.3)
        ax.set_title(str(setting) if setting is not None else "seconds per round by phase")
    axes[-1].legend(title="phase", fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    return axes[0].figure
