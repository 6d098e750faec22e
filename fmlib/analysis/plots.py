"""Figures for notebooks: learning curves, class make-up, and the sensitivity views.

Every function takes a tidy DataFrame (:func:`fmlib.records.load_runs` or a function of
:mod:`fmlib.analysis.sensitivity`, possibly through :func:`fmlib.analysis.sensitivity.over_runs`), draws on
``ax`` (a new figure when ``None``) and returns the figure. Rows of several runs with the same
``x`` and ``hue`` are aggregated: the line is the mean, the band a 95 % bootstrap confidence
interval over runs (seeds), resampled with a fixed ``seed``, unless ``errorbar`` says otherwise.
Nothing calls ``plt.show``: the code works with matplotlib's Agg backend; :func:`save_figure`
writes PNG and SVG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fmlib.records.formats import class_columns, column_class

# Metadata that would change the bytes of a file between two renders of the same records.
_NO_DATES = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {"Software": None}}


def save_figure(fig: Figure, path_stem, formats=("png", "svg"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``path_stem.png`` and ``path_stem.svg`` (folders created); return the paths.

    The files carry no date and SVG ids come from a fixed salt, so the same figure gives the same
    bytes every time (committed figures stay unchanged when a notebook is rerun)."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
    with plt.rc_context({"svg.hashsalt": "fmlib"}):
        for path, fmt in zip(paths, formats):
            fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=_NO_DATES.get(fmt))
    return paths


def _axes(ax, figsize=(6.4, 4.2)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _integer_x(ax) -> None:
    """Ticks only at whole numbers on an x axis of counts (rounds, labels)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _title(ax, title: str) -> None:
    """``title`` unless the caller's axes already have one (a panel of a larger figure)."""
    if not ax.get_title():
        ax.set_title(title)


def _round_labels(ax) -> None:
    """Round labels of a bar chart read horizontally unless there are too many to fit."""
    labels = ax.get_xticklabels()
    ax.tick_params(axis="x", labelrotation=0 if len(labels) <= 20 else 90)


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


def _class_colours(n: int) -> list:
    """``n`` colours, one per class label: tab10 up to 10 classes, tab20 up to 20, then husl."""
    if n <= 10:
        return sns.color_palette("tab10", 10)[:n]
    return sns.color_palette("tab20", 20)[:n] if n <= 20 else sns.color_palette("husl", n)


def class_palette(class_names) -> dict:
    """``{class name: colour}`` in class order (label 0 first): every figure that shows classes
    colours them with it, so a class has the same colour in all of them."""
    names = [str(name) for name in class_names]
    return dict(zip(names, _class_colours(len(names))))


def _labels_palette(labels, classes) -> dict:
    """``{name: colour}`` for the class ``labels`` present, in label order, coloured by label."""
    labels = sorted(int(c) for c in labels)
    colours = _class_colours(max(labels, default=-1) + 1 if classes is None else len(classes))
    return {classes[c] if classes is not None else str(c): colours[c] for c in labels}


def learning_curves(runs: pd.DataFrame, *, x="n_labeled", y="accuracy", hue="strategy", errorbar=("ci", 95),
                    hue_order=None, ax=None, seed: int = 0) -> Figure:  # fmt: skip
    """Test ``y`` against labels, one line per ``hue`` value, mean and band over runs (seeds)."""
    ax, hue = _axes(ax), _hue(runs, hue)
    sns.lineplot(
        data=runs,
        x=x,
        y=y,
        hue=hue,
        hue_order=hue_order if hue else None,
        errorbar=errorbar,
        seed=seed,
        marker="o",
        ax=ax,
    )
    _label_counts(ax, _runs_per_hue(runs, hue))
    ax.set(xlabel="labeled samples" if x == "n_labeled" else x, ylabel=y.replace("_", " "))
    if x in ("n_labeled", "round"):
        _integer_x(ax)
    _title(ax, f"test {y.replace('_', ' ')} against {'labels' if x == 'n_labeled' else x}")
    ax.grid(alpha=0.3)
    return ax.figure


def learning_curve_panels(runs: pd.DataFrame, *, col="setting", x="n_labeled", y="accuracy", hue="strategy",
                          errorbar=("ci", 95), seed: int = 0) -> Figure:  # fmt: skip
    """:func:`learning_curves` side by side, one panel per value of ``col`` (e.g. balanced |
    imbalanced), each on its own label range; a ``hue`` value keeps its colour in every panel."""
    panels = sorted(runs[col].dropna().unique(), key=str)
    hue = _hue(runs, hue)
    order = sorted(runs[hue].dropna().unique(), key=str) if hue else None
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.6 * max(1, len(panels)), 4.2), layout="constrained",
                             squeeze=False)  # fmt: skip
    for ax, value in zip(axes.flat, panels):
        learning_curves(
            runs[runs[col] == value], x=x, y=y, hue=hue, errorbar=errorbar, hue_order=order, ax=ax,
            seed=seed,
        )
        ax.set_title(f"{col}: {value}")
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
    sns.lineplot(data=long, x=x, y="class_accuracy", hue="class", hue_order=list(palette),
                 palette=palette, errorbar=errorbar, seed=seed, marker=".", ax=ax)  # fmt: skip
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


def round_timings(runs: pd.DataFrame, *, phases=("train_time", "embed_time", "select_time", "eval_time"),
                  ax=None) -> Figure:  # fmt: skip
    """Seconds per round, phases stacked, one panel per ``setting`` (settings are never pooled).

    With several strategies a panel has one horizontal bar per strategy (mean seconds per round
    over rounds and runs); with one strategy, one bar per round (mean over runs). ``ax`` draws one
    panel: it takes the rows of one setting only."""
    phases = [p for p in phases if p in runs.columns]
    colours = dict(zip(phases, sns.color_palette("tab10", 10)))
    settings = sorted(runs["setting"].dropna().unique(), key=str) if "setting" in runs else [None]
    if ax is not None and len(settings) > 1:
        names = ", ".join(map(str, settings))
        raise ValueError(f"ax draws one panel but the rows hold {len(settings)} settings "
                         f"({names}); pass ax=None or one setting's rows")  # fmt: skip
    by_strategy = "strategy" in runs.columns and runs["strategy"].nunique() > 1
    strategies = sorted(runs["strategy"].unique(), key=str) if by_strategy else []
    if ax is None:
        height = max(2.8, 0.38 * len(strategies) + 1.6) if by_strategy else 3.6
        _, axes = plt.subplots(1, len(settings), figsize=(4.6 * len(settings) + 1.2, height),
                               layout="constrained", sharex=by_strategy, squeeze=False)  # fmt: skip
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
            if by_strategy:
                ax.barh(np.arange(len(table)), values, left=base, color=colours[phase], label=label)
            else:
                ax.bar(table.index, values, bottom=base, color=colours[phase], label=label)
            base = base + values
        if by_strategy:
            ax.set(yticks=np.arange(len(table)), yticklabels=table.index,
                   xlabel="seconds per round (mean over rounds and runs)")  # fmt: skip
            ax.invert_yaxis()
            ax.grid(axis="x", alpha=0.3)
        else:
            ax.set(xlabel="round", ylabel="seconds (mean over runs)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(axis="y", alpha=0.3)
        ax.set_title(str(setting) if setting is not None else "seconds per round by phase")
    axes[-1].legend(title="phase", fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    return axes[0].figure


def mask_overlap(overlap: pd.DataFrame, *, hue="strategy", errorbar=("ci", 95), ax=None,
                 seed: int = 0) -> Figure:
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
        seed=seed,
        marker="o",
        ax=ax,
    )
    ax.set(ylim=(0, 1.02), ylabel="mask overlap (Jaccard)")
    _integer_x(ax)
    _title(ax, "mask overlap with the previous and the first round")
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
    ax.set(xlabel="round", ylabel="round")
    _title(ax, "mask overlap (Jaccard) of every pair of rounds")
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
    """Mean over rounds (bar) of each layer's ``fraction`` or ``share``, whiskers from the 10 % to
    the 90 % quantile over rounds (within [0, 1], as a fraction is; mean ± std clipped to [0, 1]
    for a summary without the quantile columns)."""
    ax = _axes(ax, figsize=(6.4, max(3.0, 0.28 * len(summary) + 1)))
    y = np.arange(len(summary))
    mean = summary[f"{value}_mean"].to_numpy(float)
    if {f"{value}_q10", f"{value}_q90"} <= set(summary.columns):
        low, high = summary[f"{value}_q10"].to_numpy(float), summary[f"{value}_q90"].to_numpy(float)
        spread = "10–90 % of rounds"
    else:
        std = summary[f"{value}_std"].fillna(0).to_numpy(float)
        low, high = np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1)
        spread = "± std over rounds, within [0, 1]"
    xerr = np.vstack([np.maximum(mean - low, 0), np.maximum(high - mean, 0)])
    ax.barh(y, mean, xerr=xerr, color="tab:blue", alpha=0.8)
    ax.set(yticks=y, yticklabels=summary["layer"], xlabel=f"{value} (mean, whiskers {spread})")
    ax.set_xlim(left=0)
    _title(ax, "layer entries in the mask, over rounds" if value == "fraction"
           else "mask entries per layer, over rounds")  # fmt: skip
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return ax.figure


def fisher_over_rounds(fisher: pd.DataFrame, *, y: str = "fisher_trace", hue="strategy", errorbar=("ci", 95),
                       log: bool = True, ax=None, seed: int = 0) -> Figure:  # fmt: skip
    """A Fisher summary (default the trace) against round, mean and band over runs."""
    ax, hue = _axes(ax), _hue(fisher, hue)
    sns.lineplot(data=fisher, x="round", y=y, hue=hue, errorbar=errorbar, seed=seed, marker="o",
                 ax=ax)
    if log and (fisher[y] > 0).all():
        ax.set_yscale("log")
    ax.set(ylabel=y.replace("_", " "))
    _integer_x(ax)
    _title(ax, f"{y.replace('_', ' ')} per round")
    ax.grid(alpha=0.3)
    return ax.figure


def class_sensitivity(by_class: pd.DataFrame, *, value: str = "score_share", ax=None) -> Figure:
    """Stacked bars per round: each class's ``score_share`` (or ``n_picked``, ``score_sum``) among
    the picked samples."""
    ax = _axes(ax)
    key = "class" if "class" in by_class.columns else "label"
    table = by_class.pivot_table(index="round", columns="label", values=value, aggfunc="mean")
    names = None
    if key == "class":  # names by label; labels absent from every round keep their colour slot
        named = dict(zip(by_class["label"].astype(int), by_class["class"].astype(str)))
        names = [named.get(c, str(c)) for c in range(max(named) + 1)]
    palette = _labels_palette(table.columns, names)
    table = table.sort_index(axis=1).fillna(0)
    table.columns = list(palette)
    table.plot(kind="bar", stacked=True, ax=ax, width=0.85, color=list(palette.values()))
    ax.set(xlabel="round (model that picked)", ylabel=value.replace("_", " "))
    _round_labels(ax)
    _title(ax, f"{value.replace('_', ' ')} of each class among the picked samples")
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
