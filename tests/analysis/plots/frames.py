"""Small tidy frames of rounds, picked classes and mask overlap for the figure tests, and the
colours a figure's legend shows."""

import numpy as np
import pandas as pd
from matplotlib.colors import to_hex

CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress"]  # not in alphabetical order


def rounds_frame(seeds=(0, 1, 2), strategies=("random", "fishermask"), settings=None):
    rows = []
    for setting in settings or [None]:
        for strategy in strategies:
            for seed in seeds:
                for r in range(4):
                    row = {
                        "run": f"{strategy}-{setting}-{seed}",
                        "strategy": strategy,
                        "seed": seed,
                        "round": r,
                        "n_labeled": 10 + 20 * r,
                        "accuracy": 0.5 + 0.1 * r + 0.01 * seed,
                        "train_time": 1.0 + r,
                        "embed_time": 0.5,
                        "select_time": 2.0,
                        "eval_time": 0.1,
                    }
                    if setting is not None:
                        row["setting"] = setting
                    for c in range(len(CLASSES)):
                        row[f"acc_{c}"] = 0.2 * c + 0.01 * r
                        row[f"count_{c}"] = 2 + r + c
                        row[f"query_{c}"] = c + 1 if r < 3 else 0
                    rows.append(row)
    return pd.DataFrame(rows)


def by_class_frame():
    rows = [
        {
            "round": r,
            "label": c,
            "class": CLASSES[c],
            "n_picked": c + 1,
            "score_sum": float(c + 1),
            "score_share": (c + 1) / 10,
        }
        for r in range(3)
        for c in range(len(CLASSES))
    ]
    return pd.DataFrame(rows)


def legend_colours(fig) -> dict:
    legend = fig.axes[0].get_legend()
    colours = {}
    for handle, text in zip(legend.legend_handles, legend.get_texts()):
        colour = handle.get_color() if hasattr(handle, "get_color") else handle.get_facecolor()
        if not isinstance(colour, str):
            colour = tuple(np.ravel(colour)[:3])
        colours[text.get_text()] = to_hex(colour)
    return colours


def overlap_frame():
    return pd.DataFrame(
        {
            "round": [0, 1, 2, 3] * 2,
            "strategy": "fishermask",
            "seed": [0] * 4 + [1] * 4,
            "jaccard_previous": [np.nan, 0.5, 0.6, 0.7] * 2,
            "jaccard_first": [1.0, 0.5, 0.4, 0.3] * 2,
            "fisher_trace": [1.0, 2.0, 3.0, 4.0] * 2,
        }
    )
