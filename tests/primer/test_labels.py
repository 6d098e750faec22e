"""Numbered pick labels (fmlib.primer.labels): none overlaps another label or a point's ring."""

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fmlib.primer.labels import label_points  # noqa: E402


def label_boxes(ax) -> list:
    """Pixel boxes of the axes' number labels, as drawn (the text alone: an Annotation's own extent
    includes its leader line)."""
    ax.figure.canvas.draw()
    return [matplotlib.text.Text.get_window_extent(t) for t in ax.texts]


def overlapping(boxes, others=None) -> list[tuple[int, int]]:
    """Index pairs of boxes sharing more than half a pixel (within ``boxes``, or against
    ``others``)."""
    pairs = []
    for i, a in enumerate(boxes):
        for j, b in enumerate(boxes if others is None else others):
            shared = (
                min(a.x1, b.x1) - max(a.x0, b.x0) > 0.5 and min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5
            )
            if shared and (others is not None or i < j):
                pairs.append((i, j))
    return pairs


def test_point_labels_overlap_neither_each_other_nor_the_rings():
    rng = np.random.default_rng(0)
    # 12 in a tight cluster
    points = np.concatenate([rng.normal(0, 0.04, (12, 2)), rng.normal(0, 1, (8, 2))])
    fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    ax.scatter(points[:, 0], points[:, 1], s=140, facecolors="none", edgecolors="black")
    ax.set(aspect="equal", title="picks")
    notes = label_points(ax, points, ring_size=140)
    assert [n.get_text() for n in notes] == [str(i) for i in range(1, 21)]
    boxes = label_boxes(ax)
    assert overlapping(boxes) == []
    centres = ax.transData.transform(points)  # no label hides a point
    dots = [matplotlib.transforms.Bbox([c - 1, c + 1]) for c in centres]
    assert overlapping(boxes, dots) == []
    plt.close(fig)
