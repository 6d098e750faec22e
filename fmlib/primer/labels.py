"""Numbered labels for picked points that overlap neither each other nor the points' rings."""

from __future__ import annotations

import numpy as np


def label_points(ax, points, *, ring_size: float = 140, fontsize: float = 8, labels=None):
    """Number ``points`` ``[K, 2]`` (data coordinates) 1, 2, ... in order, every label where it
    overlaps no other label and no point's ring (scatter size ``ring_size``, points²): the first
    free spot on circles of growing radius around its point, with a leader line. Returns the
    annotations. Placed in pixels of the figure as laid out now, so call it after everything else
    is drawn; the labels stay out of the layout, which therefore does not move them."""
    fig = ax.figure
    fig.canvas.draw()  # fixes the layout (constrained, equal aspect): the pixels below hold
    renderer = fig.canvas.get_renderer()
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    labels = (
        [str(i) for i in range(1, len(points) + 1)] if labels is None else [str(t) for t in labels]
    )
    centres = ax.transData.transform(points)  # [K, 2] pixels
    ring = np.sqrt(ring_size) / 2 * fig.dpi / 72  # ring radius in pixels
    # boxes nothing may cover
    taken = [np.array([x - ring, y - ring, x + ring, y + ring]) for x, y in centres]
    frame = ax.get_window_extent(renderer)
    angles = np.deg2rad(np.arange(0, 360, 30))
    style = {"fontsize": fontsize, "fontweight": "bold"}
    annotations = []
    for text, centre in zip(labels, centres):
        probe = ax.text(0, 0, text, **style)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        half = np.array([extent.width, extent.height]) / 2 + 2  # + the label's white pad, in pixels
        best, fewest = None, None
        for radius in ring + half.max() + 1 + np.arange(10) * 1.5 * half.max():
            for angle in angles:
                at = centre + radius * np.array([np.cos(angle), np.sin(angle)])
                box = np.concatenate([at - half, at + half])
                inside = (
                    frame.x0 <= box[0]
                    and box[2] <= frame.x1
                    and frame.y0 <= box[1]
                    and box[3] <= frame.y1
                )
                clashes = sum(_overlap(box, other) for other in taken) + (
                    0 if inside else len(taken)
                )
                if fewest is None or clashes < fewest:
                    best, fewest = (at, box), clashes
                if clashes == 0:
                    break
            if fewest == 0:
                break
        at, box = best
        taken.append(box)
        # pixels -> points, so a saved figure at another dpi keeps it
        offset = (at - centre) * 72 / fig.dpi
        note = ax.annotate(
            text,
            tuple(points[len(annotations)]),
            xytext=tuple(offset),
            textcoords="offset points",
            ha="center",
            va="center",
            annotation_clip=False,
            zorder=5,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            arrowprops={
                "arrowstyle": "-",
                "lw": 0.6,
                "color": "0.3",
                "shrinkA": 0,
                "shrinkB": np.sqrt(ring_size) / 2,
            },
            **style,
        )
        note.set_in_layout(False)
        annotations.append(note)
    return annotations


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether boxes ``[x0, y0, x1, y1]`` share area."""
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
