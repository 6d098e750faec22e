"""The data types a run works on: :class:`ImageData` (images in memory), :class:`DatasetData`
(any torch ``Dataset``), :class:`ALData` (a pool and a test set), and batches of any input form.

Images are kept in memory as ``uint8`` tensors ``[N, C, H, W]`` (FashionMNIST is 47 MB,
CIFAR-10 150 MB) and turned into normalised ``float32`` batches on demand, which on a
CPU is much faster than a per-item ``DataLoader``. The built-in datasets, imbalanced pools and
initial labeled sets are :mod:`fmlib.datasets`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fmlib.inputs import DictBatch, as_batch, stack_inputs


class _Labeled:
    """What every data type shares: ``labels`` (int64 ``[N]``) and ``classes`` (names) give the
    length, the number of classes and class counts."""

    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self, indices=None) -> np.ndarray:
        """Samples per class ``int [num_classes]`` among ``indices`` (all when ``None``)."""
        labels = (
            self.labels
            if indices is None
            else self.labels[torch.as_tensor(np.asarray(indices), dtype=torch.long)]
        )
        return np.bincount(labels.numpy(), minlength=self.num_classes)


@dataclass
class ImageData(_Labeled):
    """A labelled image set held in memory.

    Attributes:
        images: ``uint8 [N, C, H, W]``.
        labels: ``int64 [N]``, values in ``0..len(classes)-1``.
        classes: class names.
        mean, std: per-channel normalisation applied by :meth:`inputs`.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    name: str = ""

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 [N, C, H, W], got {self.images.dtype}"
                f" {tuple(self.images.shape)}"
            )
        if self.labels.shape != (len(self.images),):
            raise ValueError(
                f"labels must have shape [{len(self.images)}], got {tuple(self.labels.shape)}"
            )
        self.labels = self.labels.long()

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.images.shape[1:])

    def inputs(self, indices=None, device=None) -> torch.Tensor:
        """Normalised ``float32 [n, C, H, W]`` for ``indices`` (all when ``None``)."""
        x = (
            self.images
            if indices is None
            else self.images[torch.as_tensor(indices, dtype=torch.long)]
        )
        x = x.to(device).float().div_(255.0)  # convert before scaling: uint8 arithmetic overflows
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def subset(self, indices, classes: list[str] | None = None) -> ImageData:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageData(
            self.images[idx],
            self.labels[idx],
            list(classes or self.classes),
            self.mean,
            self.std,
            self.name,
        )


class DatasetData(_Labeled):
    """Any torch ``Dataset`` of ``(x, y)`` items, seen through :class:`ImageData`'s interface
    (``inputs``, ``labels``, ``num_classes``, ``classes``, ``class_counts``, ``shape``, ``subset``).

    The labels are read once (a ``TensorDataset``'s directly, any other dataset item by item);
    inputs are read lazily, ``dataset[i][0]`` for the positions asked for, except for a
    ``TensorDataset``, whose input tensor is indexed directly. Inputs come back as given
    (no normalisation): the dataset's transforms are the user's.

    Args:
        dataset: a map-style ``Dataset`` whose items are ``(x, y, ...)`` with ``x`` a tensor
            (or array), or a dict of them, and ``y`` an integer class in ``0..C-1``, or dicts
            holding the class under ``label_key`` (the other keys are the input); a
            ``DataLoader``'s dataset is used. Dict inputs come in batches as
            :class:`~fmlib.inputs.DictBatch`.
        classes: class names; default ``["0", ..., "C-1"]`` with ``C = max(label) + 1``
            (pass them when a class may be absent, e.g. from a test set).
        name: recorded in the run's metadata.
        label_key: where a dict item holds its class.
    """

    def __init__(
        self, dataset, classes: list[str] | None = None, name: str = "", label_key: str = "label"
    ):
        if isinstance(dataset, DataLoader):
            dataset = dataset.dataset
        if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
            raise ValueError(
                "data must be a map-style torch Dataset of (x, y) items, got"
                f" {type(dataset).__name__}"
            )
        if len(dataset) == 0:
            raise ValueError("data: the dataset is empty")
        self.dataset, self.name, self.label_key = dataset, name or type(dataset).__name__, label_key
        tensors = (
            getattr(dataset, "tensors", None)
            if isinstance(dataset, torch.utils.data.TensorDataset)
            else None
        )
        if tensors is not None and len(tensors) < 2:
            raise ValueError("data: a TensorDataset needs two tensors (inputs, labels)")
        self._x = tensors[0] if tensors is not None else None
        try:
            y = (
                tensors[1]
                if tensors is not None
                else torch.as_tensor(
                    [int(_item(dataset, i, label_key)[1]) for i in range(len(dataset))]
                )
            )
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"data: the items must be (x, y) with an integer class y ({err})"
            ) from None
        if y.ndim != 1 or y.is_floating_point() or y.is_complex() or (len(y) and int(y.min()) < 0):
            raise ValueError(
                f"data: labels must be integer classes >= 0 [N], got {y.dtype} {tuple(y.shape)}"
            )
        self.labels = y.long()
        count = int(self.labels.max()) + 1
        self.classes = [str(c) for c in range(count)] if classes is None else list(classes)
        if count > len(self.classes):
            raise ValueError(
                f"data: labels reach {count - 1} but classes has {len(self.classes)} names"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one input."""
        return tuple(self.inputs([0]).shape[1:])

    def inputs(self, indices=None, device=None) -> torch.Tensor | DictBatch:
        """Inputs ``[n, ...]`` for ``indices`` (all when ``None``), on ``device``, as the dataset
        gives them (integer token ids stay integers); dict inputs as a
        :class:`~fmlib.inputs.DictBatch`."""
        idx = (
            torch.arange(len(self))
            if indices is None
            else torch.as_tensor(np.asarray(indices), dtype=torch.long)
        )
        if self._x is not None:
            x = self._x[idx]
        elif len(idx):
            x = stack_inputs([_item(self.dataset, int(i), self.label_key)[0] for i in idx])
        else:
            x = stack_inputs([_item(self.dataset, 0, self.label_key)[0]])[:0]
        return x.to(device)

    def subset(self, indices, classes: list[str] | None = None) -> DatasetData:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if self._x is not None:  # stays a TensorDataset: indexed directly
            part = torch.utils.data.TensorDataset(self._x[idx], self.labels[idx])
        else:
            part = torch.utils.data.Subset(self.dataset, idx.tolist())
        return DatasetData(part, list(classes or self.classes), self.name, self.label_key)


def _item(dataset, i: int, label_key: str = "label"):
    item = dataset[i]
    if isinstance(item, Mapping):
        if label_key not in item:
            raise ValueError(
                f"data: item {i} is a dict without the label key {label_key!r} "
                f"(keys {list(item)}); pass label_key= to DatasetData, or give (x, y) "
                "items"
            )
        return {k: v for k, v in item.items() if k != label_key}, item[label_key]
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise ValueError(f"data: item {i} is a {type(item).__name__}, not an (x, y) pair")
    return item


def as_data(data, classes: list[str] | None = None) -> ImageData | DatasetData:
    """``data`` with the interface the loop, ``fit`` and the strategies use: an :class:`ImageData`
    or :class:`DatasetData` as it is, any other ``Dataset`` (or a ``DataLoader``'s) wrapped in
    :class:`DatasetData`."""
    if isinstance(data, (ImageData, DatasetData)):
        return data
    if isinstance(data, (Dataset, DataLoader)):
        return DatasetData(data, classes)
    raise ValueError(
        "data must be an ImageData or a torch Dataset/DataLoader of (x, y) items, got"
        f" {type(data).__name__}"
    )


@dataclass
class ALData:
    """What an active-learning run works on: a pool (train) and a test set."""

    pool: ImageData | DatasetData
    test: ImageData | DatasetData

    @property
    def classes(self) -> list[str]:
        return self.pool.classes


def as_al_data(data) -> ALData:
    """An :class:`ALData` from an ``ALData`` or a ``(pool, test)`` pair of Datasets (or ImageData);
    both sets share the classes (``max(label) + 1`` over both, unless they carry names)."""
    if isinstance(data, ALData):
        pool, test = data.pool, data.test
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        pool, test = data
    else:
        raise ValueError(
            f"data must be an ALData or a (pool, test) pair of Datasets, got {type(data).__name__}"
        )
    if isinstance(pool, ImageData) and isinstance(test, ImageData):
        return ALData(pool, test)
    pool, test = as_data(pool), as_data(test)
    count = max(pool.num_classes, test.num_classes)
    if isinstance(pool, DatasetData) and pool.num_classes < count:
        pool.classes = pool.classes + [str(c) for c in range(pool.num_classes, count)]
    if isinstance(test, DatasetData) and test.num_classes != pool.num_classes:
        test.classes = list(pool.classes) if test.num_classes <= pool.num_classes else test.classes
    if pool.num_classes != test.num_classes:
        raise ValueError(
            f"data: the pool has {pool.num_classes} classes and the test set {test.num_classes}"
        )
    return ALData(pool, test)


# ----------------------------------------------------------------------------- batches


def iter_batches(inputs, batch_size: int, device=None) -> Iterator[torch.Tensor]:
    """Yield float input batches on ``device`` from any input form.

    ``inputs`` may be a float tensor ``[N, ...]`` (or a :class:`~fmlib.inputs.DictBatch`), an
    :class:`ImageData` (normalised
    on the fly) or :class:`DatasetData`, a ``Dataset`` whose items are ``x`` or ``(x, y, ...)``, or
    a ``DataLoader`` (its own batching is kept).
    """
    if isinstance(inputs, (torch.Tensor, DictBatch)):
        for start in range(0, len(inputs), batch_size):
            yield inputs[start : start + batch_size].to(device)
    elif isinstance(inputs, (ImageData, DatasetData)):
        for start in range(0, len(inputs), batch_size):
            yield inputs.inputs(range(start, min(start + batch_size, len(inputs))), device)
    elif isinstance(inputs, (DataLoader, Dataset)):
        loader = (
            inputs if isinstance(inputs, DataLoader) else DataLoader(inputs, batch_size=batch_size)
        )
        for batch in loader:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            yield as_batch(x).to(device)
    else:
        raise ValueError(
            "inputs must be a Tensor, ImageData, Dataset or DataLoader, got"
            f" {type(inputs).__name__}"
        )


def num_inputs(inputs) -> int:
    """Number of samples in any input form accepted by :func:`iter_batches`."""
    if isinstance(inputs, DataLoader):
        return len(inputs.dataset)
    return len(inputs)


def cache_dir() -> Path:
    """fmlib's cache folder, the one rule for every cache path: ``platformdirs.user_cache_dir``
    (``$XDG_CACHE_HOME/fmlib``, else ``~/.cache/fmlib`` on Linux; the platform's own elsewhere)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("fmlib", appauthor=False))
