import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fmlib.analysis import plots  # noqa: E402
from fmlib.analysis.sensitivity import (  # noqa: E402
    chance_jaccard,
    class_sensitivity,
    fisher_by_layer,
    fisher_over_rounds,
    global_mask_indices,
    jaccard,
    layer_mask_share,
    layer_share_summary,
    mask_overlap,
    mask_overlap_matrix,
    over_runs,
    picked_samples,
    sensitivity_summary,
    top_sensitive_samples,
)
from fmlib.records import RunDirectory, RunRecords, fisher_snapshot  # noqa: E402
from fmlib.records.snapshots import module_types  # noqa: E402
from fmlib.strategies import FisherReport  # noqa: E402

# Three parameters (a.weight [2, 3], a.bias [2], b.weight [4]); global flat index = position in
# their concatenation: a.weight 0-5, a.bias 6-7, b.weight 8-11.
SHAPES = {"a.weight": (2, 3), "a.bias": (2,), "b.weight": (4,)}
DIAG = {
    "a.weight": torch.arange(6.0).view(2, 3),
    "a.bias": torch.tensor([10.0, 0.0]),
    "b.weight": torch.ones(4),
}
MASKS = {  # round -> name -> flat indices in the mask
    0: {"a.weight": [0, 1, 2], "b.weight": [0]},  # global {0, 1, 2, 8}
    1: {"a.weight": [1, 2], "a.bias": [0], "b.weight": [0]},  # global {1, 2, 6, 8}
    2: {"a.weight": [0, 1, 2], "b.weight": [0]},
}
PICKS = {0: ([5, 7], [1, 0], [3.0, 1.0]), 1: ([2, 9], [1, 1], [5.0, 0.5]), 2: ([4], [0], [2.0])}


def snapshots():
    out = {}
    for r, chosen in MASKS.items():
        mask = {n: torch.zeros(s, dtype=torch.bool) for n, s in SHAPES.items()}
        for name, idx in chosen.items():
            mask[name].view(-1)[idx] = True
        picked, labels, scores = PICKS[r]
        report = FisherReport(DIAG, mask, picked_scores=np.array(scores), fisher_trace=10.0 + r)
        out[r] = fisher_snapshot(report, picked, labels, round=r)
    return out


def test_jaccard_of_known_sets():
    assert jaccard(np.array([0, 1, 2, 8]), np.array([1, 2, 6, 8])) == pytest.approx(3 / 5)
    assert jaccard(np.array([], dtype=int), np.array([], dtype=int)) == 1.0
    assert jaccard(np.array([1]), np.array([2])) == 0.0
    assert global_mask_indices(snapshots()[1]).tolist() == [1, 2, 6, 8]


def test_mask_overlap_between_consecutive_rounds_and_the_first():
    overlap = mask_overlap(snapshots())
    assert overlap["round"].tolist() == [0, 1, 2] and overlap["mask_size"].tolist() == [4, 4, 4]
    np.testing.assert_allclose(overlap["jaccard_previous"], [np.nan, 0.6, 0.6])
    np.testing.assert_allclose(overlap["jaccard_first"], [1.0, 0.6, 1.0])
    matrix = mask_overlap_matrix(snapshots())
    np.testing.assert_allclose(matrix.to_numpy(), [[1, 0.6, 1], [0.6, 1, 0.6], [1, 0.6, 1]])


def brute_force_chance(sizes_a, sizes_b, numel) -> float:
    """Mean Jaccard over every pair of masks with the given counts per tensor (enumerated)."""
    from itertools import combinations, product

    starts = np.concatenate([[0], np.cumsum(numel)[:-1]])

    def masks(sizes):
        per_tensor = [
            [tuple(s + i for i in c) for c in combinations(range(n), k)]
            for s, n, k in zip(starts, numel, sizes)
        ]
        return [np.array(sorted(sum(choice, ())), dtype=int) for choice in product(*per_tensor)]

    values = [jaccard(a, b) for a in masks(sizes_a) for b in masks(sizes_b)]
    return float(np.mean(values))


@pytest.mark.parametrize(
    "sizes_a, sizes_b, numel",
    [
        ([2], [3], [6]),
        ([2, 1, 2], [1, 2, 0], [4, 3, 2]),
        ([3, 2, 0], [3, 1, 1], [5, 2, 3]),
        ([4, 1], [4, 2], [4, 3]),
    ],  # the last: a tensor both masks fill counts as shared
    ids=["one-tensor", "three-tensors", "an-empty-side", "a-full-tensor"],
)
def test_chance_jaccard_against_every_pair_of_random_masks(sizes_a, sizes_b, numel):
    expected = brute_force_chance(sizes_a, sizes_b, numel)
    assert chance_jaccard(sizes_a, sizes_b, numel) == pytest.approx(expected, rel=1e-12)


def test_chance_jaccard_against_a_simulation_of_large_masks():
    numel, sizes_a, sizes_b = [300, 40, 10], [30, 20, 10], [25, 10, 10]
    rng = np.random.default_rng(0)
    starts = np.concatenate([[0], np.cumsum(numel)[:-1]])

    def draw(sizes):
        return np.sort(
            np.concatenate(
                [s + rng.choice(n, k, replace=False) for s, n, k in zip(starts, numel, sizes)]
            )
        )

    values = [jaccard(draw(sizes_a), draw(sizes_b)) for _ in range(20000)]
    se = np.std(values) / np.sqrt(len(values))
    assert chance_jaccard(sizes_a, sizes_b, numel) == pytest.approx(np.mean(values), abs=4 * se)


def test_chance_jaccard_edges_and_bad_input():
    assert chance_jaccard([0, 0], [0, 0], [3, 4]) == 1.0  # two empty masks, as jaccard says
    assert chance_jaccard([3], [3], [3]) == 1.0
    with pytest.raises(ValueError, match="numel"):
        chance_jaccard([4], [1], [3])
    with pytest.raises(ValueError, match="one entry per tensor"):
        chance_jaccard([1, 1], [1], [3, 3])


def test_mask_overlap_carries_the_chance_overlap_of_each_pair():
    overlap = mask_overlap(snapshots())
    counts = {r: s["mask_count"] for r, s in snapshots().items()}
    numel = [6, 2, 4]
    assert np.isnan(overlap.loc[0, "chance_previous"])
    for r in (1, 2):
        expected = brute_force_chance(counts[r], counts[r - 1], numel)
        assert overlap.loc[r, "chance_previous"] == pytest.approx(expected)
        assert overlap.loc[r, "chance_first"] == pytest.approx(
            brute_force_chance(counts[r], counts[0], numel)
        )


def test_mask_overlap_carries_the_split_half_reference_and_nan_without_it():
    snaps = snapshots()
    assert np.isnan(mask_overlap(snaps)["split_jaccard"]).all()  # no split_half
    snaps[1] = dict(snaps[1], split_jaccard=np.float64(0.25))
    del snaps[2]["split_jaccard"]  # a snapshot without the field
    np.testing.assert_allclose(mask_overlap(snaps)["split_jaccard"], [np.nan, 0.25, np.nan])


def test_snapshots_record_module_types_and_older_ones_still_read():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3),
        torch.nn.BatchNorm2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 3, bias=False),
    )
    types = module_types(model)
    assert types == {
        "0.weight": "Conv2d",
        "0.bias": "Conv2d",
        "1.weight": "BatchNorm2d",
        "1.bias": "BatchNorm2d",
        "3.weight": "Linear",
    }
    typed = {
        r: fisher_snapshot(
            FisherReport(DIAG, {}, picked_scores=np.array([1.0]), fisher_trace=1.0),
            [0],
            [0],
            round=r,
            module_types={"a.weight": "Linear", "a.bias": "Linear"},
        )
        for r in (0, 1)
    }
    assert typed[0]["param_types"].tolist() == ["Linear", "Linear", ""]
    shares = layer_mask_share(typed)
    assert shares["layer_type"].tolist()[:3] == ["Linear", "Linear", ""]
    by_module = layer_mask_share(typed, by="module")
    assert by_module.set_index("layer").loc["a", "layer_type"].tolist() == ["Linear", "Linear"]
    assert layer_share_summary(shares).set_index("layer").loc["a.weight", "layer_type"] == "Linear"
    assert fisher_by_layer(typed)["layer_type"].tolist()[:2] == ["Linear", "Linear"]
    old = snapshots()  # written without module types
    assert "param_types" not in old[0]
    assert "layer_type" not in layer_mask_share(old) and "layer_type" not in fisher_by_layer(old)


def test_mask_overlap_refuses_different_models():
    snaps = snapshots()
    snaps[1] = dict(snaps[1], param_numel=np.array([6, 2, 5]))
    with pytest.raises(ValueError, match="different parameters"):
        mask_overlap(snaps)


def test_layer_share_by_parameter_and_module():
    shares = layer_mask_share(snapshots())
    r0 = shares[shares["round"] == 0].set_index("layer")
    assert list(r0.index) == ["a.weight", "a.bias", "b.weight"]
    np.testing.assert_allclose(r0["fraction"], [3 / 6, 0, 1 / 4])
    np.testing.assert_allclose(r0["share"], [3 / 4, 0, 1 / 4])
    assert shares.groupby("round")["share"].sum().tolist() == pytest.approx([1, 1, 1])
    modules = layer_mask_share(snapshots(), by="module")
    r1 = modules[modules["round"] == 1].set_index("layer")
    assert r1.loc["a", "numel"] == 8 and r1.loc["a", "in_mask"] == 3
    np.testing.assert_allclose(r1["fraction"], [3 / 8, 1 / 4])
    grouped = layer_mask_share(snapshots(), by=lambda name: "all")
    assert grouped["fraction"].tolist() == pytest.approx([4 / 12] * 3)
    with pytest.raises(ValueError, match="by must be"):
        layer_mask_share(snapshots(), by="block")


def test_layer_share_summary_over_rounds():
    summary = layer_share_summary(layer_mask_share(snapshots())).set_index("layer")
    assert summary.loc["a.bias", "fraction_mean"] == pytest.approx(0.5 / 3)
    assert summary.loc["a.bias", "rounds_in_mask"] == pytest.approx(1 / 3)
    assert (
        summary.loc["b.weight", "fraction_std"] == 0
        and summary.loc["b.weight", "rounds_in_mask"] == 1
    )


def test_fisher_over_rounds_and_by_layer():
    fisher = fisher_over_rounds(snapshots())
    assert fisher["fisher_trace"].tolist() == [10.0, 11.0, 12.0]
    assert fisher["fisher_total"].tolist() == [29.0] * 3
    assert fisher["fisher_masked"].tolist() == [4.0, 14.0, 4.0]  # round 1: 1 + 2 + 10 + 1
    np.testing.assert_allclose(fisher["masked_share"], [4 / 29, 14 / 29, 4 / 29])
    means = np.array([15 / 6, 5.0, 1.0])
    assert fisher["layer_cv"][0] == pytest.approx(means.std() / means.mean())
    layers = fisher_by_layer(snapshots())
    r0 = layers[layers["round"] == 0].set_index("layer")
    assert r0["fisher_sum"].tolist() == [15.0, 10.0, 4.0] and r0["fisher_max"].tolist() == [
        5.0,
        10.0,
        1.0,
    ]
    assert r0.loc["a.weight", "q50"] == pytest.approx(2.5) and r0[
        "fisher_share"
    ].sum() == pytest.approx(1)
    modules = fisher_by_layer(snapshots(), by="module")
    r0 = modules[modules["round"] == 0].set_index("layer")
    assert (
        r0.loc["a", "fisher_sum"] == 25 and r0.loc["a", "fisher_max"] == 10 and "q50" not in modules
    )
    assert r0.loc["a", "fisher_mean"] == pytest.approx(25 / 8)


def test_top_sensitive_samples_and_classes():
    classes = ["zero", "one"]
    samples = picked_samples(snapshots(), classes)
    assert len(samples) == 5 and samples["class"].tolist() == ["one", "zero", "one", "one", "zero"]
    top = top_sensitive_samples(snapshots(), k=2)
    assert top[["round", "pool_index", "label", "score", "rank"]].values.tolist() == [
        [1, 2, 1, 5.0, 1],
        [0, 5, 1, 3.0, 2],
    ]
    per_round = top_sensitive_samples(snapshots(), k=1, per_round=True)
    assert per_round["pool_index"].tolist() == [5, 2, 4] and per_round["rank"].tolist() == [1, 1, 1]
    by_class = class_sensitivity(snapshots(), classes).set_index(["round", "label"])
    assert (
        by_class.loc[(0, 1), "score_share"] == pytest.approx(0.75)
        and by_class.loc[(1, 1), "n_picked"] == 2
    )
    assert by_class.loc[(0, 0), "class"] == "zero"
    assert top_sensitive_samples({}, k=3).empty and mask_overlap({}).empty


def write_fake_run(path, strategy, seed):
    meta = {
        "config": {"strategy": strategy, "seed": seed},
        "schedule": [4, 6, 8, 10],
        "data": {"classes": ["zero", "one"]},
    }
    rows = [
        {
            "round": r,
            "n_labeled": 4 + 2 * r,
            "accuracy": 0.5 + 0.1 * r + 0.02 * seed,
            "balanced_accuracy": 0.5,
            "acc_0": 0.4,
            "acc_1": 0.6,
            "count_0": 2 + r,
            "count_1": 2 + r,
            "query_0": 1,
            "query_1": 1,
            "train_time": 0.1,
            "select_time": 0.2,
            "embed_time": 0.1,
        }
        for r in range(4)
    ]
    run = RunDirectory(path)
    run.write_meta(meta)
    run.write_records(RunRecords(meta, rows, [], path))
    for r, snap in snapshots().items():
        run.write_snapshot(r, snap)


def test_over_runs_adds_config_columns(tmp_path):
    for seed in (0, 1):
        write_fake_run(tmp_path / f"fm-{seed}", "fishermask", seed)
    frame = over_runs(mask_overlap, str(tmp_path / "*"))
    assert len(frame) == 6 and frame["seed"].tolist() == [0, 0, 0, 1, 1, 1]
    assert (frame["strategy"] == "fishermask").all()
    shares = over_runs(layer_mask_share, [tmp_path / "fm-0"], by="module")
    assert set(shares["layer"]) == {"a", "b"} and (shares["run"] == "fm-0").all()


@pytest.fixture
def no_leaked_figures():
    yield
    plt.close("all")


def test_plots_render_and_save(tmp_path, no_leaked_figures):
    from fmlib.records import load_runs

    for strategy in ("fishermask", "random"):
        for seed in (0, 1):
            write_fake_run(tmp_path / "runs" / f"{strategy}-{seed}", strategy, seed)
    runs = load_runs(str(tmp_path / "runs" / "*"))
    pattern = str(tmp_path / "runs" / "fishermask-*")
    figures = {
        "curves": plots.learning_curves(runs, errorbar="sd"),  # the bootstrap band is slow
        "per_class": plots.per_class_accuracy(runs[runs["run"] == "random-0"]),
        "histogram": plots.class_histogram(
            runs[runs["run"] == "random-0"], classes=["zero", "one"]
        ),
        "queries": plots.class_histogram(runs, kind="query"),
        "timings": plots.round_timings(runs),
        "overlap": plots.mask_overlap(over_runs(mask_overlap, pattern)),
        "matrix": plots.mask_overlap_matrix(mask_overlap_matrix(snapshots())),
        "share": plots.layer_share(over_runs(layer_mask_share, pattern)),
        "summary": plots.layer_share_summary(layer_share_summary(layer_mask_share(snapshots()))),
        "fisher": plots.fisher_over_rounds(over_runs(fisher_over_rounds, pattern)),
        "classes": plots.class_sensitivity(class_sensitivity(snapshots(), ["zero", "one"])),
        "top": plots.top_samples(top_sensitive_samples(snapshots(), k=3)),
    }
    written = plots.save_figure(figures.pop("curves"), tmp_path / "figures" / "curves")
    assert [p.name for p in written] == ["curves.png", "curves.svg"] and all(
        p.stat().st_size > 0 for p in written
    )
    for (
        name,
        fig,
    ) in figures.items():  # every figure draws (PNG only, small, to keep the test quick)
        (path,) = plots.save_figure(fig, tmp_path / "figures" / name, formats=("png",), dpi=40)
        assert path.stat().st_size > 0, name


def test_top_samples_shows_images_from_the_pool(tmp_path, no_leaked_figures):
    from fmlib.data import ImageData

    pool = ImageData(
        torch.randint(0, 255, (10, 1, 8, 8), dtype=torch.uint8),
        torch.arange(10) % 2,
        ["zero", "one"],
    )
    fig = plots.top_samples(top_sensitive_samples(snapshots(), k=3), pool=pool)
    assert len([ax for ax in fig.axes if ax.images]) == 3


def test_sensitivity_summary_of_known_snapshots():
    summary = sensitivity_summary(snapshots(), by="module")
    assert summary["rounds"] == 3 and summary["mask_size"] == 4
    assert (
        summary["jaccard_previous_mean"] == pytest.approx(0.6)
        and summary["jaccard_last_first"] == 1.0
    )
    # mask share per module: a holds 3/4, 3/4, 3/4 of the mask, b 1/4 in every round
    assert summary["top_layers"] == pytest.approx({"a": 0.75, "b": 0.25})
    total, masked = sum(DIAG[n].sum().item() for n in DIAG), {0: 3 + 1, 1: 3 + 10 + 1, 2: 3 + 1}
    assert summary["masked_share_mean"] == pytest.approx(sum(masked.values()) / 3 / total)
    json.dumps(summary)
    assert sensitivity_summary({}) == {"rounds": 0}
