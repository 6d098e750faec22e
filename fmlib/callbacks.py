"""What a run tells the code around it, as it goes: callbacks.

A callback is any object with one or both of

* ``on_query(query)``: a round's query is out (a :class:`~fmlib.session.PendingQuery`: round,
  pool positions, items), before anyone labels it;
* ``on_round(row)``: a round is recorded (its ``rounds.csv`` row, a dict), after the run
  directory holds it.

Pass them as ``run_experiment(config, callbacks=[...])`` or ``open_session(..., callbacks=[...])``.
``fmlib run`` prints its round lines through one (:class:`fmlib.watch.RoundWatcher`);
:class:`TensorBoardLogger` writes TensorBoard event files (the ``tensorboard`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fmlib.records.formats import class_columns

SCALARS = (
    "accuracy",
    "balanced_accuracy",
    "train_loss",
    "train_accuracy",
    "fisher_trace",
    "train_time",
    "select_time",
)


class TensorBoardLogger:
    """Each round's metrics as TensorBoard scalars, against the number of labels.

    Tags ``al/<column>`` for ``scalars`` (NaN values left out), ``al/acc_<c>`` per class and
    ``al/queried`` per query (at step: the round), the others at step ``n_labeled`` (the x axis
    of a learning curve).

    Args:
        log_dir: where the event files go (e.g. ``<output_dir>/tensorboard``).
        scalars: ``rounds.csv`` columns to log.
    """

    def __init__(self, log_dir, *, scalars: Sequence[str] = SCALARS):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # torch's writer needs the tensorboard package
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package "
                f"(pip install fmlib[tensorboard]): "
                f"{err}"
            ) from None
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.scalars = tuple(scalars)

    def on_query(self, query) -> None:
        self.writer.add_scalar("al/queried", len(query.positions), global_step=query.round)

    def on_round(self, row: Mapping) -> None:
        step = int(row["n_labeled"])
        names = [*self.scalars, *class_columns(row, "acc")]
        for name in names:
            value = row.get(name)
            if isinstance(value, (int, float)) and not math.isnan(float(value)):
                self.writer.add_scalar(f"al/{name}", float(value), global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
