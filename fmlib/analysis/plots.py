"""Figures for notebooks: learning curves, class make-up, and the sensitivity views.

Every function takes a tidy DataFrame (:func:`fmlib.records.load_runs` or a function of
:mod:`fmlib.analysis.sensitivity`, possibly through :func:`fmlib.analysis.sensitivity.over_runs`), draws on
``ax`` (a new figure when ``None``) and returns the figure. Rows of several runs with the same
``x`` and ``hue`` are aggregated: the line is the mean, the band a 95 % bootstrap confidence
interval over runs (seeds) unless ``errorbar`` says otherwise. Nothing calls ``plt.show``: the
code works with matplotlib's Agg backend; :func:`save_figure` writes PNG and SVG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from fmlib.records.formats import class_columns, column_class


def save_figure(fig: Figure, path_stem, formats=("png", "svg"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``path_stem.png`` and ``path_stem.svg`` (folders created); return the paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
    for path in paths:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return paths


def _axes(ax, figsize=(6.4, 4.2)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _hue(frame: pd.DataFrame, hue):
    return hue if hue is not None and hue in frame.columns else None


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


def learning_curves(runs: pd.DataFrame, *, x="n_labeled", y="accuracy", hue="strategy", errorbar=("ci", 95),
                    hue_order=None, ax=None) -> Figure:  # fmt: skip
    """Test ``y`` against labels, one line per ``hue`` value, mean and band over runs (seeds)."""
    ax, hue = _axes(ax), _hue(runs, hue)
    sns.lineplot(
        data=runs,
        x=x,
        y=y,
        hue=hue,
        hue_order=hue_order if hue else None,
        errorbar=errorbar,
        marker="o",
        ax=ax,
    )
    _label_counts(ax, _runs_per_hue(runs, hue))
    ax.set(xlabel="labeled samples" if x == "n_labeled" else x, ylabel=y.replace("_", " "))
    ax.grid(alpha=0.3)
    return ax.figure


def learning_curve_panels(runs: pd.DataFrame, *, col="setting", x="n_labeled", y="accuracy", hue="strategy",
                          errorbar=("ci", 95)) -> Figure:  # fmt: skip
    """:func:`learning_curves` side by side, one panel per value of ``col`` (e.g. balanced |
    imbalanced), each on its own label range; a ``hue`` value keeps its colour in every panel."""
    panels = sorted(runs[col].dropna().unique(), key=str)
    hue = _hue(runs, hue)
    order = sorted(runs[hue].dropna().unique(), key=str) if hue else None
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.6 * max(1, len(panels)), 4.2), layout="constrained",
                             squeeze=False)  # fmt: skip
    for ax, value in zip(axes.flat, panels):
        learning_curves(
            runs[runs[col] == value], x=x, y=y, hue=hue, errorbar=errorbar, hue_order=order, ax=ax
        )
        ax.set_title(f"{col}: {value}")
    return fig


def per_class_accuracy(
    runs: pd.DataFrame, *, x="n_labeled", classes=None, errorbar=("ci", 95), ax=None
) -> Figure:
    """Per-class test accuracy (``acc_<c>`` columns) against labels, one line per class."""
    ax = _axes(ax)
    columns = class_columns(runs, "acc")
    long = runs[[x, *columns]].melt(
        id_vars=[x], value_vars=columns, var_name="class", value_name="class_accuracy"
    )
    long["class"] = [_class_name(c, classes) for c in long["class"]]
    sns.lineplot(
        data=long, x=x, y="class_accuracy", hue="class", errorbar=errorbar, marker=".", ax=ax
    )
    ax.set(xlabel="labeled samples" if x == "n_labeled" else x, ylabel="per-class accuracy")
    ax.grid(alpha=0.3)
    return ax.figure


def class_histogram(runs: pd.DataFrame, *, kind: str = "count", classes=None, ax=None) -> Figure:
    """Class make-up per round, stacked bars (mean over runs): of the labeled set (``kind="count"``)
    or of the batch each round queried (``kind="query"``)."""
    if kind not in ("count", "query"):
        raise ValueError(f"kind must be 'count' or 'query', got {kind!r}")
    ax = _axes(ax)
    columns = class_columns(runs, kind)
    table = runs.groupby("round")[columns].mean()
    table.columns = [_class_name(c, classes) for c in columns]
    if kind == "query":
        table = table.loc[table.sum(axis=1) > 0]  # the last round queries nothing
    table.plot(kind="bar", stacked=True, ax=ax, width=0.85, colormap="tab10")
    ax.set(xlabel="round", ylabel="labeled samples" if kind == "count" else "queried samples")
    ax.legend(title="class", fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    return ax.figure


def round_timings(runs: pd.DataFrame, *, phases=("train_time", "embed_time", "select_time", "eval_time"),
                  ax=None) -> Figure:  # fmt: skip
    """Seconds per round of each phase (mean over runs; style per strategy when there are several)."""
    ax = _axes(ax)
    phases = [p for p in phases if p in runs.columns]
    ids = ["round"] + (["strategy"] if "strategy" in runs.columns else [])
    long = (
        runs[ids + phases]
        .melt(id_vars=ids, value_vars=phases, var_name="phase", value_name="seconds")
        .dropna()
    )
    style = "strategy" if "strategy" in long.columns and long["strategy"].nunique() > 1 else None
    sns.lineplot(data=long, x="round", y="seconds", hue="phase", style=style, marker="o", ax=ax)
    ax.set(yscale="log" if (long["seconds"] > 0).all() and len(long) else "linear")
    ax.grid(alpha=0.3)
    return ax.figure


def mask_overlap(overlap: pd.DataFrame, *, hue="strategy", errorbar=("ci", 95), ax=None) -> Figure:
    """Jaccard of each round's mask with the previous round's (solid) and the first round's (dashed)."""
    ax, hue = _axes(ax), _hue(overlap, hue)
    ids = ["round"] + ([hue] if hue else [])
    value_vars = ["jaccard_previous", "jaccard_first"]
    long = overlap[ids + value_vars].melt(id_vars=ids, value_vars=value_vars, var_name="against",
                        value_name="jaccard").dropna()  # fmt: skip
    long["against"] = long["against"].map(
        {"jaccard_previous": "previous round", "jaccard_first": "first round"}
    )
    sns.lineplot(
        data=long,
        x="round",
        y="jaccard",
        hue=hue,
        style="against",
        errorbar=errorbar,
        marker="o",
        ax=ax,
    )
    ax.set(ylim=(0, 1.02), ylabel="mask overlap (Jaccard)")
    ax.grid(alpha=0.3)
    return ax.figure


def mask_overlap_matrix(matrix: pd.DataFrame, *, ax=None) -> Figure:
    """Heatmap of the Jaccard of every pair of rounds' masks."""
    ax = _axes(ax, figsize=(5.2, 4.4))
    sns.heatmap(
        matrix,
        vmin=0,
        vmax=1,
        cmap="viridis",
        annot=len(matrix) <= 12,
        fmt=".2f",
        square=True,
        ax=ax,
    )
    ax.set(xlabel="round", ylabel="round", title="mask overlap (Jaccard)")
    return ax.figure


def layer_share(shares: pd.DataFrame, *, value: str = "fraction", ax=None) -> Figure:
    """Heatmap layer x round (mean over runs) of ``fraction`` (share of the layer in the mask) or
    ``share`` (share of the mask in the layer)."""
    if value not in ("fraction", "share"):
        raise ValueError(f"value must be 'fraction' or 'share', got {value!r}")
    layers = list(dict.fromkeys(shares["layer"]))
    table = shares.pivot_table(
        index="layer", columns="round", values=value, aggfunc="mean"
    ).reindex(layers)
    ax = _axes(ax, figsize=(max(5.0, 0.45 * table.shape[1] + 3), max(3.0, 0.28 * len(layers) + 1)))
    sns.heatmap(table, cmap="magma", vmin=0, ax=ax, cbar_kws={"label": value})
    ax.set(xlabel="round", ylabel="")
    ax.set_title("layer entries in the mask" if value == "fraction" else "mask entries per layer")
    return ax.figure


def layer_share_summary(summary: pd.DataFrame, *, value: str = "fraction", ax=None) -> Figure:
    """Mean (bar) and std over rounds (whisker) of each layer's ``fraction`` or ``share``."""
    ax = _axes(ax, figsize=(6.4, max(3.0, 0.28 * len(summary) + 1)))
    y = np.arange(len(summary))
    ax.barh(
        y,
        summary[f"{value}_mean"],
        xerr=summary[f"{value}_std"].fillna(0),
        color="tab:blue",
        alpha=0.8,
    )
    ax.set(yticks=y, yticklabels=summary["layer"], xlabel=f"{value} (mean ± std over rounds)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return ax.figure


def fisher_over_rounds(fisher: pd.DataFrame, *, y: str = "fisher_trace", hue="strategy", errorbar=("ci", 95),
                       log: bool = True, ax=None) -> Figure:  # fmt: skip
    """A Fisher summary (default the trace) against round, mean and band over runs."""
    ax, hue = _axes(ax), _hue(fisher, hue)
    sns.lineplot(data=fisher, x="round", y=y, hue=hue, errorbar=errorbar, marker="o", ax=ax)
    if log and (fisher[y] > 0).all():
        ax.set_yscale("log")
    ax.set(ylabel=y.replace("_", " "))
    ax.grid(alpha=0.3)
    return ax.figure


def class_sensitivity(by_class: pd.DataFrame, *, value: str = "score_share", ax=None) -> Figure:
    """Stacked bars per round: each class's ``score_share`` (or ``n_picked``, ``score_sum``) among
    the picked samples."""
    ax = _axes(ax)
    key = "class" if "class" in by_class.columns else "label"
    table = by_class.pivot_table(index="round", columns=key, values=value, aggfunc="mean").fillna(0)
    table.plot(kind="bar", stacked=True, ax=ax, width=0.85, colormap="tab10")
    ax.set(xlabel="round (model that picked)", ylabel=value.replace("_", " "))
    ax.legend(title=key, fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    return ax.figure


def top_samples(top: pd.DataFrame, *, pool=None, classes=None, ncols: int = 5) -> Figure:
    """The most sensitive picked samples: their images from ``pool`` (an ImageData) titled with
    round, pool index, class and score, or without a pool a bar chart of their scores."""
    names = classes if classes is not None else (pool.classes if pool is not None else None)

    def caption(row):
        label = names[int(row.label)] if names is not None else int(row.label)
        return f"r{int(row.round)} #{int(row.pool_index)}\n{label}  {row.score:.3g}"

    if pool is None:
        ax = _axes(None, figsize=(6.4, max(2.5, 0.3 * len(top) + 1)))
        ax.barh(np.arange(len(top)), top["score"], color="tab:orange")
        ax.set(yticks=np.arange(len(top)), yticklabels=[caption(r).replace("\n", " ") for r in top.itertuples()],
               xlabel="sensitivity ||V(x)||²")  # fmt: skip
        ax.invert_yaxis()
        return ax.figure
    nrows = max(1, -(-len(top) // ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.9 * ncols, 2.2 * nrows), layout="constrained", squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, top.itertuples()):
        image = pool.images[int(row.pool_index)].permute(1, 2, 0).numpy()  # [H, W, C] uint8
        ax.imshow(
            image[..., 0] if image.shape[-1] == 1 else image,
            cmap="gray" if image.shape[-1] == 1 else None,
        )
        ax.set_title(caption(row), fontsize=8)
    return fig


def paired_differences(table: pd.DataFrame, *, measure: str = "auc", row: str = "arm", hue: str = "baseline",
                       ax=None) -> Figure:  # fmt: skip
    """Paired differences with their confidence intervals (:func:`fmlib.analysis.compare.paired_differences`):
    one row per ``row`` (arm), one marker per ``hue`` (baseline), a line at zero. Right of zero:
    the treatment (FisherMask) is better. ``measure`` picks the rows of a table with a ``measure``
    column (e.g. :func:`fmlib.analysis.ablation.arm_differences`). A row paired over fewer seeds than the
    most has its count in its label."""
    if "measure" in table:
        table = table[table["measure"] == measure]
    rows, hues = list(dict.fromkeys(table[row])), list(dict.fromkeys(table[hue]))
    ax = _axes(ax, figsize=(7.0, 0.9 + 0.45 * len(rows) * max(1, len(hues)) ** 0.5))
    colors = dict(zip(hues, sns.color_palette("tab10", len(hues))))
    offsets = np.linspace(-0.3, 0.3, len(hues)) if len(hues) > 1 else [0.0]
    for offset, name in zip(offsets, hues):
        part = table[table[hue] == name].set_index(row).reindex(rows)
        y = np.arange(len(rows)) + offset
        err = np.vstack([part["diff"] - part["ci_low"], part["ci_high"] - part["diff"]])
        ax.errorbar(part["diff"], y, xerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2, color=colors[name],
                    label=f"{name}")  # fmt: skip
    ax.axvline(0, color="black", lw=0.8)
    n = table["n"].max() if len(table) else 0
    fewest = table.groupby(row, sort=False)[
        "n"
    ].min()  # a row with fewer seeds than the others says so
    ax.set_yticks(
        np.arange(len(rows)), [r if fewest[r] == n else f"{r} ({fewest[r]} seeds)" for r in rows]
    )
    ax.invert_yaxis()
    ax.set_xlabel(
        f"FisherMask − baseline, {measure} (mean of paired differences over ≤{n} seeds, 95 % t interval)"
    )
    ax.legend(title=hue, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return ax.figure
