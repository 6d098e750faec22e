"""The naive greedy (fmlib.fisher.greedy_naive), the oracle of the incremental one, against brute
force: each forward pick minimises the objective, each backward step drops the member whose
removal raises it least."""

from __future__ import annotations

import pytest
import torch

from fmlib.fisher.greedy import trace_objective
from fmlib.fisher.greedy_naive import greedy_trace_select_naive
from tests.fisher.test_greedy import PROBLEMS, _id, random_problem

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("problem", [PROBLEMS[1], PROBLEMS[3]], ids=_id)
def test_each_naive_pick_is_the_brute_force_best(problem, float64):
    v, n, kwargs = random_problem(**problem)
    picks = greedy_trace_select_naive(v, n, **kwargs)
    for t, p in enumerate(picks):
        rest = [i for i in range(len(v)) if i not in picks[:t]]
        scores = torch.tensor([trace_objective(v[picks[:t] + [i]], n=n, **kwargs) for i in rest])
        assert p == rest[int(torch.argmin(scores))]


def test_each_naive_backward_step_drops_the_member_that_costs_least(float64):
    v, _, kwargs = random_problem(**PROBLEMS[2])  # no labels: the weights do not depend on n
    picked = greedy_trace_select_naive(v, 8, **kwargs)
    while len(picked) > 4:
        raises = [
            trace_objective(v[picked[:j] + picked[j + 1 :]], **kwargs) for j in range(len(picked))
        ]
        del picked[int(torch.argmin(torch.tensor(raises)))]
    assert greedy_trace_select_naive(v, 4, backward_steps=1, **kwargs) == picked
