"""Teaching: a toy problem small enough to see Fisher-based AL (:mod:`~fmlib.primer.toy`), the
numbered labels of its picks (:mod:`~fmlib.primer.labels`) and live ipywidgets views of it
(:mod:`~fmlib.primer.widgets`, imported on its own: it needs ipywidgets)."""

from fmlib.primer.labels import label_points
from fmlib.primer.toy import (
    ToyMLP,
    bait_objective,
    bait_picks,
    class_legend,
    concentration,
    default_figures_dir,
    draw_bait,
    draw_fisher_map,
    draw_mask,
    draw_mask_vs_fraction,
    fishermask_picks,
    layer_table,
    mask_rule,
    rounded,
    toy_data,
    train_toy,
)

__all__ = [
    "ToyMLP",
    "bait_objective",
    "bait_picks",
    "class_legend",
    "concentration",
    "default_figures_dir",
    "draw_bait",
    "draw_fisher_map",
    "draw_mask",
    "draw_mask_vs_fraction",
    "fishermask_picks",
    "label_points",
    "layer_table",
    "mask_rule",
    "rounded",
    "toy_data",
    "train_toy",
]
