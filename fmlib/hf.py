"""Hugging Face inputs: a ``datasets.Dataset`` as a pool or test set (:func:`from_hf`), and a model
whose ``forward`` takes keyword arguments (:class:`KeywordModel`). Needs the ``hf`` extra
(``pip install fmlib[hf]``) for ``datasets`` only.

Items are dicts of tensors (the ``columns``) with the class under ``label``; batches are
:class:`~fmlib.inputs.DictBatch`. Token ids must be padded to one length per column (a
tokenizer's ``padding="max_length"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from fmlib.data import DatasetData


class HFItems(Dataset):
    """A ``datasets.Dataset`` as a torch map-style Dataset of dict items (``columns`` and
    ``label``)."""

    def __init__(self, dataset, label: str, columns: Sequence[str]):
        self.dataset = dataset.with_format("torch", columns=[*columns, label])
        self.label, self.columns = label, list(columns)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return self.dataset[int(i)]


def from_hf(
    dataset,
    label: str = "label",
    columns: Sequence[str] | None = None,
    *,
    classes: list[str] | None = None,
    name: str = "",
) -> DatasetData:
    """A ``datasets.Dataset`` as fmlib data (what ``run_experiment(data=(pool, test))`` takes).

    Args:
        dataset: a ``datasets.Dataset`` (map-style, in memory or on disk).
        label: the column of integer classes.
        columns: the input columns (default: every column but ``label``); each becomes a key of
            the model's batch.
        classes: class names; default the ``label`` feature's names when it is a ``ClassLabel``.
        name: recorded in the run's metadata (default the dataset's ``info.dataset_name``).
    """
    names = list(getattr(dataset, "column_names", None) or [])
    if not names or not hasattr(dataset, "with_format"):
        raise ValueError(f"from_hf takes a datasets.Dataset, got {type(dataset).__name__}")
    if label not in names:
        raise ValueError(f"from_hf: no label column {label!r}; the columns are {names}")
    columns = [c for c in names if c != label] if columns is None else list(columns)
    missing = [c for c in columns if c not in names]
    if missing or not columns:
        raise ValueError(
            f"from_hf: columns {missing or columns} not in the dataset's columns {names}"
        )
    feature = getattr(dataset, "features", {}).get(label)
    if classes is None and getattr(feature, "names", None):
        classes = list(feature.names)
    info = getattr(dataset, "info", None)
    name = name or getattr(info, "dataset_name", None) or "datasets.Dataset"
    return DatasetData(HFItems(dataset, label, columns), classes, name, label_key=label)


class KeywordModel(nn.Module):
    """``model(**batch)`` for a model whose ``forward`` takes the input keys as keyword arguments
    (a Hugging Face model: ``input_ids=..., attention_mask=...``); its output's ``logits`` when it
    has them. ``embed`` and ``head`` are the wrapped model's, when it has them (``embed`` called
    with the keys as keywords too)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch) -> torch.Tensor:
        out = self.model(**batch)
        return out.logits if hasattr(out, "logits") else out

    def embed(self, batch) -> torch.Tensor:
        return self.model.embed(**batch)

    @property
    def head(self):
        return getattr(self.model, "head", None)
