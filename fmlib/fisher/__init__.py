"""The Fisher engine: what the strategies compute from a model, and nothing else of a run.

* :mod:`~fmlib.fisher.embeddings` — the public API: :func:`fisher_diagonal`,
  :func:`gradient_embeddings`, :func:`sample_scores`, and their ``*_naive`` oracles;
* :mod:`~fmlib.fisher.hooks` and :mod:`~fmlib.fisher.func` — the two engines behind them
  (forward hooks on Linear/Conv2d/BatchNorm2d; torch.func for any other layer);
* :mod:`~fmlib.fisher.masks` — :class:`ParameterMask` and :func:`fisher_mask`, the top-k
  selection of parameters by Fisher information, the head always in;
* :mod:`~fmlib.fisher.greedy` — BAIT's greedy minimisation of tr((λI + Σ F_i)^-1 F_pool), and
  :mod:`~fmlib.fisher.greedy_naive`, its recomputation from scratch (the oracle).
* :mod:`~fmlib.fisher.gram` — :class:`~fmlib.fisher.gram.GramSum`, the pool Fisher VᵀV summed
  over blocks from its upper triangle.
* :mod:`~fmlib.fisher.inverse` — the greedy's inverse precision, dense or as a Woodbury factor.

Everything here depends only on torch and :mod:`fmlib.data`.
"""

from fmlib.fisher.embeddings import (
    ENGINES,
    FISH_SAMPLES,
    SCALES,
    fisher_diagonal,
    fisher_diagonal_naive,
    fisher_subsample,
    fisher_trace,
    gradient_embeddings,
    gradient_embeddings_naive,
    sample_scores,
)
from fmlib.fisher.greedy import greedy_trace_select, trace_objective
from fmlib.fisher.greedy_naive import greedy_trace_select_naive
from fmlib.fisher.masks import METHODS, ParameterMask, check_mask_options, fisher_mask, head_names

__all__ = [
    "ENGINES",
    "FISH_SAMPLES",
    "METHODS",
    "SCALES",
    "ParameterMask",
    "check_mask_options",
    "fisher_diagonal",
    "fisher_diagonal_naive",
    "fisher_mask",
    "fisher_subsample",
    "fisher_trace",
    "gradient_embeddings",
    "gradient_embeddings_naive",
    "greedy_trace_select",
    "greedy_trace_select_naive",
    "head_names",
    "sample_scores",
    "trace_objective",
]
