"""Ask/tell over a run: :class:`ActiveSession` hands out each round's query and takes its labels,
from a person, a scripted oracle or the pool itself, and keeps the run directory's records.

A round is ``query()`` (train, evaluate, select: the pool positions and their items, for
display) then ``label(positions, labels)``. Between the two the query is pending: in a run
directory it is kept in ``pending.pt`` (round, positions, the round's row so far, the weights
that made it, its sensitivity snapshot), written atomically before the query is handed out, and
every answer given one at a time (:meth:`ActiveSession.answer`) goes into ``answers.json``
(atomically, at once). A session opened again on the directory (after a kill, or the next day)
hands out the same query with the answers already given, so a label typed once is never asked
again; the round is recorded, and both files removed, only when every position has its label.

Labels come from the pool (``source`` ``"pool"``: the built-in simulation) or from whoever
answers (``"oracle"``); ``queries.csv`` keeps the label each position got and its source. The
initial labeled set takes the pool's labels. Callbacks (:mod:`fmlib.callbacks`) see every query
and every finished round; stopping rules (:mod:`fmlib.stopping`) end a run before its schedule
does, and the records say which rule stopped it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import torch

from fmlib.build import RunParts, build
from fmlib.config import ExperimentConfig, comparison
from fmlib.data import ImageData
from fmlib.loop import ActiveLoop, check_answer
from fmlib.progress import progress_bar
from fmlib.records import (
    RunDirectory,
    RunRecords,
    data_summary,
    environment,
    fisher_snapshot,
    fmlib_version,
    git_commit,
    load_snapshot,
    query_rows,
    resume_threads,
    resume_torch,
    run_meta,
    save_torch,
    snapshot_bytes,
    write_json,
)
from fmlib.records.snapshots import module_types
from fmlib.stopping import check_stop, stop_rules

PENDING = "pending.pt"  # the pending query (round, positions, row so far, weights, snapshot)
ANSWERS = "answers.json"  # the answers given to it so far
SOURCES = ("pool", "oracle")


@dataclass
class PendingQuery:
    """A round's query as handed out: pool positions (pick order), their items for display
    (``uint8 [K, C, H, W]`` images for image data, else the model inputs) and the answers given
    so far (position -> label). ``remaining`` are the positions still without a label."""

    round: int
    positions: np.ndarray  # int64 [K]
    items: object
    answers: dict[int, int] = field(default_factory=dict)

    @property
    def remaining(self) -> np.ndarray:
        return np.array([p for p in self.positions if int(p) not in self.answers], dtype=np.int64)


class ActiveSession:
    """One run, a round at a time: :meth:`query`, then :meth:`answer` / :meth:`label`.

    Open it with :func:`open_session` (or :func:`fmlib.run_experiment`, which drives it to the
    end); it holds the run directory's lock until :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(
        self,
        parts: RunParts | None,
        run_dir: RunDirectory | None = None,
        checkpoint: dict | None = None,
        *,
        callbacks: Sequence = (),
        records: RunRecords | None = None,
        train_name: str | None = None,
    ):
        self.parts, self.run_dir, self.callbacks = parts, run_dir, list(callbacks)
        self._exit = ExitStack()
        self._snapshot = None  # the pending query's snapshot (labels still -1)
        self.answers: dict[int, int] = {}
        self.loop = None
        if parts is None:  # a finished run, reloaded
            self.records = records
            return
        config, pool = parts.config, parts.data.pool
        self.loop = ActiveLoop(
            parts.data,
            parts.model,
            parts.strategy,
            parts.schedule,
            parts.training,
            initial=parts.initial,
            seed=config.seed,
            device=parts.device,
            train_first=config.trains_first(),
            progress=config.progress,
            train=parts.train,
        )
        self.rules = stop_rules(config.stopping)
        self.loop.stop = lambda row: check_stop(self.rules, [*self.records.rounds, row])
        threads = torch.get_num_threads()
        if checkpoint is not None:
            self.records = RunRecords.from_state(checkpoint["records"], run_dir.path)
            meta, rounds, path = self.records.meta, self.records.rounds, run_dir.path
            resume_threads(meta, rounds, threads, allowed=config.allow_thread_change, path=path)
            resume_torch(meta, str(torch.__version__), allowed=config.allow_torch_change, path=path)
            self.loop.load_state_dict(checkpoint["loop"])
        else:
            meta = run_meta(
                config.to_dict(),
                version=fmlib_version(),
                git=git_commit(),
                environment=environment(parts.device),
                threads=threads,
                torch_version=str(torch.__version__),
                data=data_summary(parts.source, pool, parts.data.test),
                schedule=self.loop.schedule,
                model_factory=parts.model_factory,
                train_hook=train_name,
            )
            self.records = RunRecords(meta, path=run_dir.path if run_dir else None)
            initial = pool.labels[torch.as_tensor(parts.initial)].numpy()
            self.records.queries += query_rows(0, parts.initial, initial, ["pool"] * len(initial))
            if run_dir is not None:
                run_dir.write_meta(meta)
        if run_dir is not None:
            self._restore_pending()

    # ------------------------------------------------------------------------- the lock

    def __enter__(self) -> ActiveSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the run directory (a pending query stays on disk for the next session)."""
        self._exit.close()

    # ------------------------------------------------------------------------- state

    @property
    def finished(self) -> bool:
        """Every round of the schedule ran, or a stopping rule ended the run."""
        return self.records.finished

    @property
    def pending(self) -> PendingQuery | None:
        """The query waiting for labels, or ``None``."""
        if self.loop is None or self.loop.pending is None:
            return None
        return self._handout(self.loop.pending.positions)

    def _handout(self, positions) -> PendingQuery:
        pool = self.parts.data.pool
        idx = torch.as_tensor(positions, dtype=torch.long)
        items = pool.images[idx] if isinstance(pool, ImageData) else pool.inputs(positions)
        return PendingQuery(self.loop.round, positions, items, dict(self.answers))

    # ------------------------------------------------------------------------- ask and tell

    def query(self) -> PendingQuery:
        """This round's query (computed once; the same one until it is labeled)."""
        if self.finished:
            raise RuntimeError("the run is finished")
        if self.loop.pending is None:
            query = self.loop.query()
            report = query.report
            self._snapshot = None
            if report.fisher is not None:
                self._snapshot = fisher_snapshot(
                    report.fisher,
                    query.positions,
                    np.full(len(query.positions), -1),
                    round=query.round,
                    full=self.parts.config.full_fisher,
                    module_types=module_types(self.parts.model),
                )
            self.answers = {}
            # before anyone sees it: a kill from here on resumes this query
            if self.run_dir is not None:
                snapshot = None if self._snapshot is None else snapshot_bytes(self._snapshot)
                save_torch(
                    self.run_dir.path / PENDING,
                    {"loop": self.loop.pending_state(), "snapshot": snapshot},
                )
                self._write_answers()
            handed = self._handout(query.positions)
            for callback in self.callbacks:
                if hasattr(callback, "on_query"):
                    callback.on_query(handed)
            return handed
        return self.pending

    def answer(self, position: int, label: int) -> None:
        """One label for one position of the pending query, kept at once (in a run directory)."""
        query = self.loop.pending if self.loop is not None else None
        if query is None:
            raise ValueError("no pending query: call query() first")
        if not isinstance(position, (int, np.integer)) or int(position) not in set(
            query.positions.tolist()
        ):
            raise ValueError(
                f"position {position!r} is not in the query ({query.positions.tolist()})"
            )
        check_answer([position], [position], [label], self.parts.data.pool.num_classes)
        self.answers[int(position)] = int(label)
        if self.run_dir is not None:
            self._write_answers()

    def undo(self, position: int) -> None:
        """Forget the answer given to ``position``."""
        self.answers.pop(int(position), None)
        if self.run_dir is not None:
            self._write_answers()

    def label(self, positions=(), labels=(), *, source: str = "oracle") -> dict:
        """End the round: ``labels`` for ``positions`` together with the answers already given
        must cover the query (a position in both takes the label given here). Records the round
        (and, in a run directory, saves it) and returns its row.

        Args:
            source: where ``labels`` come from: ``"oracle"`` (a person, a script) or ``"pool"``.
        """
        if source not in SOURCES:
            raise ValueError(f"source must be one of {list(SOURCES)}, got {source!r}")
        query = self.loop.pending if self.loop is not None else None
        if query is None:
            raise ValueError("no pending query: call query() first")
        given = np.asarray(positions).reshape(-1)
        given = given if len(given) else given.astype(np.int64)  # nothing given: the answers so far
        # the values and the count
        check_answer(given, given, labels, self.parts.data.pool.num_classes)
        answers = {p: (y, "oracle") for p, y in self.answers.items()}
        answers.update(
            {int(p): (int(y), source) for p, y in zip(given, np.asarray(labels).reshape(-1))}
        )
        all_positions = np.array(list(answers), dtype=np.int64)
        missing = sorted(set(query.positions.tolist()) - set(answers))
        if missing:
            raise ValueError(f"positions {missing} of the query have no label yet")
        all_labels = np.array([answers[int(p)][0] for p in all_positions], dtype=np.int64)
        result = self.loop.label(all_positions, all_labels, source=source)
        sources = [answers[int(p)][1] for p in result.picked]
        self._record(result, sources)
        return result.row

    def run(self, oracle: Callable | None = None, *, max_rounds: int | None = None) -> RunRecords:
        """Rounds until the run is finished (or ``max_rounds`` in this call): each query answered
        by ``oracle(positions, items) -> labels`` (the positions still without an answer), or by
        the pool's own labels when ``oracle`` is ``None``. Returns the records."""
        if self.finished:
            return self.records
        bar = progress_bar(
            total=len(self.loop.schedule),
            initial=self.loop.round,
            desc=self.parts.config.strategy,
            unit="round",
            disable=not self.parts.config.progress,
        )
        done = 0
        try:
            while not self.finished and (max_rounds is None or done < max_rounds):
                query = self.query()
                rest = query.remaining
                if oracle is None or not len(rest):
                    row = self.label(
                        rest,
                        self.parts.data.pool.labels[torch.as_tensor(rest)].numpy(),
                        source="pool",
                    )
                else:
                    labels = oracle(rest, self._handout(rest).items)
                    labels = _as_labels(labels, oracle)
                    try:
                        row = self.label(rest, labels, source="oracle")
                    except ValueError as err:
                        name = _name(oracle)
                        raise ValueError(
                            f"the oracle {name}: {err} (the query stays pending; rerun to "
                            "answer it)"
                        ) from None
                done += 1
                bar.update(1)
                bar.set_postfix(acc=f"{row['accuracy']:.3f}", labeled=row["n_labeled"])
        finally:
            bar.close()
        return self.records

    # ------------------------------------------------------------------------- records

    def _record(self, result, sources) -> None:
        records = self.records
        records.rounds.append(result.row)
        records.queries += query_rows(
            result.round + 1, result.picked, result.picked_labels, sources
        )
        if self._snapshot is not None:
            snapshot = {
                **self._snapshot,
                "picked_label": np.asarray(result.picked_labels, dtype=np.int64),
            }
            records.snapshots[result.round] = snapshot_bytes(snapshot)
        self._snapshot, self.answers = None, {}
        if self.loop.stopped is not None:
            records.meta["stopped"] = {"round": result.round, **self.loop.stopped}
        if self.run_dir is not None:
            self.run_dir.save(records, self.loop.state_dict())
            # after the checkpoint that holds the round
            (self.run_dir.path / PENDING).unlink(missing_ok=True)
            (self.run_dir.path / ANSWERS).unlink(missing_ok=True)
        for callback in self.callbacks:
            if hasattr(callback, "on_round"):
                callback.on_round(dict(result.row))

    def _write_answers(self) -> None:
        answers = {str(p): y for p, y in self.answers.items()}
        write_json(self.run_dir.path / ANSWERS, {"round": self.loop.round, "answers": answers})

    def _restore_pending(self) -> None:
        """Take back the pending query (and its answers) a session left in the directory; one of an
        earlier round (killed after its checkpoint, before the files went) is removed."""
        path = self.run_dir.path
        file = path / PENDING
        if not file.is_file() or self.finished:
            file.unlink(missing_ok=True)
            (path / ANSWERS).unlink(missing_ok=True)
            return
        state = torch.load(file, map_location="cpu", weights_only=True)
        if int(state["loop"]["round"]) != self.loop.round:
            file.unlink()
            (path / ANSWERS).unlink(missing_ok=True)
            return
        self.loop.restore_pending(state["loop"])
        self._snapshot = (
            None if state["snapshot"] is None else load_snapshot(bytes(state["snapshot"]))
        )
        self.answers = {}
        try:
            kept = json.loads((path / ANSWERS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = {}
        if isinstance(kept, dict) and kept.get("round") == self.loop.round:
            queried = set(self.loop.pending.positions.tolist())
            self.answers = {
                int(p): int(y) for p, y in kept.get("answers", {}).items() if int(p) in queried
            }


def open_session(
    config: ExperimentConfig | Mapping,
    *,
    data=None,
    strategy=None,
    model=None,
    train=None,
    callbacks: Sequence = (),
) -> ActiveSession:
    """Check ``config``, build its parts and open its run directory (resumed when it holds the
    run, with any pending query): the ask/tell way into a run. Arguments as
    :func:`fmlib.run_experiment`. The session holds the directory's lock until ``close()``."""
    config = ExperimentConfig.from_dict(config) if isinstance(config, Mapping) else config
    # once, before any directory is made, on what the caller does not bring (build() trusts it)
    own_parts = data is None and model is None
    built = {}
    config.validate(
        check_dataset=data is None, check_strategy=strategy is None, parts=own_parts, built=built
    )
    strategy = built["strategy"] if strategy is None else strategy
    parts_of = {
        "data": data,
        "strategy": strategy,
        "model": model,
        "train": train,
        "memory_checked": own_parts and built.get("memory") is strategy,
    }
    train_name = None
    if train is not None:
        if not callable(train):
            raise ValueError(
                f"train must be a callable train(model, data, labeled, *, seed, device) -> dict, "
                f"got {type(train).__name__}"
            )
        train_name = f"{getattr(train, '__module__', '?')}.{_name(train)}"
    if config.output_dir is None:
        return ActiveSession(
            build(config, **parts_of),
            callbacks=callbacks,
            train_name=train_name,
        )
    run_dir = RunDirectory(config.output_dir)
    exit_stack = ExitStack()
    exit_stack.enter_context(run_dir.lock())
    try:
        checkpoint = run_dir.open(config.to_dict(), **comparison())
        if checkpoint is not None:
            records = RunRecords.from_state(checkpoint["records"], run_dir.path)
            if records.finished:
                session = ActiveSession(None, run_dir, records=records, callbacks=callbacks)
                session._exit = exit_stack
                return session
        parts = build(config, **parts_of)
        session = ActiveSession(
            parts, run_dir, checkpoint, callbacks=callbacks, train_name=train_name
        )
    except BaseException:
        exit_stack.close()
        raise
    session._exit = exit_stack
    return session


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def _as_labels(labels, oracle) -> np.ndarray:
    name = _name(oracle)
    if labels is None:
        raise ValueError(f"the oracle {name} returned None; it must return one class per position")
    try:
        return np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"the oracle {name} returned {type(labels).__name__}, not labels: {err}"
        ) from None
