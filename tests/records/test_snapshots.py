"""Sensitivity snapshots (fmlib.records.snapshots): the arrays of one Fisher selection, computed
from a hand-built report, survive the npz bytes, and give back the mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmlib.records import RunRecords
from fmlib.records.snapshots import (
    fisher_snapshot,
    load_snapshot,
    load_snapshots,
    module_types,
    snapshot_bytes,
    snapshot_masks,
)
from fmlib.strategies import FisherReport
from tests.fakes import same_snapshot


def report() -> FisherReport:
    diag = {"body.weight": torch.arange(6.0).reshape(2, 3), "head.bias": torch.tensor([4.0, 1.0])}
    mask = {
        "body.weight": torch.tensor([[False, True, False], [False, False, True]]),
        "head.bias": torch.tensor([True, True]),
    }
    return FisherReport(
        fisher_diag=diag, mask=mask, picked_scores=np.array([3.0, 2.5]), fisher_trace=7.5
    )


def test_a_snapshot_holds_the_per_parameter_tables_the_mask_and_the_picks():
    snap = fisher_snapshot(report(), [9, 4], [1, 0], round=2)
    assert snap["param_names"].tolist() == ["body.weight", "head.bias"]
    assert snap["param_shapes"].tolist() == ["2x3", "2"] and snap["param_numel"].tolist() == [6, 2]
    assert snap["fisher_sum"].tolist() == [15.0, 5.0] and snap["fisher_max"].tolist() == [5.0, 4.0]
    assert snap["fisher_min"].tolist() == [0.0, 1.0] and snap["fisher_mean"].tolist() == [2.5, 2.5]
    assert snap["fisher_masked_sum"].tolist() == [1.0 + 5.0, 5.0]
    assert snap["mask_count"].tolist() == [2, 2] and snap["mask_size"] == 4
    assert snap["mask_fraction"].tolist() == pytest.approx([2 / 6, 1.0])
    assert snap["fisher_quantiles"].shape == (2, 4)
    assert snap["fisher_quantiles"][0, 0] == pytest.approx(np.quantile(np.arange(6.0), 0.5))
    assert {k: snapshot_masks(snap)[k].tolist() for k in snap["param_names"]} == {
        "body.weight": [1, 5],
        "head.bias": [0, 1],
    }
    assert snap["picked_pool_index"].tolist() == [9, 4] and snap["picked_label"].tolist() == [1, 0]
    assert snap["picked_score"].tolist() == [3.0, 2.5] and snap["round"] == 2
    assert "fisher_flat" not in snap
    full = fisher_snapshot(report(), [9, 4], [1, 0], round=2, full=True)
    assert full["fisher_flat"].tolist() == [0, 1, 2, 3, 4, 5, 4, 1]


def test_a_parameter_outside_the_mask_counts_none_and_an_unknown_one_is_refused():
    partial = report()
    del partial.mask["head.bias"]
    assert fisher_snapshot(partial, [], [], round=0)["mask_count"].tolist() == [2, 0]
    partial.mask["tail.weight"] = torch.ones(1, dtype=torch.bool)
    with pytest.raises(
        ValueError, match=r"mask has parameters without Fisher values: \['tail.weight'\]"
    ):
        fisher_snapshot(partial, [], [], round=0)


def test_a_snapshot_survives_its_npz_bytes_and_a_file(tmp_path):
    snap = fisher_snapshot(report(), [9, 4], [1, 0], round=1)
    data = snapshot_bytes(snap)
    (tmp_path / "sensitivity").mkdir()
    (tmp_path / "sensitivity" / "round_001.npz").write_bytes(data)
    for loaded in (load_snapshot(data), load_snapshot(tmp_path / "sensitivity" / "round_001.npz")):
        assert same_snapshot(loaded, snap)
    assert list(load_snapshots(tmp_path)) == [1]
    assert list(load_snapshots(RunRecords({}, snapshots={3: data}))) == [3]


def test_module_types_name_each_parameter_s_module_and_the_snapshot_keeps_them():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2, 3))
    assert module_types(model) == {
        "0.weight": "Conv2d",
        "0.bias": "Conv2d",
        "2.weight": "Linear",
        "2.bias": "Linear",
    }
    assert module_types(torch.nn.Linear(2, 3)) == {"weight": "Linear", "bias": "Linear"}
    snap = fisher_snapshot(report(), [9, 4], [1, 0], round=2, module_types={"head.bias": "Linear"})
    assert snap["param_types"].tolist() == ["", "Linear"]  # body.weight is not named
    assert "param_types" not in fisher_snapshot(report(), [9, 4], [1, 0], round=2)
