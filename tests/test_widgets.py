"""Teaching helpers of fmlib.widgets: the toy problem, the BAIT demo's numbers, figures and sliders."""

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fmlib import widgets  # noqa: E402
from fmlib.fisher import fisher_diagonal  # noqa: E402


@pytest.fixture(scope="module")
def toy():
    x, y = widgets.toy_data(90, 3, seed=1)
    return x, y, widgets.train_toy(x, y, steps=80, seed=1)


def test_toy_model_learns_the_blobs(toy):
    x, y, model = toy
    assert (model(x).argmax(1) == y).float().mean() > 0.8


def test_bait_picks_are_distinct_and_beat_random_batches(toy):
    x, _, model = toy
    emb, fisher, picks = widgets.bait_picks(model, x, 8, 1.0)
    assert len(set(picks)) == 8
    greedy = [widgets.bait_objective(emb, picks[:m], fisher, 1.0) for m in range(1, 9)]
    assert all(b < a for a, b in zip(greedy, greedy[1:]))  # every pick lowers the objective
    rng = np.random.default_rng(0)
    randoms = [widgets.bait_objective(emb, rng.permutation(len(x))[:8], fisher, 1.0) for _ in range(20)]
    assert greedy[-1] < np.mean(randoms)
    # the first pick is the single point with the lowest objective (brute force)
    singles = [widgets.bait_objective(emb, [i], fisher, 1.0) for i in range(len(x))]
    assert picks[0] == int(np.argmin(singles))


def test_draw_functions_return_figures(toy):
    x, y, model = toy
    diag = fisher_diagonal(model, x)
    figures = [
        widgets.draw_fisher_map(model, x, y, steps=20),
        widgets.draw_mask(diag, 0.2, model=model),
        widgets.draw_mask_vs_fraction(diag, model=model),
        widgets.draw_bait(model, x, y, batch_size=4, random_draws=3),
        widgets.draw_images(np.zeros((3, 1, 8, 8), np.uint8), [0, 1, 2], ["a", "b", "c"], ncols=2),
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figures)
    plt.close("all")


def test_layer_table_counts_mask_entries(toy):
    _, _, model = toy
    x, _ = widgets.toy_data(30, 3, seed=2)
    diag = fisher_diagonal(model, x)
    table = widgets.layer_table(diag)
    assert int(table["entries"].sum()) == sum(p.numel() for p in model.parameters())


def test_interactive_widgets_have_their_sliders(toy):
    x, y, model = toy
    live = widgets.interactive_bait(model, x, y, batch_size=3)
    assert {c.description for c in live.children[:-1]} == {"batch size", "λ"}
    live = widgets.interactive_mask(fisher_diagonal(model, x), model=model, fraction=0.1)
    assert {c.description for c in live.children[:-1]} == {"fraction", "method"}
    plt.close("all")


def test_toy_data_is_seeded():
    a, _ = widgets.toy_data(20, seed=3)
    b, _ = widgets.toy_data(20, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, widgets.toy_data(20, seed=4)[0])
