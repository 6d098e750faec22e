"""Batch runs over a grid of configs.

* :mod:`~fmlib.grid.spec` — a grid file (``grids/*.json``) expanded into named runs;
* :mod:`~fmlib.grid.runner` — the runs executed (papermill or inline, local workers or Slurm),
  resumed, stale runs reported, a summary written;
* :mod:`~fmlib.grid.cli` — the command line, ``python -m fmlib.grid`` and ``fmlib grid``.

Nothing here imports torch: the grid's parent process and its workers start light.
"""
