"""Inputs that are dicts of tensors (token ids and attention masks, several features): one
:class:`DictBatch` per batch, which indexes, moves, casts and splits along the sample axis as a
tensor does, so the loop, ``fit``, the Fisher engines and the strategies take it where they take
a tensor.

The model gets the batch as its one argument and reads it by key (``batch["input_ids"]``); a
model whose ``forward`` takes the keys as keyword arguments (a Hugging Face model) goes through
:class:`fmlib.hf.KeywordModel`, which calls ``model(**batch)``. Every value holds the samples
along its first axis; items of different lengths must be padded by the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


class DictBatch:
    """``N`` samples as named tensors ``[N, ...]`` (same ``N`` under every key).

    ``batch[key]`` is a tensor; ``batch[index]`` (an int, slice, index tensor or array) the
    samples at ``index`` as a ``DictBatch``; ``len(batch)`` the number of samples; ``**batch``
    the keyword arguments ``key=tensor``.
    """

    def __init__(self, values: Mapping[str, torch.Tensor]):
        self.values = {
            str(k): v if isinstance(v, torch.Tensor) else torch.as_tensor(v)
            for k, v in values.items()
        }
        if not self.values:
            raise ValueError("a dict input needs at least one key")
        sizes = {k: len(v) if v.ndim else None for k, v in self.values.items()}
        if len(set(sizes.values())) != 1 or None in sizes.values():
            raise ValueError(
                f"a dict batch needs every value with the same number of samples first, got {sizes}"
            )

    def keys(self):
        return self.values.keys()

    def items(self):
        return self.values.items()

    def __len__(self) -> int:
        return len(next(iter(self.values.values())))

    def __getitem__(self, index):
        if isinstance(index, str):
            return self.values[index]
        if isinstance(index, int):
            index = slice(index, index + 1 or None)
        return DictBatch({k: v[index] for k, v in self.values.items()})

    def __contains__(self, key) -> bool:
        return key in self.values

    def __repr__(self) -> str:
        return f"DictBatch({self.describe()})"

    def describe(self) -> str:
        """``keys ['a', 'b'], shapes {'a': (2, 8), ...}``: what an error message names."""
        shapes = {k: tuple(v.shape) for k, v in self.values.items()}
        return f"keys {list(self.values)}, shapes {shapes}"

    @property
    def shape(self) -> torch.Size:
        """``[N]``: the sample axis (the keys have their own shapes: :meth:`describe`)."""
        return torch.Size([len(self)])

    @property
    def device(self) -> torch.device:
        return next(iter(self.values.values())).device

    def to(self, target) -> DictBatch:
        """On a device (every value), or in a float dtype (the floating values only: token ids
        stay integers)."""
        if isinstance(target, torch.dtype):
            return DictBatch(
                {k: v.to(target) if v.is_floating_point() else v for k, v in self.values.items()}
            )
        return DictBatch({k: v.to(target) for k, v in self.values.items()})

    def is_floating_point(self) -> bool:
        return any(v.is_floating_point() for v in self.values.values())

    def split(self, size: int) -> list[DictBatch]:
        return [self[start : start + size] for start in range(0, len(self), size)]

    def tree(self) -> dict[str, torch.Tensor]:
        """The values as a plain dict (what ``torch.func`` maps over)."""
        return dict(self.values)


def stack_inputs(xs: Sequence) -> torch.Tensor | DictBatch:
    """One batch from per-sample inputs: tensors stacked, or dicts stacked key by key."""
    if xs and isinstance(xs[0], Mapping):
        keys = list(xs[0])
        for i, x in enumerate(xs):
            if not isinstance(x, Mapping) or list(x) != keys:
                got = list(x) if isinstance(x, Mapping) else type(x).__name__
                raise ValueError(
                    f"data: dict inputs need the same keys in every item; item {i} has {got}, "
                    f"not {keys}"
                )
        try:
            return DictBatch({k: torch.stack([torch.as_tensor(x[k]) for x in xs]) for k in keys})
        except RuntimeError as err:
            raise ValueError(
                f"data: the values under each key must have one shape in every item (pad them): "
                f"{err}"
            ) from None
    return torch.stack([torch.as_tensor(x) for x in xs])


def as_batch(x):
    """A collated batch as fmlib works on it: a dict of tensors becomes a :class:`DictBatch`."""
    return DictBatch(x) if isinstance(x, Mapping) else x


def tree(x):
    """What ``torch.func.vmap`` maps over: a :class:`DictBatch` as a plain dict, a tensor as
    it is."""
    return x.tree() if isinstance(x, DictBatch) else x


def one_sample(xi):
    """A batch of one from one sample under ``vmap``: ``xi[None]``, key by key for a dict."""
    return DictBatch({k: v[None] for k, v in xi.items()}) if isinstance(xi, dict) else xi[None]
