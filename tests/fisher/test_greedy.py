"""Greedy BAIT selection: the incremental greedy against the naive recomputation and brute force."""

from __future__ import annotations

import math

import pytest
import torch

from fmlib.fisher.greedy import greedy_trace_select, trace_objective
from fmlib.fisher.greedy_naive import greedy_trace_select_naive

pytestmark = pytest.mark.usefixtures("one_thread")


# Random problems: N candidates, C classes, k parameters, n picks, |L| labeled, λ.
PROBLEMS = [
    dict(N=30, C=1, k=8, n=6, n_labeled=0, lamb=1.0),
    dict(N=30, C=1, k=8, n=6, n_labeled=5, lamb=0.1),
    dict(N=40, C=3, k=12, n=8, n_labeled=0, lamb=1.0),
    dict(N=40, C=3, k=12, n=8, n_labeled=20, lamb=0.5),
    dict(N=40, C=3, k=30, n=15, n_labeled=3, lamb=3.0),  # wide: k = 30 > C·n of most other problems
    dict(N=25, C=10, k=16, n=5, n_labeled=0, lamb=0.01),
    dict(N=25, C=10, k=16, n=5, n_labeled=12, lamb=1.0),
    dict(N=12, C=3, k=6, n=12, n_labeled=0, lamb=1.0),  # pick everything
]


def _id(p: dict) -> str:
    return f"N{p['N']}-C{p['C']}-k{p['k']}-n{p['n']}-L{p['n_labeled']}-lamb{p['lamb']}"


def _fisher(v: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nck,ncl->kl", v, v) / len(v)  # mean of VᵀV, [k, k]


def random_problem(N, C, k, n, n_labeled, lamb, dtype=torch.float64):
    """Embeddings with uneven scales (so gains differ), their pool Fisher, a labeled Fisher."""
    v = torch.randn(N, C, k, dtype=dtype) * torch.rand(N, 1, 1, dtype=dtype).mul(2).add(0.1)
    kwargs = dict(fisher=_fisher(v), labeled_fisher=None, n_labeled=n_labeled, lamb=lamb)
    if n_labeled:
        kwargs["labeled_fisher"] = _fisher(torch.randn(n_labeled, C, k, dtype=dtype))
    return v, n, kwargs


def softmax_problem(num=40, d=5, classes=3, n_labeled=10):
    """Per-class gradients √p(c|x)·∂log p(c|x)/∂θ of a random linear softmax model, by autograd."""

    def embeddings(x):
        model = torch.nn.Linear(d, classes)
        torch.manual_seed(1)  # same weights for pool and labeled set
        model.reset_parameters()
        logp = torch.log_softmax(model(x), dim=-1)  # [N, classes]
        rows = []
        for i in range(len(x)):
            per_class = []
            for c in range(classes):
                grads = torch.autograd.grad(logp[i, c], list(model.parameters()), retain_graph=True)
                per_class.append(
                    logp[i, c].detach().exp().sqrt() * torch.cat([g.flatten() for g in grads])
                )
            rows.append(torch.stack(per_class))
        return torch.stack(rows)  # [N, classes, k], k = classes·(d+1)

    pool = embeddings(torch.randn(num, d) * 2)
    labeled = embeddings(torch.randn(n_labeled, d) * 2)
    return pool, dict(
        fisher=_fisher(pool), labeled_fisher=_fisher(labeled), n_labeled=n_labeled, lamb=1.0
    )


# ----------------------------------------------------------------------------- against the oracle


@pytest.mark.parametrize("problem", PROBLEMS, ids=_id)
def test_incremental_matches_naive(problem, float64):
    v, n, kwargs = random_problem(**problem)
    picks = greedy_trace_select(v, n, **kwargs)
    assert picks == greedy_trace_select_naive(v, n, **kwargs)
    assert len(set(picks)) == n and all(0 <= p < len(v) for p in picks)


@pytest.mark.parametrize("backward_steps", [1, 2])
@pytest.mark.parametrize("problem", PROBLEMS[1:7:2] + PROBLEMS[7:], ids=_id)
def test_backward_matches_naive(problem, backward_steps, float64):
    v, n, kwargs = random_problem(**problem)
    picks = greedy_trace_select(v, n, backward_steps=backward_steps, **kwargs)
    assert picks == greedy_trace_select_naive(v, n, backward_steps=backward_steps, **kwargs)
    assert len(set(picks)) == n


@pytest.mark.parametrize("backward_steps", [0, 1, 2])
def test_softmax_model_matches_naive(backward_steps, float64):
    v, kwargs = softmax_problem()
    picks = greedy_trace_select(v, 6, backward_steps=backward_steps, **kwargs)
    assert picks == greedy_trace_select_naive(v, 6, backward_steps=backward_steps, **kwargs)


@pytest.mark.parametrize("problem", [PROBLEMS[3], PROBLEMS[6]], ids=_id)
def test_float32_embeddings_match_naive(problem):
    v, n, kwargs = random_problem(**problem, dtype=torch.float32)
    assert greedy_trace_select(v, n, **kwargs) == greedy_trace_select_naive(v, n, **kwargs)


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
@pytest.mark.parametrize("backward_steps", [0, 1])
def test_chunked_equals_unchunked(chunk_size, backward_steps, float64):
    v, n, kwargs = random_problem(**PROBLEMS[3])
    whole = greedy_trace_select(v, n, backward_steps=backward_steps, chunk_size=len(v), **kwargs)
    assert (
        greedy_trace_select(v, n, backward_steps=backward_steps, chunk_size=chunk_size, **kwargs)
        == whole
    )


# ----------------------------------------------------------------------------- against brute force


@pytest.mark.parametrize("problem", [PROBLEMS[0], PROBLEMS[3], PROBLEMS[6]], ids=_id)
def test_each_pick_is_the_brute_force_best(problem, float64):
    """Every pick minimises the brute-force objective over the remaining candidates."""
    v, n, kwargs = random_problem(**problem)
    picks = greedy_trace_select(v, n, **kwargs)
    # scaled as the greedy scales
    objective = lambda batch: trace_objective(v[batch], n=n, **kwargs)
    previous = objective([])
    for t, p in enumerate(picks):
        rest = [i for i in range(len(v)) if i not in picks[:t]]
        scores = torch.tensor([objective(picks[:t] + [i]) for i in rest])
        assert p == rest[int(torch.argmin(scores))]
        current = objective(picks[: t + 1])
        assert current < previous
        previous = current


def test_first_pick_maximises_single_point_decrease(float64):
    v, n, kwargs = random_problem(**PROBLEMS[4])
    empty = trace_objective(v[:0], n=n, **kwargs)
    decrease = torch.tensor(
        [empty - trace_objective(v[i : i + 1], n=n, **kwargs) for i in range(len(v))]
    )
    assert greedy_trace_select(v, n, **kwargs)[0] == int(torch.argmax(decrease))


def test_trace_objective_without_labels_is_ridge_trace(float64):
    v, _, kwargs = random_problem(**PROBLEMS[2])
    f = kwargs["fisher"]
    assert trace_objective(v[:0], f, lamb=2.0) == pytest.approx(float(f.trace()) / 2.0)
    expected = torch.linalg.solve(2.0 * torch.eye(12) + v[3].T @ v[3], f).trace()
    assert trace_objective(v[3:4], f, lamb=2.0) == pytest.approx(float(expected))


# ----------------------------------------------------------------------------- ties and edge cases


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_ties_go_to_lowest_index(dtype):
    base = torch.randn(6, 3, 10, dtype=dtype)
    v = torch.cat([base, base])  # candidate i and i + 6 are identical
    picks = greedy_trace_select(v, 9, fisher=_fisher(v))
    for t, p in enumerate(picks):  # a second copy only after its first copy
        assert p < 6 or p - 6 in picks[:t]
    assert picks == greedy_trace_select_naive(v.double(), 9, fisher=_fisher(v.double()))


@pytest.mark.parametrize("scale", [1e-12, 1e12])
def test_picks_do_not_depend_on_the_scale_of_the_fisher(scale, float64):
    """Every gain scales with F, so the picks do not: ties are relative to the best gain."""
    v, n, kwargs = random_problem(**PROBLEMS[3])
    picks = greedy_trace_select(v, n, **kwargs)
    assert picks[:3] != [0, 1, 2]  # not the lowest indices, which a tie would give
    scaled = {**kwargs, "fisher": kwargs["fisher"] * scale}
    assert greedy_trace_select(v, n, **scaled) == picks
    assert greedy_trace_select(v, n, backward_steps=1, **scaled) == greedy_trace_select(
        v, n, backward_steps=1, **kwargs
    )


def test_float64_embeddings_are_computed_in_float64_whatever_the_precision(float64):
    v, n, kwargs = random_problem(**PROBLEMS[3])
    asked32, default = {}, {}
    picks = greedy_trace_select(v, n, precision="float32", info=asked32, **kwargs)
    assert picks == greedy_trace_select(v, n, info=default, **kwargs)
    assert asked32["gains"] == default["gains"]  # the same float64 products, bit for bit
    assert asked32["drift"] == [] and asked32["refreshes"] == []  # no float32 drift check


def test_float32_first_pick_is_never_a_refresh():
    """The first pass is fresh: a refresh is counted from the second pick on, even at rtol 0."""
    v, n, kwargs = random_problem(**PROBLEMS[2], dtype=torch.float32)
    info = {}
    greedy_trace_select(v, n, precision="float32", refresh_rtol=0.0, info=info, **kwargs)
    assert len(info["drift"]) == n and info["drift"][0] > 0  # float32 differs from float64
    assert info["refreshes"] and 0 not in info["refreshes"]
    assert info["refreshes"] == [s for s in range(1, n) if info["drift"][s] > 0]


@pytest.mark.parametrize("backward_steps", [0, 2])
def test_identical_candidates_keep_lowest_indices(backward_steps):
    v = torch.randn(1, 2, 5).expand(12, 2, 5).contiguous()
    picks = greedy_trace_select(v, 3, fisher=_fisher(v), backward_steps=backward_steps)
    assert sorted(picks) == [0, 1, 2]


def test_backward_steps_capped_at_pool_size(float64):
    v, _, kwargs = random_problem(**PROBLEMS[7])  # N = 12
    picks = greedy_trace_select(v, 5, backward_steps=3, **kwargs)  # would forward-select 20
    assert picks == greedy_trace_select_naive(v, 5, backward_steps=3, **kwargs)
    assert len(set(picks)) == 5


def test_progress_bar(capsys):
    v, n, kwargs = random_problem(**PROBLEMS[2], dtype=torch.float32)
    assert greedy_trace_select(
        v, n, progress=True, backward_steps=1, **kwargs
    ) == greedy_trace_select(v, n, backward_steps=1, **kwargs)
    assert "greedy_trace_select" in capsys.readouterr().err


def test_accepts_numpy_integers_and_tensors_that_require_grad():
    import numpy as np

    v, n, kwargs = random_problem(**PROBLEMS[3], dtype=torch.float32)
    expected = greedy_trace_select(v, n, **kwargs)
    kwargs.update(n_labeled=np.int64(kwargs["n_labeled"]), lamb=np.float32(kwargs["lamb"]))
    assert greedy_trace_select(v.requires_grad_(), np.int64(n), **kwargs) == expected


def test_non_finite_embeddings_raise():
    v, n, kwargs = random_problem(**PROBLEMS[2], dtype=torch.float32)
    v[5, 1, 3] = math.nan
    with pytest.raises(RuntimeError, match="NaN"):
        greedy_trace_select(v, n, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(float64):
    v, n, kwargs = random_problem(**PROBLEMS[6])
    on_gpu = {k: (x.cuda() if isinstance(x, torch.Tensor) else x) for k, x in kwargs.items()}
    assert greedy_trace_select(
        v.cuda(), n, backward_steps=1, **on_gpu
    ) == greedy_trace_select_naive(v, n, backward_steps=1, **kwargs)


BAD = [
    ("n", dict(n=0)),
    ("n", dict(n=41)),
    ("n", dict(n=2.0)),
    ("embeddings", dict(embeddings=torch.zeros(40, 12))),
    ("embeddings", dict(embeddings=torch.zeros(40, 3, 12, dtype=torch.int64))),
    ("fisher", dict(fisher=torch.eye(11))),
    ("labeled_fisher", dict(labeled_fisher=torch.eye(11), n_labeled=4)),
    ("n_labeled", dict(n_labeled=-1)),
    ("labeled_fisher", dict(n_labeled=4)),  # n_labeled without its Fisher
    ("labeled_fisher", dict(labeled_fisher=torch.eye(12))),  # a Fisher of an empty set
    ("lamb", dict(lamb=0.0)),
    ("lamb", dict(lamb=-1.0)),
    ("lamb", dict(lamb=math.inf)),
    ("backward_steps", dict(backward_steps=-1)),
    ("chunk_size", dict(chunk_size=0)),
]


@pytest.mark.parametrize(
    "select", [greedy_trace_select, greedy_trace_select_naive], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("name, bad", BAD, ids=[f"{name}-{i}" for i, (name, _) in enumerate(BAD)])
def test_bad_input_raises(select, name, bad):
    v, n, kwargs = random_problem(**PROBLEMS[2], dtype=torch.float32)
    args = dict(embeddings=v, n=n, **kwargs) | bad
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        select(args.pop("embeddings"), args.pop("n"), **args)
