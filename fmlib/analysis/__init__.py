"""Analysis of finished runs: it reads records, never writes them.

* :mod:`~fmlib.analysis.compare` — learning-curve tables, AUC, paired differences across seeds;
* :mod:`~fmlib.analysis.sensitivity` — how the Fisher mask and the per-class Fisher evolve;
* :mod:`~fmlib.analysis.plots` — the figures of both;
* :mod:`~fmlib.analysis.ablation` — the arms of a factorial ablation against their anchors.
"""
