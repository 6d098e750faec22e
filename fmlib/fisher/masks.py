"""Parameter masks: which entries of a model's parameters the gradient embeddings keep.

A :class:`ParameterMask` maps every trainable parameter name (``model.named_parameters()``
order) to a bool tensor shaped like the parameter. :func:`fisher_mask` builds one from a
diagonal Fisher (:func:`fmlib.fisher.embeddings.fisher_diagonal`) the way FisherMask does (FISH's
global top-k, the classifier head always in), or per layer, or at random (the ablation).

Entries are chosen by index, never by matching values, so ties break deterministically:
among equal Fisher values the lower flat index (named_parameters order, row-major inside a
tensor) wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

METHODS = ("global", "per_layer", "random")


class ParameterMask(Mapping):
    """Selected parameter entries: name -> bool tensor shaped like the parameter (on CPU).

    A read-only mapping in the model's parameter order. ``size`` is k, the number of
    selected entries; the gradient embedding of a sample is ``[C, k]``.
    """

    def __init__(self, masks: Mapping):
        self._masks = {
            name: torch.as_tensor(np.asarray(m), dtype=torch.bool).cpu()
            for name, m in masks.items()
        }
        if not self._masks:
            raise ValueError("a ParameterMask needs at least one parameter")

    @classmethod
    def full(cls, model: nn.Module, names=None) -> ParameterMask:
        """Every entry of the named trainable parameters (all of them when ``names`` is None).

        ``ParameterMask.full(model, head_names(model))`` is BAIT's last-layer embedding.
        """
        params = _trainable_shapes(model)
        chosen = set(params if names is None else names)
        unknown = sorted(chosen - set(params))
        if unknown:
            raise ValueError(f"names {unknown} are not trainable parameters of the model")
        return cls(
            {n: torch.full(shape, n in chosen, dtype=torch.bool) for n, shape in params.items()}
        )

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __iter__(self):
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def __eq__(self, other) -> bool:
        if not isinstance(other, ParameterMask):
            return NotImplemented
        return self.shapes() == other.shapes() and all(torch.equal(self[n], other[n]) for n in self)

    __hash__ = None

    def __repr__(self) -> str:
        used = sum(1 for c in self.counts().values() if c)
        return f"ParameterMask(size={self.size}, numel={self.numel}, tensors={used}/{len(self)})"

    @property
    def names(self) -> list[str]:
        """All parameter names the mask is defined on, in model order."""
        return list(self._masks)

    @property
    def size(self) -> int:
        """k: the number of selected entries."""
        return sum(self.counts().values())

    @property
    def numel(self) -> int:
        """Number of entries of all parameters together."""
        return sum(m.numel() for m in self._masks.values())

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: tuple(m.shape) for n, m in self._masks.items()}

    def counts(self) -> dict[str, int]:
        """Selected entries per parameter tensor."""
        return {n: int(m.sum()) for n, m in self._masks.items()}

    def fractions(self) -> dict[str, float]:
        """Fraction of each parameter tensor that is selected."""
        return {n: int(m.sum()) / m.numel() for n, m in self._masks.items()}

    def indices(self) -> dict[str, torch.Tensor]:
        """Flat (row-major) indices of the selected entries per parameter, ascending:
        ``int64 [k_p]``."""
        return {n: m.flatten().nonzero().squeeze(1) for n, m in self._masks.items()}

    def jaccard(self, other: ParameterMask) -> float:
        """``|A ∩ B| / |A ∪ B|`` of the selected entries (1.0 when both are empty)."""
        if self.shapes() != other.shapes():
            raise ValueError(
                "jaccard needs two masks over the same parameters (names and shapes differ)"
            )
        inter = sum(int((self[n] & other[n]).sum()) for n in self)
        union = sum(int((self[n] | other[n]).sum()) for n in self)
        return inter / union if union else 1.0

    def check(self, model: nn.Module) -> None:
        """Raise ``ValueError`` unless the mask covers exactly the model's trainable parameters."""
        check_shapes("mask", self.shapes(), _trainable_shapes(model))

    def to_dict(self) -> dict[str, np.ndarray]:
        """Plain ``bool`` numpy arrays, name -> array, in model order."""
        return {n: m.numpy().copy() for n, m in self._masks.items()}

    @classmethod
    def from_dict(cls, arrays: Mapping) -> ParameterMask:
        return cls(arrays)

    def save(self, path) -> None:
        """Write to ``.npz`` (numpy, compressed) or any other suffix (``torch.save`` of a dict)."""
        path = Path(path)
        if path.suffix == ".npz":
            arrays = {f"mask_{i}": m for i, m in enumerate(self.to_dict().values())}
            np.savez_compressed(path, names=np.array(self.names), **arrays)
        else:
            torch.save(dict(self._masks), path)

    @classmethod
    def load(cls, path) -> ParameterMask:
        path = Path(path)
        if path.suffix == ".npz":
            with np.load(path) as f:
                return cls({str(n): f[f"mask_{i}"] for i, n in enumerate(f["names"])})
        return cls(torch.load(path, weights_only=True))


def head_names(model: nn.Module | None = None, names=None) -> list[str]:
    """Names of the classifier head's parameters.

    With a model: the parameters of the ``model.head`` module (all fmlib models have one).
    Without: the names in ``names`` that start with ``"head."`` (fmlib's naming).
    """
    if model is not None:
        head = getattr(model, "head", None)
        if not isinstance(head, nn.Module):
            raise ValueError(
                f"model {type(model).__name__} has no `head` module; pass include_head=False"
            )
        ids = {id(p) for p in head.parameters()}
        return [n for n, p in model.named_parameters() if id(p) in ids and p.requires_grad]
    return [n for n in names if n.startswith("head.")]


def fisher_mask(
    fisher_diag: Mapping,
    fraction: float,
    *,
    method: str = "global",
    include_head: bool = True,
    model: nn.Module | None = None,
    seed: int = 0,
) -> ParameterMask:
    """Mask of the parameter entries with the largest diagonal Fisher.

    Args:
        fisher_diag: name -> Fisher values shaped like the parameter (``fisher_diagonal``).
        fraction: in (0, 1]. ``"global"`` and ``"random"`` select ``k = int(fraction * numel)``
            entries in all (at least the head's size when the head is included);
            ``"per_layer"`` selects ``int(fraction * numel_p)`` of every tensor ``p``.
        method: ``"global"`` (FisherMask/FISH: the head, then the global top of all other
            entries), ``"per_layer"`` (the top of each tensor), ``"random"`` (as many
            entries as ``"global"``, the non-head ones uniformly at random: the ablation).
        include_head: put every head entry in the mask (counted in k). The head is
            ``model.head`` when ``model`` is given, else the names starting with ``"head."``.
        model: checks that ``fisher_diag`` matches its trainable parameters, finds the head.
        seed: for ``"random"``.

    Returns:
        The mask, in the order of ``fisher_diag``. Ties go to the lower flat index.
    """
    check_mask_options(fraction, method)
    if not fisher_diag:
        raise ValueError("fisher_diag is empty")
    shapes = {n: tuple(v.shape) for n, v in fisher_diag.items()}
    if model is not None:
        check_shapes("fisher_diag", shapes, _trainable_shapes(model))
    values = {
        n: torch.as_tensor(v).detach().cpu().double().flatten() for n, v in fisher_diag.items()
    }
    bad = [n for n, v in values.items() if not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"fisher_diag has non-finite values in {bad}")
    head = set(head_names(model, list(values))) if include_head else set()
    if include_head and not head:
        raise ValueError(
            "include_head=True but no head parameters were found (no model given and no name starts"
            " with 'head.'); pass the model or include_head=False"
        )

    flat = {n: torch.zeros(v.numel(), dtype=torch.bool) for n, v in values.items()}
    for n in head:
        flat[n][:] = True
    rest = [n for n in values if n not in head]
    if method == "per_layer":
        for n in rest:
            flat[n][_top(values[n], int(fraction * values[n].numel()))] = True
    elif rest:
        total = sum(v.numel() for v in values.values())
        budget = max(int(fraction * total) - sum(values[n].numel() for n in head), 0)
        pooled = torch.cat([values[n] for n in rest])  # [numel of non-head]
        if method == "global":
            chosen = _top(pooled, budget)
        else:
            gen = torch.Generator().manual_seed(seed)
            chosen = torch.randperm(len(pooled), generator=gen)[:budget]
        hit = torch.zeros(len(pooled), dtype=torch.bool)
        hit[chosen] = True
        for n, part in zip(rest, hit.split([values[n].numel() for n in rest])):
            flat[n] = part
    mask = ParameterMask({n: flat[n].view(shapes[n]) for n in values})
    if mask.size == 0:
        raise ValueError(
            f"fraction={fraction} selects no entries of {mask.numel}; use a larger fraction"
        )
    return mask


def mask_size(
    model: nn.Module, fraction: float, *, method: str = "global", include_head: bool = True
) -> int:
    """Entries :func:`fisher_mask` keeps on ``model`` with these options (``k``, whatever the
    Fisher values): known before any Fisher is computed, to bound the memory of a mask."""
    check_mask_options(fraction, method)
    sizes = {n: int(math.prod(shape)) for n, shape in _trainable_shapes(model).items()}
    head = set(head_names(model)) if include_head else set()
    kept = sum(sizes[n] for n in head)
    if method == "per_layer":
        return kept + sum(int(fraction * size) for n, size in sizes.items() if n not in head)
    if len(head) == len(sizes):
        return kept
    return kept + max(int(fraction * sum(sizes.values())) - kept, 0)


def check_mask_options(fraction, method: str = "global") -> None:
    """``ValueError`` unless ``fraction`` is a number in (0, 1] and ``method`` one of
    :data:`METHODS`.

    The one check of both: :func:`fisher_mask` and the ``fishermask`` strategy (at construction,
    before any work) call it.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed values: {list(METHODS)}")
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not 0 < fraction <= 1
    ):
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")


def _top(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest values; ties go to the lower index (stable sort)."""
    return torch.argsort(values, descending=True, stable=True)[:k]


def _trainable_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}


def check_shapes(what: str, got: Mapping, expected: Mapping) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``got`` and ``expected`` (name -> shape)
    agree."""
    if dict(got) == dict(expected):
        return
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    differ = {
        n: (tuple(got[n]), tuple(expected[n]))
        for n in expected
        if n in got and got[n] != expected[n]
    }
    raise ValueError(
        f"{what} does not match the model's trainable parameters (from another model?): missing"
        f" {missing[:5]}, unexpected {extra[:5]}, shape (got, expected)"
        f" {dict(list(differ.items())[:5])}"
    )
