"""Figures for notebooks: learning curves, class make-up, and the sensitivity views.

Every function takes a tidy DataFrame (:func:`fmlib.records.load_runs` or a function of
:mod:`fmlib.analysis.sensitivity`, possibly through
:func:`fmlib.analysis.sensitivity.over_runs`), draws on ``ax`` (a new figure when ``None``) and
returns the figure. Rows of several runs with the same ``x`` and ``hue`` are aggregated: the line
is the mean, the band a 95 % bootstrap confidence interval over runs (seeds), resampled with a
fixed ``seed``, unless ``errorbar`` says otherwise. Nothing calls ``plt.show``: the code works
with matplotlib's Agg backend; :func:`.save_figure` writes PNG and SVG.

One module per family, every public name importable from here:

* :mod:`~fmlib.analysis.plots.common` — :func:`.save_figure`, :func:`.class_palette`,
  :func:`.strategy_palette`, helpers;
* :mod:`~fmlib.analysis.plots.runs` — learning curves, per-class accuracy, class make-up, timings;
* :mod:`~fmlib.analysis.plots.sensitivity` — mask overlap, layer shares, Fisher trace, samples;
* :mod:`~fmlib.analysis.plots.ablation` — paired differences per arm and by label budget.
"""

from fmlib.analysis.plots.ablation import paired_differences, paired_differences_by_budget
from fmlib.analysis.plots.common import class_palette, save_figure, strategy_palette
from fmlib.analysis.plots.runs import (
    class_histogram,
    learning_curve_panels,
    learning_curves,
    per_class_accuracy,
    round_timings,
)
from fmlib.analysis.plots.sensitivity import (
    class_sensitivity,
    fisher_over_rounds,
    layer_share,
    layer_share_summary,
    mask_overlap,
    mask_overlap_matrix,
    top_samples,
)

__all__ = [
    "class_histogram",
    "class_palette",
    "class_sensitivity",
    "fisher_over_rounds",
    "layer_share",
    "layer_share_summary",
    "learning_curve_panels",
    "learning_curves",
    "mask_overlap",
    "mask_overlap_matrix",
    "paired_differences",
    "paired_differences_by_budget",
    "per_class_accuracy",
    "round_timings",
    "save_figure",
    "strategy_palette",
    "top_samples",
]
