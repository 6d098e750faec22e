"""The primer's toy problem (fmlib.primer.toy): the BAIT demo's numbers, the figures, their titles and labels."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fmlib import primer  # noqa: E402
from fmlib.fisher.embeddings import fisher_diagonal  # noqa: E402


@pytest.fixture(scope="module")
def toy():
    x, y = primer.toy_data(90, 3, seed=1)
    return x, y, primer.train_toy(x, y, steps=80, seed=1)


def test_toy_model_learns_the_blobs(toy):
    x, y, model = toy
    assert (model(x).argmax(1) == y).float().mean() > 0.8


def test_bait_picks_are_distinct_and_beat_random_batches(toy):
    x, _, model = toy
    emb, fisher, picks = primer.bait_picks(model, x, 8, 1.0)
    assert len(set(picks)) == 8
    greedy = [primer.bait_objective(emb, picks[:m], fisher, 1.0) for m in range(1, 9)]
    assert all(b < a for a, b in zip(greedy, greedy[1:]))  # every pick lowers the objective
    rng = np.random.default_rng(0)
    randoms = [
        primer.bait_objective(emb, rng.permutation(len(x))[:8], fisher, 1.0) for _ in range(20)
    ]
    assert greedy[-1] < np.mean(randoms)
    # the first pick is the single point with the lowest objective (brute force)
    singles = [primer.bait_objective(emb, [i], fisher, 1.0) for i in range(len(x))]
    assert picks[0] == int(np.argmin(singles))


def test_draw_functions_return_figures(toy):
    x, y, model = toy
    diag = fisher_diagonal(model, x)
    figures = [
        primer.draw_fisher_map(model, x, y, steps=20),
        primer.draw_mask(diag, 0.2, model=model),
        primer.draw_mask_vs_fraction(diag, model=model),
        primer.draw_bait(model, x, y, batch_size=4, random_draws=3),
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figures)
    plt.close("all")


def test_layer_table_counts_mask_entries(toy):
    _, _, model = toy
    x, _ = primer.toy_data(30, 3, seed=2)
    diag = fisher_diagonal(model, x)
    table = primer.layer_table(diag)
    assert int(table["entries"].sum()) == sum(p.numel() for p in model.parameters())


def test_toy_data_is_seeded():
    a, _ = primer.toy_data(20, seed=3)
    b, _ = primer.toy_data(20, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, primer.toy_data(20, seed=4)[0])


def titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_titles_round_slider_values(toy):
    x, y, model = toy
    mask_titles = titles(
        primer.draw_mask(fisher_diagonal(model, x), 10**-0.3, model=model)
    )  # a log slider's value
    bait_titles = titles(primer.draw_bait(model, x, y, batch_size=3, lamb=10**0.75, random_draws=2))
    assert any("(fraction 0.501)" in t for t in mask_titles), mask_titles
    assert any("(λ=5.62)" in t for t in bait_titles), bait_titles
    assert (
        primer.rounded(0.001) == "0.001"
        and primer.rounded(100.0) == "100"
        and primer.rounded(0.25) == "0.25"
    )
    plt.close("all")


def label_boxes(ax) -> list:
    """Pixel boxes of the axes' number labels, as drawn (the text alone: an Annotation's own extent
    includes its leader line)."""
    ax.figure.canvas.draw()
    return [matplotlib.text.Text.get_window_extent(t) for t in ax.texts]


def overlapping(boxes, others=None) -> list[tuple[int, int]]:
    """Index pairs of boxes sharing more than half a pixel (within ``boxes``, or against ``others``)."""
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
    points = np.concatenate(
        [rng.normal(0, 0.04, (12, 2)), rng.normal(0, 1, (8, 2))]
    )  # 12 in a tight cluster
    fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    ax.scatter(points[:, 0], points[:, 1], s=140, facecolors="none", edgecolors="black")
    ax.set(aspect="equal", title="picks")
    notes = primer.label_points(ax, points, ring_size=140)
    assert [n.get_text() for n in notes] == [str(i) for i in range(1, 21)]
    boxes = label_boxes(ax)
    assert overlapping(boxes) == []
    centres = ax.transData.transform(points)  # no label hides a point
    dots = [matplotlib.transforms.Bbox([c - 1, c + 1]) for c in centres]
    assert overlapping(boxes, dots) == []
    plt.close(fig)


def test_bait_pick_labels_are_readable(toy):
    x, y, model = toy
    fig = primer.draw_bait(model, x, y, batch_size=25, lamb=0.01, random_draws=2)
    left = fig.axes[0]
    assert [t.get_text() for t in left.texts] == [str(i) for i in range(1, 26)]  # pick order
    assert overlapping(label_boxes(left)) == []
    plt.close(fig)


def test_figures_go_outside_the_checkout_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert primer.default_figures_dir() == tmp_path / "fmlib" / "primer"
    monkeypatch.delenv("XDG_CACHE_HOME")
    default = primer.default_figures_dir()
    assert default == Path.home() / ".cache" / "fmlib" / "primer"
    checkout = Path(primer.__file__).resolve().parents[2]
    assert checkout not in default.resolve().parents
