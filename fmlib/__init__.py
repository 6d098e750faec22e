"""fmlib: Fisher-information-based active learning (FisherMask, BAIT and baselines), notebook-first.

The public surface, in the order data flows::

    splits = fmlib.load_dataset("fashion_mnist")
    diag = fmlib.fisher_diagonal(model, x)                     # name -> tensor like the parameter
    mask = fmlib.fisher_mask(diag, 0.005, model=model)         # ParameterMask, head always in
    emb = fmlib.gradient_embeddings(model, x, mask)            # [N, C, k]
    picks = fmlib.greedy_trace_select(emb, 10, fisher=f_pool)  # BAIT's greedy, incremental
    records = fmlib.run_experiment({"strategy": "fishermask", "output_dir": "runs/demo"})
    session = fmlib.open_session(config); q = session.query(); session.label(q.positions, labels)
    frame = fmlib.load_runs("runs/*")
"""

from importlib import import_module

# name -> module; imported on first use, so `python -m fmlib.grid` and its workers start without
# torch
_EXPORTS = {
    "load_dataset": "datasets",
    "make_imbalanced": "datasets",
    "prepare_data": "datasets",
    "ExperimentConfig": "experiment",
    "run_experiment": "experiment",
    "open_session": "session",
    "ActiveSession": "session",
    "fisher_diagonal": "fisher",
    "gradient_embeddings": "fisher",
    "ParameterMask": "fisher",
    "fisher_mask": "fisher",
    "build_model": "models",
    "load_run": "records",
    "load_runs": "records",
    "greedy_trace_select": "fisher",
    "STRATEGIES": "strategies",
    "get_strategy": "strategies",
    "evaluate": "train",
    "fit": "train",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"fmlib.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'fmlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__version__ = "0.2.0.dev0"  # the one place the version is written (pyproject reads it)
__all__ = [
    "ActiveSession",
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
    "open_session",
    "prepare_data",
    "run_experiment",
]
