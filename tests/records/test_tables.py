import json

import numpy as np
import pandas as pd
import pytest
import torch

from fmlib.records import (
    QUANTILES,
    RunDirectory,
    RunRecords,
    atomic_write,
    config_differences,
    export_runs,
    fisher_snapshot,
    git_commit,
    load_run,
    load_runs,
    load_snapshot,
    load_snapshots,
    snapshot_masks,
    write_json,
    write_results,
)
from fmlib.strategies import FisherReport
from tests.fakes import same_snapshot


def hand_info(seed=0):
    gen = torch.Generator().manual_seed(seed)
    diag = {
        "conv.weight": torch.rand(4, 1, 3, 3, generator=gen),
        "conv.bias": torch.rand(4, generator=gen),
        "head.weight": torch.rand(3, 4, generator=gen),
    }
    mask = {
        "conv.weight": torch.zeros(4, 1, 3, 3, dtype=torch.bool),
        "conv.bias": torch.zeros(4, dtype=torch.bool),
        "head.weight": torch.ones(3, 4, dtype=torch.bool),
    }
    mask["conv.weight"].view(-1)[[3, 17, 35]] = True
    return FisherReport(
        fisher_diag=diag, mask=mask, picked_scores=np.array([3.0, 2.0]), fisher_trace=1.5
    )


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "rounds.csv"
    path.write_text("old")

    def crash(f):
        f.write(b"half a fi")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "rounds.csv"
    ]
    write_json(tmp_path / "sub" / "a.json", {"x": np.int64(3), "y": (1, 2)})
    assert json.loads((tmp_path / "sub" / "a.json").read_text()) == {"x": 3, "y": [1, 2]}


def test_fisher_snapshot_is_compact_and_exact(tmp_path):
    info = hand_info()
    snap = fisher_snapshot(info, picked=[7, 2], labels=[1, 0], round=4)
    names = list(info.fisher_diag)
    assert snap["param_names"].tolist() == names and snap["param_numel"].tolist() == [36, 4, 12]
    assert snap["param_shapes"].tolist() == ["4x1x3x3", "4", "3x4"]
    assert snap["mask_count"].tolist() == [3, 0, 12] and snap["mask_size"] == 15
    np.testing.assert_allclose(snap["mask_fraction"], [3 / 36, 0, 1])
    for p, name in enumerate(names):
        d = info.fisher_diag[name].double().reshape(-1)
        m = info.mask[name].reshape(-1)
        np.testing.assert_allclose(snap["fisher_sum"][p], d.sum().item())
        np.testing.assert_allclose(snap["fisher_max"][p], d.max().item())
        np.testing.assert_allclose(snap["fisher_masked_sum"][p], d[m].sum().item())
        np.testing.assert_allclose(snap["fisher_quantiles"][p], np.quantile(d.numpy(), QUANTILES))
    assert snap["fisher_quantiles"].shape == (3, len(QUANTILES)) and "fisher_flat" not in snap
    assert snap["round"] == 4 and snap["fisher_trace"] == 1.5
    assert snap["picked_pool_index"].tolist() == [7, 2] and snap["picked_label"].tolist() == [1, 0]
    assert snap["picked_score"].tolist() == [3.0, 2.0]
    run = RunDirectory(tmp_path)
    run.write_snapshot(4, snap)
    again = load_snapshots(tmp_path)[4]
    assert same_snapshot(again, snap)
    masks = snapshot_masks(again)
    assert {n: m.tolist() for n, m in masks.items()} == {
        n: torch.nonzero(info.mask[n].reshape(-1)).reshape(-1).tolist() for n in names
    }


def test_fisher_snapshot_full_diagonal_and_parameter_mask(tmp_path):
    masks = pytest.importorskip("fmlib.fisher.masks")
    info = hand_info()
    info.mask = masks.ParameterMask(info.mask)
    snap = fisher_snapshot(info, picked=[1], labels=[0], round=0, full=True)
    flat = torch.cat([d.reshape(-1) for d in info.fisher_diag.values()]).numpy()
    np.testing.assert_array_equal(snap["fisher_flat"], flat.astype(np.float32))
    assert snap["mask_size"] == info.mask.size
    expected = {n: i.tolist() for n, i in info.mask.indices().items()}
    assert {n: i.tolist() for n, i in snapshot_masks(snap).items()} == expected


def test_snapshot_rejects_a_mask_over_unknown_parameters():
    info = hand_info()
    info.mask["other.weight"] = torch.ones(2, dtype=torch.bool)
    with pytest.raises(ValueError, match="other.weight"):
        fisher_snapshot(info, picked=[0], labels=[0], round=0)


def make_run(path, strategy, seed, n_rounds=3, finished=True):
    config = {
        "strategy": strategy,
        "seed": seed,
        "dataset": "fashion_mnist",
        "strategy_options": {"fraction": 0.01},
        "minority_classes": [0, 1],
    }
    meta = {"config": config, "schedule": [10, 15, 20, 25][: n_rounds + (0 if finished else 1)]}
    rows = [
        {
            "round": r,
            "n_labeled": 10 + 5 * r,
            "accuracy": 0.5 + 0.1 * r + 0.01 * seed,
            "balanced_accuracy": 0.5,
            "select_time": np.nan,
        }
        for r in range(n_rounds)
    ]
    records = RunRecords(meta, rows, [{"round": 0, "order": 0, "pool_index": 3, "label": 1}], path)
    run = RunDirectory(path)
    run.write_meta(meta)
    run.write_records(records)
    return records


def test_load_run_is_tidy_and_matches_the_records(tmp_path):
    records = make_run(tmp_path / "a", "entropy", 1)
    frame = load_run(tmp_path / "a")
    assert len(frame) == 3 and (frame["strategy"] == "entropy").all() and (frame["seed"] == 1).all()
    assert (frame["strategy_options.fraction"] == 0.01).all() and frame["minority_classes"][
        0
    ] == "[0, 1]"
    assert frame["run"][0] == "a" and frame["finished"].all()
    pd.testing.assert_frame_equal(frame, records.frame())
    assert frame["select_time"].isna().all()


def test_load_runs_globs_run_directories(tmp_path):
    for strategy in ("entropy", "random"):
        for seed in (0, 1):
            make_run(tmp_path / f"{strategy}-{seed}", strategy, seed, finished=seed == 0)
    (tmp_path / "notes").mkdir()
    frame = load_runs(str(tmp_path / "*"))
    assert len(frame) == 12 and sorted(frame["run"].unique()) == [
        "entropy-0",
        "entropy-1",
        "random-0",
        "random-1",
    ]
    assert frame.groupby("run")["finished"].first().to_dict() == {
        "entropy-0": True,
        "entropy-1": False,
        "random-0": True,
        "random-1": False,
    }
    assert len(load_runs(str(tmp_path / "*" / "config.json"))) == 12
    assert len(load_runs([tmp_path / "random-0"])) == 3
    with pytest.raises(FileNotFoundError):
        load_runs(str(tmp_path / "nothing*"))


def test_records_state_survives_a_safe_torch_load(tmp_path):
    records = make_run(tmp_path / "a", "bait", 0)
    run = RunDirectory(tmp_path / "a")
    run.save(records, {"labeled": torch.arange(5)})
    state = run.load_checkpoint()
    again = RunRecords.from_state(state["records"], tmp_path / "a")
    pd.testing.assert_frame_equal(again.rounds_frame(), records.rounds_frame())
    assert (
        again.meta == records.meta
        and again.finished
        and torch.equal(state["loop"]["labeled"], torch.arange(5))
    )


def test_config_differences_names_fields_and_ignores_neutral_ones():
    old = {"strategy": "bait", "seed": 0, "device": "cpu", "strategy_options": {"lamb": 1}}
    new = {
        "strategy": "bait",
        "seed": 1,
        "device": "cuda",
        "strategy_options": {"lamb": 1.0},
        "extra": 2,
    }
    assert config_differences(old, new, ignore=["device"]) == [
        "seed: 0 there, 1 here",
        "extra: <absent> there, 2 here",
    ]
    assert config_differences(old, dict(old)) == []


def test_git_commit_describes_this_checkout():
    info = git_commit()
    assert info is None or (
        len(info["commit"]) == 40 and isinstance(info["dirty"], (bool, type(None)))
    )
    assert git_commit("/") is None or isinstance(git_commit("/"), dict)


def test_load_snapshot_needs_no_pickle(tmp_path):
    snap = fisher_snapshot(hand_info(), picked=[0, 1], labels=[0, 0], round=1)
    RunDirectory(tmp_path).write_snapshot(1, snap)
    loaded = load_snapshot(tmp_path / "sensitivity" / "round_001.npz")
    assert loaded["param_names"].dtype.kind == "U"


def test_export_runs_copies_small_records_of_finished_runs(tmp_path):
    source = tmp_path / "runs"
    for name, finished in (("a", True), ("b", False)):
        records = make_run(source / name, "entropy", 0, finished=finished)
        write_results(source / name, records)  # an unfinished run's summary says so
        (source / name / "checkpoint.pt").write_bytes(b"large")
        (source / name / "sensitivity").mkdir()
        (source / name / "sensitivity" / "round_000.npz").write_bytes(b"npz")
    exported = export_runs(source, tmp_path / "results")
    assert exported == [tmp_path / "results" / "a"]
    names = sorted(
        p.relative_to(tmp_path / "results" / "a").as_posix()
        for p in exported[0].rglob("*")
        if p.is_file()
    )
    assert (
        "checkpoint.pt" not in names
        and "sensitivity/round_000.npz" in names
        and "results.json" in names
    )
    moved = [c for c in ("path",) if c in load_run(exported[0])]
    pd.testing.assert_frame_equal(
        load_run(exported[0]).drop(columns=moved), load_run(source / "a").drop(columns=moved)
    )
    assert len(export_runs(source, tmp_path / "all", finished_only=False)) == 2


def test_curve_area_is_the_trapezoid_mean_over_the_label_range():
    from fmlib.records.tables import curve_area

    # trapezoids (0.6 * 10 + 0.8 * 10) / 20; right-endpoint sums would give 0.8
    assert curve_area([0, 10, 20], [0.5, 0.7, 0.9]) == pytest.approx(0.7)
    assert curve_area([0, 10, 30], [0.5, 0.7, 0.9]) == pytest.approx((6 + 16) / 30)


@pytest.mark.parametrize("threads, mixed", [([2, 2, 2], False), ([1, 2, 2], True)])
def test_results_summary_says_whether_the_thread_count_changed(threads, mixed):
    from fmlib.records.tables import results_summary

    rows = [
        {"n_labeled": 6 + 3 * r, "accuracy": 0.5 + 0.1 * r, "balanced_accuracy": 0.5}
        for r in range(3)
    ]
    meta = {"schedule": [6, 9, 12], "torch_threads": threads}
    summary = results_summary(RunRecords(meta=meta, rounds=rows))
    assert summary["torch_threads"] == threads and summary["threads_mixed"] is mixed


def test_run_summary_reads_the_last_round_by_labels_and_averages_the_curve():
    from fmlib.records.tables import run_summary

    frame = pd.DataFrame(
        {
            "n_labeled": [20, 10, 30],
            "accuracy": [0.6, 0.4, 0.8],
            "balanced_accuracy": [0.5, 0.3, 0.7],
            "finished": [False, False, True],
        }
    )
    summary = run_summary(frame)
    assert summary["finished"] and summary["rounds"] == 3 and summary["n_labeled"] == 30
    assert summary["final_accuracy"] == 0.8 and summary["final_balanced_accuracy"] == 0.7
    assert summary["accuracy"] == [0.4, 0.6, 0.8]
    assert summary["n_labeled_per_round"] == [10, 20, 30]
    assert summary["auc"] == pytest.approx(0.6)
    assert run_summary(frame, metric="balanced_accuracy")["auc"] == pytest.approx(0.5)
    assert not run_summary(frame.assign(finished=[True, True, False]))["finished"]
    empty = run_summary(frame.iloc[:0])
    assert empty["rounds"] == 0 and not empty["finished"] and empty["n_labeled"] == 0


@pytest.mark.parametrize(
    "x, y, expected",
    [([], [], float("nan")), ([5], [0.3], 0.3), ([5, 5], [0.2, 0.4], 0.4), ([0, 2], [0, 1], 0.5)],
)
def test_curve_area_of_short_curves(x, y, expected):
    from fmlib.records.tables import curve_area

    got = curve_area(x, y)
    assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected)


@pytest.mark.parametrize(
    "meta, n_rounds, finished",
    [
        ({"schedule": [6, 9, 12]}, 3, True),
        ({"schedule": [6, 9, 12]}, 2, False),
        ({"schedule": []}, 0, False),
        ({}, 0, False),
        ({"schedule": [6, 9, 12], "stopped": {"round": 1}}, 2, True),
        ({"schedule": [6, 9, 12], "stopped": {"round": 1}}, 1, False),
        ({"schedule": [6, 9, 12], "stopped": {"round": 1}}, 3, True),
    ],
    ids=repr,
)
def test_is_finished_by_the_schedule_or_the_stopped_round(meta, n_rounds, finished):
    from fmlib.records.tables import is_finished

    assert is_finished(meta, n_rounds) is finished


def test_load_runs_leaves_smoke_runs_out_unless_asked(tmp_path):
    from fmlib.records.tables import is_smoke

    for name, smoke in (("real", False), ("smoke", True)):
        records = make_run(tmp_path / name, "entropy", 0)
        write_results(tmp_path / name, records, smoke=smoke)
    assert not is_smoke(tmp_path / "real") and is_smoke(tmp_path / "smoke")
    assert not is_smoke(tmp_path / "absent")
    assert load_runs(str(tmp_path / "*"))["run"].unique().tolist() == ["real"]
    both = load_runs(str(tmp_path / "*"), include_smoke=True)
    assert sorted(both["run"].unique()) == ["real", "smoke"] and len(both) == 6
    with pytest.raises(FileNotFoundError):
        load_runs([tmp_path / "smoke"])  # nothing but a smoke run


def test_a_run_matched_by_its_directory_and_its_config_json_is_loaded_once(tmp_path):
    make_run(tmp_path / "a", "entropy", 0)
    frame = load_runs([tmp_path / "a", tmp_path / "a" / "config.json"])
    assert len(frame) == 3 and frame["round"].tolist() == [0, 1, 2]


def test_results_summary_says_which_rule_stopped_the_run():
    from fmlib.records.tables import results_summary

    rows = [{"n_labeled": 6 + 3 * r, "accuracy": 0.5, "balanced_accuracy": 0.5} for r in range(2)]
    stopped = {"round": 1, "rule": "plateau"}
    meta = {"schedule": [6, 9, 12], "torch_threads": [1], "stopped": stopped}
    summary = results_summary(RunRecords(meta=meta, rounds=rows))
    assert summary["stopped"] == stopped and summary["finished"] and summary["rounds"] == 2
    del meta["stopped"]
    summary = results_summary(RunRecords(meta=meta, rounds=rows))
    assert "stopped" not in summary and not summary["finished"]


def test_the_package_exports_every_public_name_it_imports():
    import inspect

    import fmlib.records

    public = {
        n
        for n, v in vars(fmlib.records).items()
        if not n.startswith("_") and not inspect.ismodule(v)
    }
    assert set(fmlib.records.__all__) == public
    assert len(fmlib.records.__all__) == len(public)
