"""Sensitivity snapshots: compact arrays describing each Fisher-based selection of a run
(``sensitivity/round_XXX.npz``), kept as npz bytes in the records and the checkpoint so a damaged
file can be rebuilt."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from fmlib.records.files import SENSITIVITY
from fmlib.records.tables import RunRecords

QUANTILES = (0.5, 0.9, 0.99, 0.999)  # levels of the per-parameter Fisher quantiles in the snapshots


def module_types(model: torch.nn.Module) -> dict[str, str]:
    """Parameter name -> class name of the module that owns it (``features.0.weight`` ->
    ``Conv2d``), for :func:`fisher_snapshot`'s ``module_types``."""
    return {
        f"{prefix}.{name}" if prefix else name: type(module).__name__
        for prefix, module in model.named_modules()
        for name, _ in module.named_parameters(recurse=False)
    }


def fisher_snapshot(
    report,
    picked,
    labels,
    *,
    round: int,
    full: bool = False,
    quantiles=QUANTILES,
    module_types: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Compact arrays describing one Fisher-based selection (a ``round_XXX.npz``).

    Args:
        report: a :class:`~fmlib.strategies.FisherReport` (``strategy.report.fisher`` after
            ``select``): ``fisher_diag`` (name -> tensor), ``mask`` (name -> bool tensor, e.g. a
            :class:`~fmlib.fisher.masks.ParameterMask`), ``picked_scores`` (``[K]``, pick order),
            ``fisher_trace``, ``split_jaccard`` (NaN when not measured).
        picked: ``int [K]`` pool positions the strategy returned (pick order).
        labels: ``int [K]`` their labels.
        round: the round whose model computed the Fisher.
        full: also keep the whole Fisher diagonal (``fisher_flat``, float32, large).
        module_types: parameter name -> class name of its module (:func:`module_types`), kept
            as ``param_types`` (``""`` for a parameter it does not name); None: not kept.

    Returns:
        Parameter tables ``[P]`` (``param_names``, ``param_shapes``, ``param_numel``,
        ``param_types`` with ``module_types``,
        ``fisher_sum/mean/min/max``, ``fisher_masked_sum``, ``fisher_quantiles [P, Q]`` at
        ``quantile_levels [Q]``, ``mask_count``, ``mask_fraction``), the mask as flat indices per
        parameter (``mask_indices`` concatenated, parameter ``p`` owns
        ``mask_indices[mask_offsets[p]:mask_offsets[p + 1]]``), scalars ``round``,
        ``fisher_trace``, ``mask_size``, ``split_jaccard`` (the Jaccard of the masks of two
        halves of the Fisher sample; NaN unless FisherMask's ``split_half``), and the picked
        samples (``picked_pool_index``, ``picked_label``, ``picked_score``).
    """
    diag = {
        name: t.detach().to("cpu", torch.float64).reshape(-1)
        for name, t in report.fisher_diag.items()
    }
    mask = dict(report.mask)
    names = list(diag)
    unknown = sorted(set(mask) - set(names))
    if unknown:
        raise ValueError(f"mask has parameters without Fisher values: {unknown}")
    flat_masks = [
        mask[n].reshape(-1).to("cpu", torch.bool)
        if n in mask
        else torch.zeros(len(diag[n]), dtype=torch.bool)
        for n in names
    ]
    indices = [torch.nonzero(m).reshape(-1).numpy() for m in flat_masks]
    counts = np.array([len(i) for i in indices], dtype=np.int64)
    numel = np.array([len(diag[n]) for n in names], dtype=np.int64)
    levels = np.asarray(quantiles, dtype=np.float64)
    out = {
        "round": np.int64(round),
        "param_names": np.array(names, dtype=str),
        "param_shapes": np.array(
            ["x".join(map(str, report.fisher_diag[n].shape)) for n in names], dtype=str
        ),
        "param_numel": numel,
        "fisher_sum": np.array([diag[n].sum().item() for n in names]),
        "fisher_mean": np.array([diag[n].mean().item() if len(diag[n]) else np.nan for n in names]),
        "fisher_min": np.array([diag[n].min().item() if len(diag[n]) else np.nan for n in names]),
        "fisher_max": np.array([diag[n].max().item() if len(diag[n]) else np.nan for n in names]),
        "fisher_masked_sum": np.array([diag[n][m].sum().item() for n, m in zip(names, flat_masks)]),
        "quantile_levels": levels,
        "fisher_quantiles": np.stack(
            [np.quantile(diag[n].numpy(), levels) for n in names]
        ),  # [P, Q]
        "mask_count": counts,
        "mask_fraction": counts / np.maximum(numel, 1),
        "mask_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "mask_indices": np.concatenate(indices).astype(
            np.int32 if numel.max(initial=0) < 2**31 else np.int64
        ),
        "mask_size": np.int64(counts.sum()),
        "fisher_trace": np.float64(report.fisher_trace),
        "split_jaccard": np.float64(report.split_jaccard),
        "picked_pool_index": np.asarray(picked, dtype=np.int64),
        "picked_label": np.asarray(labels, dtype=np.int64),
        "picked_score": np.asarray(report.picked_scores, dtype=np.float64),
    }
    if module_types is not None:
        out["param_types"] = np.array([module_types.get(n, "") for n in names], dtype=str)
    if full:
        out["fisher_flat"] = torch.cat([diag[n] for n in names]).numpy().astype(np.float32)
    return out


def snapshot_bytes(snapshot: Mapping[str, np.ndarray]) -> bytes:
    """A snapshot as the bytes of its compressed ``.npz`` file."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **snapshot)
    return buffer.getvalue()


def load_snapshot(source) -> dict[str, np.ndarray]:
    """A ``round_XXX.npz`` (a path, or its bytes) as a dict of arrays (0-d arrays for the
    scalars)."""
    with np.load(
        io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False
    ) as z:
        return {k: z[k] for k in z.files}


def load_snapshots(run) -> dict[int, dict[str, np.ndarray]]:
    """All snapshots of a run (its directory, or its :class:`RunRecords`), by round (empty for
    non-Fisher strategies)."""
    if isinstance(run, RunRecords):
        return {r: load_snapshot(run.snapshots[r]) for r in sorted(run.snapshots)}
    files = sorted((Path(run) / SENSITIVITY).glob("round_*.npz"))
    return {int(f.stem.split("_")[1]): load_snapshot(f) for f in files}


def snapshot_masks(snapshot: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Parameter name -> sorted flat indices of its entries in the mask."""
    offsets = snapshot["mask_offsets"]
    return {
        str(n): snapshot["mask_indices"][offsets[p] : offsets[p + 1]]
        for p, n in enumerate(snapshot["param_names"])
    }
