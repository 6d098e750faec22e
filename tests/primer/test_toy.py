"""The primer's toy problem (fmlib.primer.toy): the BAIT demo's numbers, the figures, their titles
and labels."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fmlib import primer  # noqa: E402
from fmlib.fisher.embeddings import fisher_diagonal  # noqa: E402
from tests.primer.test_labels import label_boxes, overlapping  # noqa: E402


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
    # a log slider's value
    mask_titles = titles(primer.draw_mask(fisher_diagonal(model, x), 10**-0.3, model=model))
    bait_titles = titles(primer.draw_bait(model, x, y, batch_size=3, lamb=10**0.75, random_draws=2))
    assert any("(fraction 0.501)" in t for t in mask_titles), mask_titles
    assert any("(λ=5.62)" in t for t in bait_titles), bait_titles
    assert (
        primer.rounded(0.001) == "0.001"
        and primer.rounded(100.0) == "100"
        and primer.rounded(0.25) == "0.25"
    )
    plt.close("all")


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


def test_the_fisher_maps_share_one_fixed_colour_scale(toy):
    """Untrained and trained, both maps use the same log range, so concentration can be seen; the
    titles give the largest value and the brightest tenth's share."""
    x, y, model = toy
    scales = []
    for trained in (primer.train_toy(x, y, steps=0, seed=1), model):
        fig = primer.draw_fisher_map(trained, x, y, steps=20)
        meshes = [ax.collections[0] for ax in fig.axes[1:3]]
        scales += [(m.norm.vmin, m.norm.vmax) for m in meshes]
        assert all("brightest 10 % of the plane hold" in ax.get_title() for ax in fig.axes[1:3])
        plt.close(fig)
    assert set(scales) == {primer.toy.FISHER_SCALE}
    assert primer.concentration(torch.tensor([1.0] * 10)) == pytest.approx(0.1)
    assert primer.concentration(torch.tensor([91.0] + [1.0] * 9)) == pytest.approx(0.91)


@pytest.mark.parametrize("fraction", [0.05, 0.3])
def test_the_mask_rule_is_stated_as_fisher_mask_computes_it(toy, fraction):
    from fmlib.fisher.masks import fisher_mask

    x, _, model = toy
    diag = fisher_diagonal(model, x)
    numel, head = 371, 16 * 3 + 3
    size = fisher_mask(diag, fraction, model=model).size
    assert size == max(int(fraction * numel), head)  # the head alone when it fills the budget
    rest = size - head
    assert primer.mask_rule(diag, fraction, model=model) == (
        f"k = max(⌊{fraction}·{numel}⌋, head {head}) = {size}: head + top {rest} of "
        f"{numel - head} others"
    )
    fig = primer.draw_mask(diag, fraction, model=model)
    left = fig.axes[0]
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert "outside" in labels and "head.weight" in labels
    cut = [line for line in left.get_lines() if line.get_label().startswith("cut-off")]
    assert len(cut) == (1 if rest else 0)  # a cut-off line only when entries outside the head
    if rest:
        mask = fisher_mask(diag, fraction, model=model)
        kept = torch.cat([diag[n][mask[n]] for n in diag if not n.startswith("head.")])
        assert cut[0].get_ydata()[0] == pytest.approx(float(kept.min()))
    plt.close(fig)


def test_fishermask_picks_are_drawn_beside_baits(toy):
    x, y, model = toy
    mask, emb, _, picks = primer.fishermask_picks(model, x, 4, 1.0, 0.3)
    assert emb.shape == (len(x), 3, mask.size) and len(set(picks)) == 4
    fig = primer.draw_bait(model, x, y, batch_size=4, fraction=0.3, random_draws=2)
    assert fig.axes[0].get_title().startswith("BAIT picks 4")
    assert fig.axes[1].get_title().startswith("FisherMask picks 4")
    assert [t.get_text() for t in fig.axes[1].texts] == ["1", "2", "3", "4"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "class 0",
        "class 1",
        "class 2",
    ]
    plt.close(fig)
