"""Figures of :mod:`fmlib.analysis.sensitivity`: mask overlap across rounds, the layers' share of
the mask, a Fisher summary (the trace) per round, the classes of the picked samples and the most
sensitive samples."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

from fmlib.analysis.plots.common import (
    _axes,
    _hue,
    _integer_x,
    _labels_palette,
    _round_labels,
    _title,
)


def mask_overlap(
    overlap: pd.DataFrame, *, hue="strategy", errorbar=("ci", 95), ax=None, seed: int = 0
) -> Figure:
    """Jaccard of each round's mask with the previous round's (solid) and the first round's
    (dashed), and two references of :func:`fmlib.analysis.sensitivity.mask_overlap`, when
    present: in grey with the same dashes, what random masks with the same number of entries in
    every parameter tensor give (``chance_previous``, ``chance_first``); in black, dotted, the
    Fisher-sampling noise (``split_jaccard``: masks of two halves of one round's Fisher sample).
    Without ``split_jaccard`` values the x label says that the records hold no noise reference."""
    ax, hue = _axes(ax), _hue(overlap, hue)
    ids = ["round"] + ([hue] if hue else [])
    value_vars = ["jaccard_previous", "jaccard_first"]
    names = {"jaccard_previous": "previous round", "jaccard_first": "first round"}
    long = (
        overlap[ids + value_vars]
        .melt(id_vars=ids, value_vars=value_vars, var_name="against", value_name="jaccard")
        .dropna()
    )
    long["against"] = long["against"].map(names)
    sns.lineplot(
        data=long,
        x="round",
        y="jaccard",
        hue=hue,
        style="against",
        style_order=list(names.values()),
        errorbar=errorbar,
        seed=seed,
        marker="o",
        ax=ax,
    )
    for column, dashes in (("chance_previous", "-"), ("chance_first", "--")):
        if column in overlap:
            chance = overlap.groupby("round")[column].mean().dropna()
            against = names[column.replace("chance", "jaccard")]
            ax.plot(
                chance.index,
                chance.to_numpy(),
                color="grey",
                ls=dashes,
                lw=4,
                alpha=0.45,
                zorder=1,
                label=f"chance, {against}",
            )
    noise = (
        overlap.groupby("round")["split_jaccard"].mean().dropna()
        if "split_jaccard" in overlap
        else pd.Series(dtype=float)
    )
    if len(noise):
        ax.plot(
            noise.index,
            noise.to_numpy(),
            color="black",
            ls=":",
            marker="x",
            lw=1.5,
            zorder=3,
            label="two halves of one Fisher sample",
        )
    chance = "grey: random masks, same count per tensor\n" if "chance_first" in overlap else ""
    reference = (
        "black dotted: masks of two halves of the round's Fisher sample (sampling noise)"
        if len(noise)
        else "no Fisher-sampling noise reference (one mask a round recorded)"
    )
    ax.set(ylim=(0, 1.02), ylabel="mask overlap (Jaccard)", xlabel=f"round\n{chance}{reference}")
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
    "fraction": (
        "share of each layer's entries that are in the mask",
        "fraction of the layer in the mask",
    ),
    "share": ("share of the mask that each layer holds", "share of the mask in the layer"),
}


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
    # values printed: a 0 and a 0.003 look equally dark
    sns.heatmap(
        table,
        cmap="magma",
        vmin=0,
        ax=ax,
        cbar_kws={"label": label},
        annot=table.size <= 120,
        fmt=".2g",
        annot_kws={"fontsize": 7},
    )
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
    ax.set(
        yticks=y,
        yticklabels=_layer_labels(summary, summary["layer"]),
        xlabel=f"{label} (mean over rounds, whiskers {spread})",
    )
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


def fisher_over_rounds(
    fisher: pd.DataFrame,
    *,
    y: str = "fisher_trace",
    hue="strategy",
    errorbar=("ci", 95),
    log: bool = True,
    ax=None,
    seed: int = 0,
) -> Figure:
    """A Fisher summary (default the trace) against round, mean and band over runs."""
    ax, hue = _axes(ax), _hue(fisher, hue)
    sns.lineplot(
        data=fisher, x="round", y=y, hue=hue, errorbar=errorbar, seed=seed, marker="o", ax=ax
    )
    if log and (fisher[y] > 0).all():
        ax.set_yscale("log")
        _log_ticks(ax)
    words = _FISHER_WORDS.get(y, y.replace("_", " "))
    ax.set(
        ylabel=words + (" (log scale)" if ax.get_yscale() == "log" else ""),
        xlabel="round (model that picked)",
    )
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
        ax.set(
            yticks=np.arange(len(top)),
            yticklabels=[caption(r).replace("\n", " ") for r in top.itertuples()],
            xlabel="sensitivity ||V(x)||²",
        )
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
