"""Dict inputs (fmlib.inputs): a DictBatch indexes, moves, casts and splits along the sample axis
as a tensor does; per-sample dicts stack key by key, and mismatched ones are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmlib.inputs import DictBatch, as_batch, one_sample, stack_inputs, tree


def batch(n: int = 5) -> DictBatch:
    ids = torch.arange(n * 4).reshape(n, 4)  # token ids: integers that must stay integers
    return DictBatch({"input_ids": ids, "weights": torch.linspace(0, 1, n)})


def test_a_dict_batch_indexes_the_samples_as_a_tensor_does():
    b = batch()
    assert len(b) == 5 and b.shape == torch.Size([5]) and "weights" in b and "x" not in b
    assert torch.equal(b["input_ids"], torch.arange(20).reshape(5, 4))
    for index in (slice(1, 3), torch.tensor([4, 0]), np.array([2]), [3, 1]):
        expected = torch.arange(20).reshape(5, 4)[index]
        assert torch.equal(b[index]["input_ids"], expected) and len(b[index]) == len(expected)
    assert torch.equal(b[-1]["input_ids"], torch.arange(16, 20)[None])  # an int keeps the axis
    assert torch.equal(b[0]["weights"], torch.tensor([0.0]))
    assert [len(part) for part in b.split(2)] == [2, 2, 1]
    assert torch.equal(torch.cat([p["input_ids"] for p in b.split(2)]), b["input_ids"])


def test_a_float_dtype_casts_only_the_floating_values():
    cast = batch().to(torch.float64)
    assert cast["weights"].dtype == torch.float64 and cast["input_ids"].dtype == torch.int64
    assert (
        cast.is_floating_point()
        and not DictBatch({"ids": torch.zeros(2, 3, dtype=int)}).is_floating_point()
    )
    assert batch().to("cpu").device == torch.device("cpu")


def test_a_dict_batch_needs_keys_with_one_number_of_samples():
    with pytest.raises(ValueError, match="at least one key"):
        DictBatch({})
    with pytest.raises(ValueError, match=r"same number of samples first, got \{'a': 3, 'b': 2\}"):
        DictBatch({"a": torch.zeros(3), "b": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"got \{'a': None\}"):
        DictBatch({"a": torch.tensor(1.0)})
    assert (
        batch(2).describe()
        == "keys ['input_ids', 'weights'], shapes {'input_ids': (2, 4), 'weights': (2,)}"
    )


def test_per_sample_dicts_stack_key_by_key_and_tensors_stack():
    items = [{"ids": [i, i + 1], "mask": [1, 0]} for i in range(3)]
    stacked = stack_inputs(items)
    assert isinstance(stacked, DictBatch) and stacked["ids"].tolist() == [[0, 1], [1, 2], [2, 3]]
    assert stack_inputs([torch.zeros(2), torch.ones(2)]).tolist() == [[0, 0], [1, 1]]
    with pytest.raises(ValueError, match=r"item 1 has \['ids'\], not \['ids', 'mask'\]"):
        stack_inputs([items[0], {"ids": [0, 1]}])
    with pytest.raises(ValueError, match=r"item 1 has list"):
        stack_inputs([items[0], [0, 1]])
    with pytest.raises(ValueError, match="one shape in every item \\(pad them\\)"):
        stack_inputs([{"ids": [0, 1]}, {"ids": [0, 1, 2]}])


def test_a_collated_dict_becomes_a_batch_and_vmap_sees_a_plain_dict():
    collated = {"ids": torch.zeros(4, 2)}
    assert isinstance(as_batch(collated), DictBatch) and as_batch(torch.zeros(2)).shape == (2,)
    assert tree(as_batch(collated)) == collated and tree(torch.zeros(1)).shape == (1,)
    one = one_sample({"ids": torch.zeros(2)})
    assert isinstance(one, DictBatch) and one["ids"].shape == (1, 2)
    assert one_sample(torch.zeros(3)).shape == (1, 3)
