"""fmlib: Fisher-information-based active learning (FisherMask, BAIT and baselines), notebook-first.

The public surface, in the order data flows::

    splits = fmlib.load_dataset("fashion_mnist")
    diag = fmlib.fisher_diagonal(model, x)                     # name -> tensor like the parameter
    mask = fmlib.fisher_mask(diag, 0.005, model=model)         # ParameterMask, head always in
    emb = fmlib.gradient_embeddings(model, x, mask)            # [N, C, k]
    picks = fmlib.greedy_trace_select(emb, 10, fisher=f_pool)  # BAIT's greedy, incremental
    records = fmlib.run_experiment({"strategy": "fishermask", "output_dir": "runs/demo"})
    frame = fmlib.load_runs("runs/*")
"""

from fmlib.data import load_dataset, make_imbalanced, prepare_data
from fmlib.experiment import ExperimentConfig, run_experiment
from fmlib.fisher import fisher_diagonal, gradient_embeddings
from fmlib.masks import ParameterMask, fisher_mask
from fmlib.models import build_model
from fmlib.records import load_run, load_runs
from fmlib.select import greedy_trace_select
from fmlib.strategies import STRATEGIES, get_strategy
from fmlib.train import evaluate, fit

__version__ = "0.1.0"
__all__ = [
    "ExperimentConfig",
    "ParameterMask",
    "STRATEGIES",
    "build_model",
    "evaluate",
    "fisher_diagonal",
    "fisher_mask",
    "fit",
    "get_strategy",
    "gradient_embeddings",
    "greedy_trace_select",
    "load_dataset",
    "load_run",
    "load_runs",
    "make_imbalanced",
    "prepare_data",
    "run_experiment",
]
