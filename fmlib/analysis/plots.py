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
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

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


def _ticks_at_values(ax, values, most: int = 10) -> None:
    """x ticks at the label counts (or rounds) the runs have, when there are at most ``most``."""
    values = sorted({int(v) for v in pd.Series(values).dropna()})
    if 1 < len(values) <= most:
        ax.set_xticks(values)


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
                    hue_order=None, ax=None, seed: int = 0, palette=None) -> Figure:  # fmt: skip
    """Test ``y`` against labels, one line per ``hue`` value, mean and band over runs (seeds);
    ``palette``: ``{hue value: colour}`` (default seaborn's)."""
    ax, hue = _axes(ax), _hue(runs, hue)
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
    sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(3, max(1, n)),
                    fontsize="small", title=None, frameon=False)  # fmt: skip


def learning_curve_panels(
    runs: pd.DataFrame, *, col="setting", x="n_labeled", y="accuracy", hue="strategy",
    errorbar=("ci", 95), seed: int = 0, ncols: int | None = None,
) -> Figure:  # fmt: skip
    """:func:`learning_curves` in a grid, one panel per value of ``col`` (e.g. balanced |
    imbalanced), each on its own label range, ``ncols`` panels a row (default: up to three panels
    in one row, more in rows of two). A ``hue`` value keeps its colour in every panel; each
    panel's legend, under it, lists only the series that panel draws."""
    if ncols is not None and ncols < 1:
        raise ValueError(f"ncols must be a positive integer or None, got {ncols!r}")
    panels = sorted(runs[col].dropna().unique(), key=str)
    hue = _hue(runs, hue)
    palette = _hue_palette(sorted(runs[hue].dropna().unique(), key=str)) if hue else None
    n = max(1, len(panels))
    ncols = min(n, ncols or (n if n <= 3 else 2))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.6 * nrows), layout="constrained",
                             squeeze=False)  # fmt: skip
    for ax, value in zip(axes.flat, panels):
        part = runs[runs[col] == value]
        order = [h for h in palette if (part[hue] == h).any()] if hue else None
        ax.set_title(f"{col}: {value}")
        colours = {h: palette[h] for h in order} if hue else None
        learning_curves(part, x=x, y=y, hue=hue, errorbar=errorbar, hue_order=order, ax=ax,
                        seed=seed, palette=colours)  # fmt: skip
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


def mask_overlap(
    overlap: pd.DataFrame, *, hue="strategy", errorbar=("ci", 95), ax=None, seed: int = 0
) -> Figure:
    """Jaccard of each round's mask with the previous round's (solid) and the first round's
    (dashed), and, in grey with the same dashes, what random masks with the same number of
    entries in every parameter tensor give (``chance_previous``, ``chance_first`` of
    :func:`fmlib.analysis.sensitivity.mask_overlap`, when present). The records hold no reference
    for Fisher-sampling noise (a snapshot keeps one mask per round), as the x label says."""
    ax, hue = _axes(ax), _hue(overlap, hue)
    ids = ["round"] + ([hue] if hue else [])
    value_vars = ["jaccard_previous", "jaccard_first"]
    names = {"jaccard_previous": "previous round", "jaccard_first": "first round"}
    long = overlap[ids + value_vars].melt(id_vars=ids, value_vars=value_vars, var_name="against",
                        value_name="jaccard").dropna()  # fmt: skip
    long["against"] = long["against"].map(names)
    sns.lineplot(data=long, x="round", y="jaccard", hue=hue, style="against",
                 style_order=list(names.values()), errorbar=errorbar, seed=seed, marker="o",
                 ax=ax)  # fmt: skip
    for column, dashes in (("chance_previous", "-"), ("chance_first", "--")):
        if column in overlap:
            chance = overlap.groupby("round")[column].mean().dropna()
            against = names[column.replace("chance", "jaccard")]
            ax.plot(chance.index, chance.to_numpy(), color="grey", ls=dashes, lw=4, alpha=0.45,
                    zorder=1, label=f"chance, {against}")  # fmt: skip
    chance = "grey: random masks, same count per tensor\n" if "chance_first" in overlap else ""
    ax.set(ylim=(0, 1.02), ylabel="mask overlap (Jaccard)",
           xlabel=f"round\n{chance}no Fisher-sampling noise reference "
                  "(one mask a round recorded)")  # fmt: skip
    _integer_x(ax)
    _title(ax, "mask overlap with the previous and the first round")
    ax.legend(fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
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


def _layer_label(layer: str, kind) -> str:
    """``features.3 (Conv2d)`` where the module type is known, the name alone otherwise."""
    return f"{layer} ({kind})" if isinstance(kind, str) and kind else str(layer)


def _layer_labels(frame: pd.DataFrame, layers) -> list[str]:
    kinds = dict(zip(frame["layer"], frame["layer_type"])) if "layer_type" in frame else {}
    return [_layer_label(layer, kinds.get(layer)) for layer in layers]


_SHARE_WORDS = {  # value -> (title, colour bar or axis label)
    "fraction": ("share of each layer's entries that are in the mask",
                 "fraction of the layer in the mask"),
    "share": ("share of the mask that each layer holds", "share of the mask in the layer"),
}  # fmt: skip


def layer_share(shares: pd.DataFrame, *, value: str = "fraction", ax=None) -> Figure:
    """Heatmap layer x round (mean over runs) of ``fraction`` (share of the layer in the mask) or
    ``share`` (share of the mask in the layer); a layer is labelled with its module type when
    ``shares`` has ``layer_type``."""
    if value not in ("fraction", "share"):
        raise ValueError(f"value must be 'fraction' or 'share', got {value!r}")
    layers = list(dict.fromkeys(shares["layer"]))
    table = shares.pivot_table(
        index="layer", columns="round", values=value, aggfunc="mean"
    ).reindex(layers)
    table.index = _layer_labels(shares, layers)
    ax = _axes(ax, figsize=(max(5.0, 0.45 * table.shape[1] + 4), max(3.0, 0.28 * len(layers) + 1)))
    title, label = _SHARE_WORDS[value]
    sns.heatmap(
        table,
        cmap="magma",
        vmin=0,
        ax=ax,
        cbar_kws={"label": label},
        annot=table.size <= 120,
        fmt=".2g",
        annot_kws={"fontsize": 7},
    )  # values printed: a 0 and a 0.003 look equally dark
    ax.set(xlabel="round", ylabel="")
    _title(ax, title)
    return ax.figure


def layer_share_summary(summary: pd.DataFrame, *, value: str = "fraction", ax=None) -> Figure:
    """Mean over rounds (bar) of each layer's ``fraction`` or ``share``, whiskers from the 10 % to
    the 90 % quantile over rounds (within [0, 1], as a fraction is; mean ± std clipped to [0, 1]
    for a summary without the quantile columns); layers with their module type when ``summary``
    has ``layer_type``."""
    if value not in ("fraction", "share"):
        raise ValueError(f"value must be 'fraction' or 'share', got {value!r}")
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
    title, label = _SHARE_WORDS[value]
    ax.set(yticks=y, yticklabels=_layer_labels(summary, summary["layer"]),
           xlabel=f"{label} (mean over rounds, whiskers {spread})")  # fmt: skip
    ax.set_xlim(left=0)
    _title(ax, f"{title}, over rounds")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return ax.figure


def _log_ticks(ax, axis: str = "y") -> None:
    """A log axis labelled at 1-2-5 steps (every integer step within a decade, or evenly spaced
    values within a factor of two) so that at least three labelled ticks fall inside it."""
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if not (lo > 0 and hi > lo):
        return
    ticks = []
    for subs in ((1.0,), (1.0, 2.0, 5.0), tuple(range(1, 10))):
        decades = np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
        ticks = [m * 10**d for d in decades for m in subs if lo <= m * 10**d <= hi]
        if len(ticks) >= 3:
            break
    if len(ticks) < 3:
        ticks = [t for t in MaxNLocator(4).tick_values(lo, hi) if lo <= t <= hi]
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    target.set_minor_formatter(NullFormatter())


_FISHER_WORDS = {  # column of fmlib.analysis.sensitivity.fisher_over_rounds -> axis words
    "fisher_trace": "trace of the pool Fisher in the mask",
    "fisher_total": "sum of the Fisher diagonal",
    "fisher_masked": "sum of the Fisher diagonal in the mask",
    "masked_share": "share of the Fisher diagonal in the mask",
    "mask_size": "mask entries",
    "fisher_max": "largest Fisher diagonal entry",
    "layer_cv": "spread of the mean Fisher over layers (CV)",
}


def fisher_over_rounds(fisher: pd.DataFrame, *, y: str = "fisher_trace", hue="strategy", errorbar=("ci", 95),
                       log: bool = True, ax=None, seed: int = 0) -> Figure:  # fmt: skip
    """A Fisher summary (default the trace) against round, mean and band over runs."""
    ax, hue = _axes(ax), _hue(fisher, hue)
    sns.lineplot(
        data=fisher, x="round", y=y, hue=hue, errorbar=errorbar, seed=seed, marker="o", ax=ax
    )
    if log and (fisher[y] > 0).all():
        ax.set_yscale("log")
        _log_ticks(ax)
    words = _FISHER_WORDS.get(y, y.replace("_", " "))
    ax.set(ylabel=words + (" (log scale)" if ax.get_yscale() == "log" else ""),
           xlabel="round (model that picked)")  # fmt: skip
    _integer_x(ax)
    _title(ax, f"{words} per round")
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
    table: pd.DataFrame, *, measure: str = "auc", row: str = "arm", hue: str = "baseline", ax=None,
    metric: str = "accuracy", range_seeds: int | None = None,
) -> Figure:  # fmt: skip
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
    colors = dict(zip(hues, sns.color_palette("tab10", len(hues))))
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
        ax.errorbar(diff, y, xerr=np.nan_to_num(np.clip(err, 0, None)), fmt="o", ms=4, capsize=2,
                    color=colors[name], label=f"{name}")  # fmt: skip
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.axvline(0, color="black", lw=0.8)
    n = table["n"].max() if len(table) else 0
    fewest = table.groupby(row, sort=False)["n"].min()  # a row with fewer seeds says so
    ax.set_yticks(
        np.arange(len(rows)), [r if fewest[r] == n else f"{r} ({fewest[r]} seeds)" for r in rows]
    )
    ax.invert_yaxis()
    ax.set_xlabel(f"FisherMask − baseline, {_measure_label(measure, metric)}\n"
                  f"mean of paired differences over ≤{n} seeds, 95 % t interval")  # fmt: skip
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
        ax.annotate(f"{end:+.2f}", xy, xytext=offset, textcoords="offset points", fontsize=7,
                    color=colour, ha=("right" if side == "high" else "left") if horizontal
                    else "center", va="center", annotation_clip=False, zorder=5,
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"})  # fmt: skip
    return cut_low, cut_high, int((low < lo).sum() + (high > hi).sum())


def paired_differences_by_budget(table: pd.DataFrame, *, row: str = "arm", hue: str = "baseline",
                                 metric: str = "accuracy", ncols: int = 2,
                                 range_seeds: int | None = None) -> Figure:  # fmt: skip
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
    colors = dict(zip(hues, sns.color_palette("tab10", len(hues))))
    seeds = table.groupby(row, sort=False)["n"].min()
    floor = _seed_floor(seeds, range_seeds)
    ylim = _range_of(table["ci_low"], table["ci_high"], table[row].map(seeds).ge(floor).to_numpy())
    ncols = min(ncols, len(rows))
    nrows = -(-len(rows) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.3 * nrows), layout="constrained",
                             squeeze=False)  # fmt: skip
    budgets = sorted(table["budget"].unique())
    most = int(table["n"].max())
    for i, (ax, name) in enumerate(zip(axes.flat, rows)):
        part, cut = table[table[row] == name], 0
        for base in hues:
            line = part[part[hue] == base].sort_values("budget")
            x = line["budget"].to_numpy(float)
            low, high = line["ci_low"].to_numpy(float), line["ci_high"].to_numpy(float)
            if ylim is not None:
                low, high, ends = _mark_cut(ax, x, low, high, ylim, colors[base],
                                            horizontal=False, values=False)  # fmt: skip
                cut += ends
            ax.fill_between(x, low, high, color=colors[base], alpha=0.15, lw=0)
            ax.plot(x, line["diff"], marker="o", ms=3.5, color=colors[base], label=base)
        ax.axhline(0, color="black", lw=0.8)
        if ylim is not None:
            ax.set_ylim(*ylim)
        n = int(seeds[name])
        ax.set_title(f"{name} ({n} seeds)" + (", bands cut at ▲▼" if cut else ""), fontsize=10)
        ax.set_xticks(budgets)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3)
        if i + ncols >= len(rows):  # nothing below it
            ax.set_xlabel("labels")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"FisherMask − baseline\n({metric})")
    for ax in list(axes.flat)[len(rows) :]:
        ax.remove()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, title=hue, loc="outside lower center", ncol=len(hues),
               fontsize="small")  # fmt: skip
    fig.suptitle(f"FisherMask minus each baseline in {metric} at each budget, paired by seed "
                 f"(mean, 95 % t interval over ≤{most} seeds)", fontsize=11)  # fmt: skip
    return fig
