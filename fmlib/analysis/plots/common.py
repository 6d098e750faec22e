"""What every figure shares: :func:`save_figure` (PNG and SVG, the same bytes for the same
figure), :func:`class_palette` (a class has one colour in every figure), :func:`strategy_palette`
(so has a strategy), and the axes, title, tick and hue helpers of the figure modules."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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


# tab10 indices: a built-in strategy keeps one colour in every figure; "fm" is FisherMask as the
# ablation labels it.
_STRATEGY_COLOURS = {
    "bait": 0,
    "entropy": 1,
    "fishermask": 2,
    "fm": 2,
    "margin": 3,
    "random": 4,
    "badge": 5,
    "bald": 6,
    "coreset": 8,
}
_SPARE = (7, 9, 5, 6, 8, 0, 1, 3, 4)  # the order the other names take the colours left free


def strategy_palette(names) -> dict:
    """``{name: colour}`` for strategy names (hue values; duplicates once): a built-in strategy,
    and ``fm`` for FisherMask, has the same colour in every figure; any other name (a variant such
    as ``fm-scale-none``, a user's strategy) takes, in order, a colour that no name of ``names``
    holds, then husl colours."""
    names = list(dict.fromkeys(names))
    tab10 = sns.color_palette("tab10", 10)
    taken = {_STRATEGY_COLOURS[str(n)] for n in names if str(n) in _STRATEGY_COLOURS}
    others = [n for n in names if str(n) not in _STRATEGY_COLOURS]
    spare = [tab10[i] for i in _SPARE if i not in taken]
    spare += sns.color_palette("husl", max(0, len(others) - len(spare)))
    free = dict(zip(others, spare))
    return {n: tab10[_STRATEGY_COLOURS[str(n)]] if n not in free else free[n] for n in names}


_STRATEGY_HUES = ("strategy", "label", "baseline")


def _labels_palette(labels, classes) -> dict:
    """``{name: colour}`` for the class ``labels`` present, in label order, coloured by label."""
    labels = sorted(int(c) for c in labels)
    colours = _class_colours(max(labels, default=-1) + 1 if classes is None else len(classes))
    return {classes[c] if classes is not None else str(c): colours[c] for c in labels}
