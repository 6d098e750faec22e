"""Parameter masks: the documented size rules, head inclusion, ties, seeding, Jaccard, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fmlib.fisher.masks import (
    METHODS,
    ParameterMask,
    _top,
    fisher_mask,
    head_names,
    mask_size,
)
from fmlib.models import build_model


class Net(nn.Module):
    """Two body layers and a head: 12 + 3 + 24 + 2 + 6 + 3 = 50 entries, head 9."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Conv2d(3, 2, 2, bias=True))
        self.head = nn.Linear(2, 3)

    def forward(self, x):  # never called: the masks only need names and shapes
        raise NotImplementedError


NET_NAMES = [
    "body.0.weight",
    "body.0.bias",
    "body.2.weight",
    "body.2.bias",
    "head.weight",
    "head.bias",
]
NET_NUMEL, NET_HEAD = 50, 9


def random_diag(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Distinct positive values (no ties) shaped like the trainable parameters."""
    gen = torch.Generator().manual_seed(seed)
    return {
        n: torch.rand(p.shape, generator=gen, dtype=torch.float64)
        for n, p in model.named_parameters()
    }


def non_head_values(diag, mask, selected: bool) -> torch.Tensor:
    return torch.cat([diag[n][mask[n] == selected] for n in diag if not n.startswith("head.")])


def expected_global_size(fraction, numel, head, include_head=True):
    """The documented rule: ``int(fraction * numel)`` entries, at least the head when it is
    included."""
    k = int(fraction * numel)
    return max(k, head) if include_head else k


# ----------------------------------------------------------------------------- size rules

# Floor, as documented: 0.58 * 50 is 28.999999999999996 in floating point, so k = 28 (round would
# give 29).
FRACTIONS = [0.01, 0.1, 0.3, 0.5, 0.58, 0.7, 0.99, 1.0]


@pytest.mark.parametrize("include_head", [True, False], ids=["head", "nohead"])
@pytest.mark.parametrize("method", ["global", "random"])
@pytest.mark.parametrize("fraction", FRACTIONS, ids=[f"f{f}" for f in FRACTIONS])
def test_global_and_random_sizes(fraction, method, include_head):
    model = Net()
    k = expected_global_size(fraction, NET_NUMEL, NET_HEAD, include_head)
    if k == 0:
        with pytest.raises(ValueError, match="fraction"):
            fisher_mask(
                random_diag(model), fraction, method=method, include_head=include_head, model=model
            )
        return
    mask = fisher_mask(
        random_diag(model), fraction, method=method, include_head=include_head, model=model
    )
    assert mask.size == k and mask.numel == NET_NUMEL
    if include_head:
        assert mask.counts()["head.weight"] == 6 and mask.counts()["head.bias"] == 3


@pytest.mark.parametrize(
    "name,options", [("cnn", {}), ("resnet18", {"width": 4})], ids=["cnn", "resnet18-w4"]
)
def test_global_size_on_the_real_models(name, options):
    model = build_model(name, 10, 1 if name == "cnn" else 3, **options)
    numel = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for p in model.head.parameters())
    diag = random_diag(model)
    for fraction in (0.001, 0.01, 0.1):
        for method in ("global", "random"):
            mask = fisher_mask(diag, fraction, method=method, model=model)
            assert mask.size == expected_global_size(fraction, numel, head)
            assert all(mask[n].all() for n in head_names(model))


@pytest.mark.parametrize("include_head", [True, False], ids=["head", "nohead"])
@pytest.mark.parametrize("fraction", [0.1, 0.34, 0.5, 1.0], ids=["f0.1", "f0.34", "f0.5", "f1"])
def test_per_layer_counts(fraction, include_head):
    model = Net()
    mask = fisher_mask(
        random_diag(model), fraction, method="per_layer", include_head=include_head, model=model
    )
    for name, p in model.named_parameters():
        expected = (
            p.numel() if include_head and name.startswith("head.") else int(fraction * p.numel())
        )
        assert mask.counts()[name] == expected, name
        assert mask.fractions()[name] == expected / p.numel()


@pytest.mark.parametrize("include_head", [True, False], ids=["head", "nohead"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fraction", FRACTIONS, ids=[f"f{f}" for f in FRACTIONS])
def test_mask_size_follows_the_size_rules_before_any_fisher(fraction, method, include_head):
    """k from the documented rules on Net (50 entries, head 9), not from a built mask."""
    model = Net()
    if method == "per_layer":
        sizes = {n: p.numel() for n, p in model.named_parameters()}
        expected = sum(
            size if include_head and n.startswith("head.") else int(fraction * size)
            for n, size in sizes.items()
        )
    else:
        expected = expected_global_size(fraction, NET_NUMEL, NET_HEAD, include_head)
    assert mask_size(model, fraction, method=method, include_head=include_head) == expected


def test_mask_size_of_a_model_that_is_all_head_is_the_head():
    model = nn.Module()
    model.head = nn.Linear(4, 3)  # 15 entries, every one in the head
    for method in METHODS:
        assert mask_size(model, 0.1, method=method) == 15
        # int(0.5 * 15) = 7 in all; per layer int(0.5 * 12) + int(0.5 * 3) = 6 + 1
        assert mask_size(model, 0.5, method=method, include_head=False) == 7


def test_fraction_one_selects_everything():
    model = Net()
    for method in METHODS:
        assert fisher_mask(random_diag(model), 1, method=method, model=model) == ParameterMask.full(
            model
        )


# ----------------------------------------------------------------------------- which entries


@pytest.mark.parametrize("fraction", [0.3, 0.5], ids=["f0.3", "f0.5"])
def test_global_takes_the_top_of_the_non_head_entries(fraction):
    model = Net()
    diag = random_diag(model, seed=5)
    mask = fisher_mask(diag, fraction, model=model)
    assert non_head_values(diag, mask, True).min() > non_head_values(diag, mask, False).max()


def test_global_without_head_competes_over_every_entry():
    model = Net()
    diag = random_diag(model, seed=6)
    diag["head.weight"] = diag["head.weight"] + 10  # the head wins on its values alone
    mask = fisher_mask(diag, 0.5, include_head=False, model=model)
    chosen = torch.cat([diag[n][mask[n]] for n in diag])
    rest = torch.cat([diag[n][~mask[n]] for n in diag])
    assert chosen.min() > rest.max() and mask["head.weight"].all() and mask.size == 25


def test_per_layer_takes_the_top_of_each_tensor():
    model = Net()
    diag = random_diag(model, seed=7)
    mask = fisher_mask(diag, 0.5, method="per_layer", model=model)
    for name in NET_NAMES[:4]:
        chosen, rest = diag[name][mask[name]], diag[name][~mask[name]]
        assert chosen.min() > rest.max(), name


def test_head_found_by_model_or_by_name():
    model = Net()
    diag = random_diag(model, seed=8)
    # names starting with "head."
    assert fisher_mask(diag, 0.3, model=model) == fisher_mask(diag, 0.3)
    assert head_names(model) == ["head.weight", "head.bias"] == head_names(names=NET_NAMES)


def test_frozen_parameters_are_not_in_head_or_mask():
    model = Net()
    model.head.bias.requires_grad_(False)
    diag = {n: v for n, v in random_diag(model).items() if n != "head.bias"}
    mask = fisher_mask(diag, 0.3, model=model)
    assert mask.names == NET_NAMES[:5] and head_names(model) == ["head.weight"]
    mask.check(model)


# ----------------------------------------------------------------------------- ties and determinism


def test_ties_go_to_the_lower_flat_index_in_parameter_order():
    # 12 entries; fraction 0.5 -> k = 6: the head (2), then 5, 3 and the first two 2s in order
    # (a[0,2], a[1,0])
    diag = {
        "a": torch.tensor([[3.0, 1.0, 2.0], [2.0, 0.0, 2.0]]),
        "b": torch.tensor([2.0, 5.0, 2.0, 0.0]),
        "head.weight": torch.zeros(2),
    }
    mask = fisher_mask(diag, 0.5)
    assert mask["a"].tolist() == [[True, False, True], [True, False, False]]
    assert mask["b"].tolist() == [False, True, False, False]


@pytest.mark.parametrize("method", ["global", "per_layer"])
def test_all_equal_values_pick_the_first_entries(method):
    diag = {"a": torch.ones(2, 3), "b": torch.ones(4), "head.bias": torch.ones(2)}  # 12 entries
    mask = fisher_mask(diag, 0.5, method=method)
    if method == "global":  # k = 6: the head, then a's first four entries (row-major)
        assert mask["a"].flatten().tolist() == [True] * 4 + [False] * 2 and not mask["b"].any()
    else:  # int(0.5 * 6) = 3 of a, int(0.5 * 4) = 2 of b, each from the start
        assert mask["a"].flatten().tolist() == [True] * 3 + [False] * 3
        assert mask["b"].tolist() == [True, True, False, False]


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_whatever_the_global_rng(method):
    model = Net()
    diag = random_diag(model, seed=9)
    torch.manual_seed(1)
    first = fisher_mask(diag, 0.3, method=method, model=model)
    torch.manual_seed(2)
    np.random.seed(2)
    assert fisher_mask(diag, 0.3, method=method, model=model) == first


def test_random_is_seeded_and_ignores_the_values():
    model = build_model("cnn", 10, 1)
    diag = random_diag(model)
    a, b = (
        fisher_mask(diag, 0.01, method="random", seed=0, model=model),
        fisher_mask(diag, 0.01, method="random", seed=1, model=model),
    )
    scaled = {n: v * 7 + 1 for n, v in diag.items()}
    assert a.size == b.size == fisher_mask(diag, 0.01, model=model).size
    assert a != b and a == fisher_mask(scaled, 0.01, method="random", seed=0, model=model)
    overlap = a.jaccard(b)
    head = sum(p.numel() for p in model.head.parameters())
    # only the head and chance in common
    assert overlap < 0.2 and overlap >= head / (2 * a.size - head)


def test_accepts_numpy_float32_and_device_tensors():
    model = Net()
    diag = random_diag(model, seed=3)
    ref = fisher_mask(diag, 0.3, model=model)
    assert fisher_mask({n: v.numpy() for n, v in diag.items()}, 0.3, model=model) == ref
    assert (
        fisher_mask({n: v.float().requires_grad_() for n, v in diag.items()}, 0.3, model=model)
        == ref
    )


def test_mask_follows_the_order_of_fisher_diag():
    model = Net()
    diag = random_diag(model)
    shuffled = {n: diag[n] for n in reversed(NET_NAMES)}
    mask = fisher_mask(shuffled, 0.3)
    assert mask.names == list(reversed(NET_NAMES))
    assert mask == fisher_mask(diag, 0.3)  # the same entries; equality ignores the order


# ----------------------------------------------------------------------------- ParameterMask


def two_masks():
    shapes = {"w": (2, 3), "b": (2,)}
    a = ParameterMask({"w": [[1, 1, 0], [0, 0, 0]], "b": [1, 0]})  # 3 selected
    # 4 selected; 2 in common, 5 in the union
    b = ParameterMask({"w": [[0, 1, 1], [0, 0, 0]], "b": [1, 1]})
    assert a.shapes() == b.shapes() == shapes
    return a, b


def test_mask_sizes_counts_fractions_indices():
    a, _ = two_masks()
    assert a.size == 3 and a.numel == 8 and len(a) == 2 and a.names == ["w", "b"]
    assert a.counts() == {"w": 2, "b": 1} and a.fractions() == {"w": 2 / 6, "b": 1 / 2}
    assert {n: i.tolist() for n, i in a.indices().items()} == {"w": [0, 1], "b": [0]}
    assert all(m.dtype == torch.bool and m.device.type == "cpu" for m in a.values())
    assert "size=3" in repr(a)


@pytest.mark.parametrize(
    "pair,expected",
    [("a-b", 2 / 5), ("a-a", 1.0), ("a-empty", 0.0), ("empty-empty", 1.0), ("a-complement", 0.0)],
    ids=lambda v: v if isinstance(v, str) else f"{v:.2f}",
)
def test_jaccard(pair, expected):
    a, b = two_masks()
    masks = {
        "a": a,
        "b": b,
        "empty": ParameterMask({n: torch.zeros_like(m) for n, m in a.items()}),
        "complement": ParameterMask({n: ~m for n, m in a.items()}),
    }
    first, second = (masks[p] for p in pair.split("-"))
    assert first.jaccard(second) == pytest.approx(expected) == second.jaccard(first)


def test_jaccard_of_different_parameters_raises():
    a, _ = two_masks()
    with pytest.raises(ValueError, match="same parameters"):
        a.jaccard(
            ParameterMask(
                {"w": torch.ones(3, 2, dtype=torch.bool), "b": torch.ones(2, dtype=torch.bool)}
            )
        )


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_save_load_round_trip(tmp_path, suffix):
    model = build_model("resnet18", 10, 3, width=4)
    mask = fisher_mask(random_diag(model), 0.05, method="per_layer", model=model)
    path = tmp_path / f"mask{suffix}"
    mask.save(path)
    loaded = ParameterMask.load(path)
    assert loaded == mask and loaded.names == mask.names and loaded.counts() == mask.counts()
    assert all(m.dtype == torch.bool for m in loaded.values())
    loaded.check(model)


def test_dict_round_trip_and_equality():
    a, b = two_masks()
    assert ParameterMask.from_dict(a.to_dict()) == a and a != b
    assert all(isinstance(v, np.ndarray) and v.dtype == bool for v in a.to_dict().values())
    assert (a == {"w": a["w"], "b": a["b"]}) is False  # only masks compare equal


def test_full_and_head_masks():
    model = Net()
    full, head = ParameterMask.full(model), ParameterMask.full(model, head_names(model))
    assert full.size == NET_NUMEL and full.names == NET_NAMES
    assert head.size == NET_HEAD and head.counts()["body.0.weight"] == 0
    full.check(model)


def test_check_rejects_a_mask_of_another_model():
    with pytest.raises(ValueError, match="mask does not match"):
        ParameterMask.full(build_model("cnn", 10, 1)).check(Net())


# ----------------------------------------------------------------------------- bad input

BAD_FRACTIONS = [0, -0.1, 1.01, math.nan, math.inf, True, "0.1", None]


@pytest.mark.parametrize("fraction", BAD_FRACTIONS, ids=[repr(f) for f in BAD_FRACTIONS])
def test_bad_fraction(fraction):
    model = Net()
    with pytest.raises(ValueError, match="fraction"):
        fisher_mask(random_diag(model), fraction, model=model)


BAD_CALLS = {
    "method": (lambda m, d: fisher_mask(d, 0.1, method="top", model=m), "method"),
    "fisher-diag-of-another-model": (
        lambda m, d: fisher_mask(random_diag(Net().body), 0.1, model=m),
        "fisher_diag does not match",
    ),
    "fisher-diag-wrong-shape": (
        lambda m, d: fisher_mask({**d, "head.bias": torch.ones(4)}, 0.1, model=m),
        "fisher_diag",
    ),
    "fisher-diag-empty": (lambda m, d: fisher_mask({}, 0.1), "fisher_diag"),
    "fisher-diag-nan": (
        lambda m, d: fisher_mask({**d, "body.0.bias": torch.tensor([1.0, math.nan, 0])}, 0.1),
        "fisher_diag",
    ),
    "no-head-found": (lambda m, d: fisher_mask({"a": torch.ones(10)}, 0.5), "include_head"),
    "model-without-head": (
        lambda m, d: fisher_mask(random_diag(m.body), 0.5, model=m.body),
        "include_head",
    ),
    "selects-nothing": (lambda m, d: fisher_mask(d, 0.01, include_head=False), "fraction"),
    "empty-mask": (lambda m, d: ParameterMask({}), "at least one parameter"),
    "full-unknown-names": (lambda m, d: ParameterMask.full(m, ["head.weight", "nope"]), "nope"),
}


@pytest.mark.parametrize("call,pattern", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_input_raises_value_error(call, pattern):
    model = Net()
    with pytest.raises(ValueError, match=pattern):
        call(model, random_diag(model))


def test_the_masks_top_k_gives_ties_to_the_lower_index():
    values = torch.zeros(20000)
    values[[5, 17000]] = 1.0
    assert _top(values, 2000).tolist() == [5, 17000, *range(5), *range(6, 1999)]


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")], ids=str)
def test_a_non_finite_fisher_value_is_refused_naming_its_parameter(bad):
    fisher = {"body.weight": torch.ones(2, 3), "head.weight": torch.ones(3, 2)}
    fisher["body.weight"][1, 2] = bad
    with pytest.raises(ValueError, match=r"non-finite values in \['body.weight'\]"):
        fisher_mask(fisher, 0.5)
