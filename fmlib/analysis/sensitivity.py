"""How parameter sensitivity to samples evolves over AL rounds, from a run's snapshots.

Every function takes the snapshots of one run (a run directory, or ``{round: snapshot}`` as
:func:`fmlib.records.load_snapshots` returns) and returns a tidy DataFrame with a ``round``
column. :func:`over_runs` applies one of them to many runs and adds the runs' config columns
(strategy, seed, ...), for means and bands over seeds.

A snapshot of round ``r`` describes the selection made with the model trained in round ``r``:
its diagonal Fisher, its mask, and the batch it picked (which joins the labeled set in round
``r + 1``). "Layer" is a parameter tensor (``by="parameter"``), its module (``by="module"``:
``features.0.weight`` and ``features.0.bias`` are ``features.0``) or any ``name -> group``
function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import hypergeom

from fmlib.records import CONFIG, RunDirectory, load_snapshots, run_columns

Snapshots = Mapping[int, Mapping[str, np.ndarray]]


def as_snapshots(source) -> dict[int, Mapping[str, np.ndarray]]:
    """``{round: snapshot}`` from a run directory or a mapping, sorted by round."""
    snapshots = load_snapshots(source) if isinstance(source, (str, Path)) else source
    return {int(r): snapshots[r] for r in sorted(snapshots)}


def global_mask_indices(snapshot: Mapping[str, np.ndarray]) -> np.ndarray:
    """Sorted indices of the mask in the concatenation of all parameters (snapshot order)."""
    starts = np.concatenate([[0], np.cumsum(snapshot["param_numel"])[:-1]])
    offsets, flat = snapshot["mask_offsets"], snapshot["mask_indices"].astype(np.int64)
    return np.concatenate(
        [flat[offsets[p] : offsets[p + 1]] + starts[p] for p in range(len(starts))]
    )


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """``|A ∩ B| / |A ∪ B|`` of two sets of unique indices (1.0 when both are empty)."""
    inter = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - inter
    return inter / union if union else 1.0


def chance_jaccard(sizes_a, sizes_b, numel) -> float:
    """Expected Jaccard of two independent random masks: mask A takes ``sizes_a[p]`` entries of
    parameter tensor ``p`` (of ``numel[p]``) uniformly at random, mask B ``sizes_b[p]``.

    The overlap in tensor ``p`` is hypergeometric; the total overlap ``I`` is their sum (the
    convolution of their distributions) and ``E[I / (|A| + |B| - I)]`` is summed over it exactly.
    With one tensor (``[P]``, ``[a]``, ``[b]``) it is the chance overlap of masks of the same total
    size anywhere in the network. 1.0 when both masks are empty, as :func:`jaccard`.
    """
    a, b, n = (np.atleast_1d(np.asarray(v, dtype=np.int64)) for v in (sizes_a, sizes_b, numel))
    if not (a.shape == b.shape == n.shape):
        raise ValueError(
            f"sizes_a, sizes_b and numel must have one entry per tensor, got shapes "
            f"{a.shape}, {b.shape}, {n.shape}"
        )
    if (a < 0).any() or (b < 0).any() or (a > n).any() or (b > n).any():
        raise ValueError("sizes_a and sizes_b must lie in [0, numel] for every tensor")
    total_a, total_b = int(a.sum()), int(b.sum())
    if total_a + total_b == 0:
        return 1.0
    pmf, shift = np.ones(1), 0
    for ai, bi, ni in zip(a, b, n):
        low, high = max(0, ai + bi - ni), min(ai, bi)
        if low == high:  # a tensor that one mask fills (or leaves empty) overlaps by a fixed count
            shift += int(low)
            continue
        k = np.arange(low, high + 1)
        pmf = np.convolve(pmf, hypergeom.pmf(k, ni, ai, bi))
        shift += int(low)
    overlap = shift + np.arange(len(pmf))
    return float(np.sum(pmf * overlap / (total_a + total_b - overlap)) / pmf.sum())


def _same_parameters(snapshots: Snapshots) -> None:
    names = {
        tuple(s["param_names"].tolist()) + tuple(s["param_numel"].tolist())
        for s in snapshots.values()
    }
    if len(names) > 1:
        raise ValueError(
            "snapshots cover different parameters; masks of different models cannot be compared"
        )


def mask_overlap(source) -> pd.DataFrame:
    """Mask overlap between rounds, beside what chance gives.

    Returns:
        One row per round: ``mask_size``, ``jaccard_previous`` (with the previous snapshot's
        mask, NaN for the first), ``jaccard_first`` (with the first snapshot's, normally round 0),
        and ``chance_previous``, ``chance_first``: the expected Jaccard of random masks with the
        same number of entries in every parameter tensor (:func:`chance_jaccard`; a tensor the
        mask always fills, such as the head, counts as shared), and ``split_jaccard``: the
        Fisher-sampling noise reference, the Jaccard of the masks the same rule picks from two
        disjoint halves of that round's Fisher sample (FisherMask's ``split_half``; NaN in
        snapshots made without it).
    """
    snapshots = as_snapshots(source)
    _same_parameters(snapshots)
    masks = {r: global_mask_indices(s) for r, s in snapshots.items()}
    rounds = list(masks)
    first = snapshots[rounds[0]] if rounds else None

    def chance(s, t):
        return chance_jaccard(s["mask_count"], t["mask_count"], s["param_numel"])

    rows = []
    for i, r in enumerate(rounds):
        snap, previous = snapshots[r], snapshots[rounds[i - 1]] if i else None
        rows.append(
            {
                "round": r,
                "mask_size": len(masks[r]),
                "jaccard_previous": jaccard(masks[r], masks[rounds[i - 1]]) if i else np.nan,
                "jaccard_first": jaccard(masks[r], masks[rounds[0]]),
                "chance_previous": chance(snap, previous) if i else np.nan,
                "chance_first": chance(snap, first),
                "split_jaccard": float(snap["split_jaccard"])
                if "split_jaccard" in snap
                else np.nan,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "round",
            "mask_size",
            "jaccard_previous",
            "jaccard_first",
            "chance_previous",
            "chance_first",
            "split_jaccard",
        ],
    )


def mask_overlap_matrix(source) -> pd.DataFrame:
    """Jaccard of every pair of rounds' masks: a square DataFrame indexed by round on both axes."""
    snapshots = as_snapshots(source)
    _same_parameters(snapshots)
    masks = {r: global_mask_indices(s) for r, s in snapshots.items()}
    values = [[jaccard(masks[a], masks[b]) for b in masks] for a in masks]
    return pd.DataFrame(
        values,
        index=pd.Index(list(masks), name="round"),
        columns=pd.Index(list(masks), name="round"),
    )


def _grouper(by) -> Callable[[str], str]:
    if callable(by):
        return by
    if by == "parameter":
        return lambda name: name
    if by == "module":
        return lambda name: name.rsplit(".", 1)[0] if "." in name else name
    raise ValueError(f"by must be 'parameter', 'module' or a function, got {by!r}")


def _with_types(frame: pd.DataFrame, snap: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """``frame`` (one row per parameter, in snapshot order) with ``layer_type``, the class name
    of the module that owns each parameter, when the snapshot records it (``param_types``)."""
    if "param_types" in snap:
        frame.insert(1, "layer_type", [str(t) for t in snap["param_types"]])
    return frame


def _types_of_groups(types: pd.Series) -> str:
    """The module types of a layer's parameters: one name, or the distinct ones joined by '/'."""
    return "/".join(dict.fromkeys(t for t in types if t))


def _group_layers(frame: pd.DataFrame, agg) -> pd.DataFrame:
    if "layer_type" in frame:
        agg = {"layer_type": _types_of_groups, **agg}
    return frame.groupby("layer", sort=False, as_index=False).agg(agg)


def layer_mask_share(source, by="parameter") -> pd.DataFrame:
    """Where the mask lives, per round and layer.

    Returns:
        Rows ``round, layer, numel, in_mask, fraction`` (share of the layer's entries inside the
        mask) and ``share`` (share of the mask inside the layer; sums to 1 over layers), layers
        in model order; with ``layer_type`` (the owning module's class, e.g. ``Conv2d``) after
        ``layer`` when the snapshots record module types (snapshots written before they did
        read the same, without the column).
    """
    group = _grouper(by)
    frames = []
    for r, snap in as_snapshots(source).items():
        names = [group(str(n)) for n in snap["param_names"]]
        frame = pd.DataFrame(
            {"layer": names, "numel": snap["param_numel"], "in_mask": snap["mask_count"]}
        )
        frame = _group_layers(_with_types(frame, snap), {"numel": "sum", "in_mask": "sum"})
        frame.insert(0, "round", r)
        frame["fraction"] = frame["in_mask"] / frame["numel"].clip(lower=1)
        frame["share"] = frame["in_mask"] / max(int(frame["in_mask"].sum()), 1)
        frames.append(frame)
    return _concat(frames, ["round", "layer", "numel", "in_mask", "fraction", "share"])


def layer_share_summary(shares: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over rounds of each layer's ``fraction`` and ``share`` (the paper's table),
    their 10 % and 90 % quantiles over rounds (``fraction_q10``, ...: a range within [0, 1]), and
    ``rounds_in_mask``: the fraction of rounds in which the layer has any entry in the mask;
    ``layer_type`` is kept when ``shares`` has it."""
    grouped = shares.groupby("layer", sort=False)
    out = grouped[["fraction", "share"]].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    for q in (0.1, 0.9):
        quantiles = grouped[["fraction", "share"]].quantile(q)
        for column in ("fraction", "share"):
            out[f"{column}_q{round(100 * q)}"] = quantiles[column]
    out["rounds_in_mask"] = grouped["in_mask"].apply(lambda s: float((s > 0).mean()))
    if "layer_type" in shares:
        out.insert(0, "layer_type", grouped["layer_type"].first())
    return out.reset_index()


def fisher_over_rounds(source) -> pd.DataFrame:
    """The Fisher's size and spread per round.

    Returns:
        Rows ``round, fisher_trace`` (the strategy's trace of the pool Fisher in the mask's
        subspace), ``fisher_total`` (sum of the diagonal over all parameters), ``fisher_masked``
        (sum over the mask), ``masked_share`` (= masked / total: how concentrated sensitivity
        is in the mask), ``mask_size``, ``fisher_max``, and ``layer_cv`` (coefficient of variation
        of the per-parameter-tensor mean Fisher: how unevenly sensitivity spreads over layers).
    """
    rows = []
    for r, snap in as_snapshots(source).items():
        total, masked, means = (
            float(snap["fisher_sum"].sum()),
            float(snap["fisher_masked_sum"].sum()),
            snap["fisher_mean"],
        )
        rows.append(
            {
                "round": r,
                "fisher_trace": float(snap["fisher_trace"]),
                "fisher_total": total,
                "fisher_masked": masked,
                "masked_share": masked / total if total > 0 else np.nan,
                "mask_size": int(snap["mask_size"]),
                "fisher_max": float(np.nanmax(snap["fisher_max"])),
                "layer_cv": float(np.nanstd(means) / np.nanmean(means))
                if np.nanmean(means) > 0
                else np.nan,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "round",
            "fisher_trace",
            "fisher_total",
            "fisher_masked",
            "masked_share",
            "mask_size",
            "fisher_max",
            "layer_cv",
        ],
    )


def fisher_by_layer(source, by="parameter") -> pd.DataFrame:
    """Per round and layer: ``numel, fisher_sum, fisher_mean, fisher_max, fisher_masked_sum,
    fisher_share`` (of the round's total), plus ``q50, q90, ...`` quantiles when ``by="parameter"``
    (quantiles of a group of tensors cannot be rebuilt from theirs), and ``layer_type`` as in
    :func:`layer_mask_share`."""
    group = _grouper(by)
    frames = []
    for r, snap in as_snapshots(source).items():
        frame = _with_types(
            pd.DataFrame(
                {
                    "layer": [group(str(n)) for n in snap["param_names"]],
                    "numel": snap["param_numel"],
                    "fisher_sum": snap["fisher_sum"],
                    "fisher_max": snap["fisher_max"],
                    "fisher_masked_sum": snap["fisher_masked_sum"],
                }
            ),
            snap,
        )
        if by == "parameter":
            for level, column in zip(snap["quantile_levels"], snap["fisher_quantiles"].T):
                frame[f"q{100 * level:g}"] = column
        agg = {
            c: ("max" if c == "fisher_max" else "sum")
            for c in frame.columns
            if c not in ("layer", "layer_type") and c[0] != "q"
        }
        agg.update({c: "first" for c in frame.columns if c[0] == "q"})
        frame = _group_layers(frame, agg)
        frame.insert(0, "round", r)
        frame.insert(
            frame.columns.get_loc("numel") + 1,
            "fisher_mean",
            frame["fisher_sum"] / frame["numel"].clip(lower=1),
        )
        frame["fisher_share"] = frame["fisher_sum"] / frame["fisher_sum"].sum()
        frames.append(frame)
    return _concat(
        frames,
        ["round", "layer", "numel", "fisher_mean", "fisher_sum", "fisher_max", "fisher_masked_sum"],
    )


def picked_samples(source, classes: list[str] | None = None) -> pd.DataFrame:
    """Every picked sample with its sensitivity score ``||V(x)||_F²`` (Fisher strategies).

    Returns:
        Rows ``round, order`` (pick order), ``pool_index, label, score``, and ``class`` when
        ``classes`` (names by label) is given.
    """
    frames = []
    for r, snap in as_snapshots(source).items():
        frames.append(
            pd.DataFrame(
                {
                    "round": r,
                    "order": np.arange(len(snap["picked_pool_index"])),
                    "pool_index": snap["picked_pool_index"],
                    "label": snap["picked_label"],
                    "score": snap["picked_score"],
                }
            )
        )
    out = _concat(frames, ["round", "order", "pool_index", "label", "score"])
    if classes is not None:
        out["class"] = [classes[y] for y in out["label"]]
    return out


def top_sensitive_samples(
    source, k: int = 10, *, per_round: bool = False, classes=None
) -> pd.DataFrame:
    """The ``k`` picked samples the masked parameters are most sensitive to (largest score), over
    the whole run or in every round (``per_round``), with a ``rank`` (1 = largest)."""
    samples = picked_samples(source, classes)
    if samples.empty:
        return samples.assign(rank=pd.Series(dtype=np.int64))
    ordered = samples.sort_values(
        ["score", "round", "order"], ascending=[False, True, True], kind="stable"
    )
    if per_round:
        top = ordered.groupby("round", sort=True, group_keys=False).head(k)
        top = top.sort_values(["round", "score"], ascending=[True, False], kind="stable")
        top["rank"] = top.groupby("round").cumcount() + 1
    else:
        top = ordered.head(k).copy()
        top["rank"] = np.arange(1, len(top) + 1)
    return top.reset_index(drop=True)


def class_sensitivity(source, classes=None) -> pd.DataFrame:
    """Per round and class of the picked samples: ``n_picked``, ``score_sum``, ``score_mean`` and
    ``score_share`` (of the round's total score): which classes the mask is most sensitive to."""
    samples = picked_samples(source, classes)
    keys = ["round", "label"] + (["class"] if classes is not None else [])
    out = samples.groupby(keys, as_index=False).agg(
        n_picked=("score", "size"), score_sum=("score", "sum"), score_mean=("score", "mean")
    )
    out["score_share"] = out["score_sum"] / out.groupby("round")["score_sum"].transform("sum")
    return out


def sensitivity_summary(source, *, by="module", top: int = 3) -> dict:
    """Small JSON-able numbers of one run's snapshots: ``rounds``, mean ``mask_size``, mean Jaccard
    with the previous round's mask, Jaccard of the last round's mask with the first's, mean
    ``masked_share`` of the Fisher, and the ``top`` layers by mean share of the mask over rounds."""
    snapshots = as_snapshots(source)
    if not snapshots:
        return {"rounds": 0}
    overlap, fisher = mask_overlap(snapshots), fisher_over_rounds(snapshots)
    shares = layer_mask_share(snapshots, by=by).groupby("layer", sort=False)["share"].mean()
    return {
        "rounds": len(snapshots),
        "mask_size": float(overlap["mask_size"].mean()),
        "jaccard_previous_mean": float(overlap["jaccard_previous"].mean())
        if len(overlap) > 1
        else float("nan"),
        "jaccard_last_first": float(overlap["jaccard_first"].iloc[-1]),
        "masked_share_mean": float(fisher["masked_share"].mean()),
        "top_layers": {
            str(k): float(v) for k, v in shares.sort_values(ascending=False).head(top).items()
        },
    }


def over_runs(func: Callable[..., pd.DataFrame], runs, **kwargs) -> pd.DataFrame:
    """``func(run, **kwargs)`` for every run directory (a glob pattern or an iterable of paths),
    concatenated, with each run's config columns (``run``, ``strategy``, ``seed``, ...) in front.
    Runs without snapshots are skipped."""
    if isinstance(runs, (str, Path)):
        import glob

        runs = sorted(glob.glob(str(runs)))
    frames = []
    for run in _run_dirs(runs):
        if not load_snapshots(run):
            continue
        frame = func(run, **kwargs)
        columns = run_columns(RunDirectory(run).read_meta(), run)
        frames.append(
            pd.concat(
                [
                    pd.DataFrame(
                        {k: [v] * len(frame) for k, v in columns.items()}, index=frame.index
                    ),
                    frame,
                ],
                axis=1,
            )
        )
    if not frames:
        raise FileNotFoundError(f"no run with sensitivity snapshots in {runs!r}")
    return pd.concat(frames, ignore_index=True)


def _run_dirs(paths: Iterable) -> list[Path]:
    dirs = [Path(p).parent if Path(p).name == CONFIG else Path(p) for p in paths]
    return [d for d in dict.fromkeys(dirs) if (d / CONFIG).is_file()]


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
