"""The ablation: which difference between the authors' runs and ours decides whether
FisherMask wins. Arms, their runs, and paired differences against the baselines.

Two anchors: ``ours`` (first query by the trained model, our CNN, FisherMask rows scaled by
sqrt(p) with a 0.005 mask, 2000 random candidates per round) and ``authors`` (their
``experiments.py``: first query by the untrained weights for all but BAIT, their ResNet-18,
unscaled rows, a 0.01 mask, the whole pool). From each anchor one factor changes at a time;
``authors replica`` changes the rest of the original code's choices at once (F_U over the whole
pool, the float64 greedy, the class-sorted Fisher sample, BatchNorm left as trained). The
grids live in ``grids/ablation/<protocol>.json``: a *protocol* is what every strategy shares
(first query, model, candidates), so an arm that changes only a FisherMask option is an ``fm-*``
strategy of its anchor's protocol and shares the anchor's baseline runs. Run directories are
``<root>/<protocol>/<label>-seed<k>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fmlib.analysis.compare import (
    area_under_curve,
    at_budget,
    judged_differences,
    paired_differences,
)
from fmlib.records.formats import class_columns, column_class

BASELINES = ("entropy", "margin", "bait", "random")
TREATMENT = "fm"


@dataclass(frozen=True)
class Arm:
    """One cell of the ablation: FisherMask runs ``(protocol, label)`` against the baselines of
    ``protocol``; ``borrow`` names, per baseline, another protocol whose runs are the same config
    (e.g. random does not depend on the candidate cap)."""

    name: str
    anchor: str  # "ours" | "authors"
    factor: str  # what differs from the anchor ("anchor" for the anchor itself)
    protocol: str
    label: str = TREATMENT
    borrow: dict = field(default_factory=dict)


ARMS = (
    Arm("ours", "ours", "anchor", "ours"),
    Arm("ours + authors' first query", "ours", "first query", "ours-first-authors"),
    Arm("ours + unscaled rows", "ours", "scale", "ours", "fm-scale-none"),
    Arm("ours + their ResNet-18", "ours", "model", "ours-resnet"),
    Arm("ours + fraction 0.002", "ours", "fraction", "ours", "fm-fraction0.002"),
    Arm("ours + fraction 0.01", "ours", "fraction", "ours", "fm-fraction0.01"),
    Arm("ours + fraction 0.03", "ours", "fraction", "ours", "fm-fraction0.03"),
    Arm("ours + random mask", "ours", "mask method", "ours", "fm-random-mask"),
    Arm("ours + float64 selection", "ours", "precision", "ours", "fm-float64"),
    Arm("ours + whole pool", "ours", "candidates", "ours-whole-pool", borrow={"random": "ours"}),
    Arm("authors", "authors", "anchor", "authors"),
    Arm(
        "authors + trained first query",
        "authors",
        "first query",
        "authors-first-trained",
        borrow={"bait": "authors"},
    ),
    Arm("authors + sqrt(p) rows", "authors", "scale", "authors", "fm-scale-fisher"),
    Arm("authors + our CNN", "authors", "model", "authors-cnn"),
    Arm("authors + fraction 0.002", "authors", "fraction", "authors", "fm-fraction0.002"),
    Arm("authors + fraction 0.005", "authors", "fraction", "authors", "fm-fraction0.005"),
    Arm("authors + fraction 0.03", "authors", "fraction", "authors", "fm-fraction0.03"),
    Arm("authors + random mask", "authors", "mask method", "authors", "fm-random-mask"),
    Arm(
        "authors + 2000 candidates",
        "authors",
        "candidates",
        "authors-2000",
        borrow={"random": "authors"},
    ),
    Arm("authors replica", "authors", "replica", "authors-replica"),
)

_SEEDED = re.compile(r"^(?P<label>.+)-seed(?P<seed>\d+)$")


def label_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``protocol`` (the run directory's parent folder) and ``label`` (its name without
    ``-seed<k>``) to a :func:`fmlib.records.load_runs` table."""
    out = frame.copy()
    paths = out["path"].map(Path)
    out["protocol"] = paths.map(lambda p: p.parent.name)
    out["label"] = paths.map(
        lambda p: _SEEDED.match(p.name).group("label") if _SEEDED.match(p.name) else p.name
    )
    return out


def arm_runs(
    per_run: pd.DataFrame, arms: Sequence[Arm] = ARMS, baselines: Sequence[str] = BASELINES
) -> pd.DataFrame:
    """Per-run rows (with ``protocol`` and ``label``) assigned to arms: each arm's FisherMask runs
    as label ``fm`` and its baselines' runs, a run appearing in every arm that uses it. Column
    ``arm``."""
    parts = []
    for arm in arms:
        fm = per_run[
            (per_run["protocol"] == arm.protocol) & (per_run["label"] == arm.label)
        ].assign(label=TREATMENT)
        parts.append(fm.assign(arm=arm.name))
        for base in baselines:
            source = arm.borrow.get(base, arm.protocol)
            runs = per_run[(per_run["protocol"] == source) & (per_run["label"] == base)]
            parts.append(runs.assign(arm=arm.name))
    return pd.concat(parts, ignore_index=True) if parts else per_run.iloc[:0].assign(arm=[])


def _measures(
    frame: pd.DataFrame, budgets: Sequence[int], metric: str, from_first_query: bool = False
) -> list[tuple[str, pd.DataFrame, str]]:
    """``(measure, per-run table, value column)``: AUC, then (``from_first_query``) the AUC over the
    rounds after the first query (``auc_from_first_query``: round 0's point, the same labels for
    every strategy, left out), then ``metric`` at each of ``budgets``, per (protocol, label) run."""
    by = ("protocol", "label")
    measures = [("auc", area_under_curve(frame, metric=metric, by=by), "auc")]
    if from_first_query:
        queried = frame[frame["round"] >= 1]
        measures.append(
            ("auc_from_first_query", area_under_curve(queried, metric=metric, by=by), "auc")
        )
    return measures + [(str(b), at_budget(frame, b, metric=metric, by=by), metric) for b in budgets]


def _paired(margin: float | None):
    """The paired comparison: plain differences, or (``margin``) with every test of
    :func:`fmlib.analysis.compare.judged_differences` beside each row, one Holm family per
    measure's table."""
    if margin is None:
        return paired_differences
    return lambda per_run, value, **kw: judged_differences(per_run, value, margin=margin, **kw)


def arm_differences(
    frame: pd.DataFrame,
    *,
    budgets: Sequence[int] = (),
    metric: str = "accuracy",
    arms: Sequence[Arm] = ARMS,
    baselines: Sequence[str] = BASELINES,
    from_first_query: bool = False,
    margin: float | None = None,
) -> pd.DataFrame:
    """FisherMask minus each baseline per arm, paired by seed: in AUC (``measure == "auc"``; also
    ``"auc_from_first_query"`` with ``from_first_query``) and in ``metric`` at each of ``budgets``
    labels (``measure == "<budget>"``). ``frame``: a :func:`label_runs` table. Arms without
    FisherMask runs are left out. With an equivalence ``margin`` every row also carries the tests
    of :func:`fmlib.analysis.compare.judged_differences` (Holm over each measure's rows)."""
    measures = _measures(frame, budgets, metric, from_first_query)
    paired = _paired(margin)
    tables = []
    for measure, per_run, value in measures:
        table = paired(
            arm_runs(per_run, arms, baselines), value, treatment=TREATMENT, baselines=baselines
        )
        tables.append(table.assign(measure=measure))
    out = pd.concat(tables, ignore_index=True)
    info = pd.DataFrame([{"arm": a.name, "anchor": a.anchor, "factor": a.factor} for a in arms])
    return info.merge(out, on="arm", how="inner")


def factor_effects(
    frame: pd.DataFrame,
    *,
    budgets: Sequence[int] = (),
    metric: str = "accuracy",
    arms: Sequence[Arm] = ARMS,
    from_first_query: bool = False,
    margin: float | None = None,
) -> pd.DataFrame:
    """What each factor does to FisherMask itself: an arm's FisherMask minus its anchor's
    FisherMask, paired by seed, in AUC and in ``metric`` at each of ``budgets``. ``frame``: a
    :func:`label_runs` table. One row per one-factor arm with runs on both sides (``baseline`` is
    the anchor's name). ``from_first_query`` and ``margin`` as for :func:`arm_differences`."""
    anchors = {a.anchor: a for a in arms if a.factor == "anchor"}
    measures = _measures(frame, budgets, metric, from_first_query)
    paired = _paired(margin)
    tables = []
    for measure, per_run, value in measures:
        parts = []
        for arm in arms:
            anchor = anchors.get(arm.anchor)
            if arm.factor == "anchor" or anchor is None:
                continue
            for source, label in ((arm, "changed"), (anchor, anchor.name)):
                runs = per_run[
                    (per_run["protocol"] == source.protocol) & (per_run["label"] == source.label)
                ]
                parts.append(runs.assign(arm=arm.name, label=label))
        if parts:
            table = paired(pd.concat(parts, ignore_index=True), value, treatment="changed")
            tables.append(table.assign(measure=measure))
    if not tables:
        return pd.DataFrame(columns=["arm", "anchor", "factor", "baseline", "n", "diff", "measure"])
    info = pd.DataFrame([{"arm": a.name, "anchor": a.anchor, "factor": a.factor} for a in arms])
    return info.merge(pd.concat(tables, ignore_index=True), on="arm", how="inner")


@dataclass(frozen=True)
class Effect:
    """One strategy's runs under a changed protocol against its runs under a reference protocol:
    ``(protocol, label)`` minus ``(reference, reference_label)``, paired by seed."""

    name: str
    protocol: str
    label: str
    reference: str = "ours"
    reference_label: str | None = None  # default: ``label``


FIRST_QUERY_EFFECTS = (
    Effect("entropy", "ours-first-authors", "entropy"),
    Effect("margin", "ours-first-authors", "margin"),
    Effect("FisherMask", "ours-first-authors", "fm"),
    Effect("FisherMask, random mask", "ours-first-initial", "fm-random-mask"),
    Effect("BAIT", "ours-first-initial", "bait"),
)
"""What an untrained first query does to each strategy: its runs with ``first_query`` untrained
minus its runs under the *ours* anchor (first query by the trained model)."""


def label_effects(
    frame: pd.DataFrame,
    effects: Sequence[Effect] = FIRST_QUERY_EFFECTS,
    *,
    budgets: Sequence[int] = (),
    metric: str = "accuracy",
    from_first_query: bool = False,
    margin: float | None = None,
) -> pd.DataFrame:
    """Each effect's changed runs minus its reference runs, paired by seed, in AUC (and
    ``auc_from_first_query``) and in ``metric`` at each of ``budgets``; one row per effect and
    measure (``arm`` is the effect's name), Holm over each measure's rows with a ``margin``.
    ``frame``: a :func:`label_runs` table."""
    paired = _paired(margin)
    tables = []
    for measure, per_run, value in _measures(frame, budgets, metric, from_first_query):
        parts = []
        for effect in effects:
            for protocol, label, side in (
                (effect.protocol, effect.label, "changed"),
                (effect.reference, effect.reference_label or effect.label, "reference"),
            ):
                runs = per_run[(per_run["protocol"] == protocol) & (per_run["label"] == label)]
                parts.append(runs.assign(arm=effect.name, label=side))
        table = paired(pd.concat(parts, ignore_index=True), value, treatment="changed")
        tables.append(table.assign(measure=measure))
    return pd.concat(tables, ignore_index=True)


def anchor_differences(
    frame: pd.DataFrame,
    *,
    treatment: str = "authors",
    reference: str = "ours",
    budgets: Sequence[int] = (),
    metric: str = "accuracy",
    arms: Sequence[Arm] = ARMS,
    baselines: Sequence[str] = BASELINES,
    from_first_query: bool = False,
    margin: float | None = None,
) -> pd.DataFrame:
    """What all of one anchor's differences together do to every strategy: the ``treatment``
    anchor's runs of a strategy minus the ``reference`` anchor's runs of the same strategy, paired
    by seed (a seed fixes the pool and the initial labels under both), in AUC and in ``metric`` at
    each of ``budgets``. FisherMask is each anchor's own (``fm``), the baselines as the anchor arm
    takes them (``borrow`` included). One row per strategy with runs under both anchors; columns as
    :func:`fmlib.analysis.compare.paired_differences` with ``strategy`` and ``measure``;
    ``from_first_query`` and ``margin`` as for :func:`arm_differences`."""
    anchors = {a.anchor: a for a in arms if a.factor == "anchor"}
    if treatment not in anchors or reference not in anchors:
        raise ValueError(
            f"treatment and reference must be anchors of arms; anchors: {sorted(anchors)}"
        )
    measures = _measures(frame, budgets, metric, from_first_query)
    paired = _paired(margin)
    tables = []
    for measure, per_run, value in measures:
        runs = arm_runs(per_run, [anchors[treatment], anchors[reference]], baselines)
        runs = runs.assign(
            strategy=runs["label"],
            label=runs["arm"].map(
                {anchors[treatment].name: treatment, anchors[reference].name: reference}
            ),
        )
        table = paired(runs, value, treatment=treatment, baselines=[reference], group=("strategy",))
        tables.append(table.assign(measure=measure))
    return pd.concat(tables, ignore_index=True)


def query_shares(
    frame: pd.DataFrame, *, by: Sequence[str] = ("protocol", "label"), first: bool = False
) -> pd.DataFrame:
    """Which classes each strategy asked for: the share of every class among the points queried
    over a run's rounds (``query_<c>`` columns; only round 0's query with ``first=True``), mean over
    the seeds. One row per ``by`` group, columns ``class <c>`` and ``seeds``."""
    columns = class_columns(frame, "query")
    rows = frame[frame["round"] == 0] if first else frame
    per_run = rows.groupby([*by, "path"], sort=False)[columns].sum()
    shares = per_run.div(per_run.sum(axis=1).where(lambda s: s > 0), axis=0)
    out = shares.groupby(list(by), sort=False).mean()
    out.columns = [f"class {column_class(c)}" for c in columns]
    return out.assign(
        seeds=shares.notna().all(axis=1).groupby(list(by), sort=False).sum()
    ).reset_index()


def class_coverage(
    frame: pd.DataFrame, *, round: int = 1, by: Sequence[str] = ("protocol", "label")
) -> pd.DataFrame:
    """How well the labeled set covers the classes after ``round`` rounds (round 1: after the first
    query): per ``by`` group, ``seeds``, ``seeds_missing_a_class`` (runs with a class without a
    single label) and ``smallest_class`` (the smallest class count, mean over the seeds), from the
    ``count_<c>`` columns."""
    columns = class_columns(frame, "count")
    rows = frame[frame["round"] == round].drop_duplicates("path")
    smallest = rows[columns].min(axis=1)
    table = rows[list(by)].assign(smallest=smallest, missing=smallest == 0)
    out = table.groupby(list(by), sort=False).agg(
        seeds=("smallest", "size"),
        seeds_missing_a_class=("missing", "sum"),
        smallest_class=("smallest", "mean"),
    )
    return out.reset_index()


def noise_and_spread(
    frame: pd.DataFrame,
    *,
    protocol: str = "ours",
    label: str = "fm-float64",
    anchor: str = TREATMENT,
    metric: str = "accuracy",
) -> pd.DataFrame:
    """How far two runs of one method that differ only numerically (e.g. ``fm-float64`` against the
    float32 ``fm``) land apart, next to how far the seeds spread: per number of labels, the mean and
    the largest ``|label - anchor|`` over the paired seeds and the standard deviation of ``anchor``
    over the seeds. ``frame``: a :func:`label_runs` table."""
    runs = frame[frame["protocol"] == protocol]
    table = runs[runs["label"].isin([label, anchor])].pivot_table(
        index=["n_labeled", "seed"], columns="label", values=metric, aggfunc="first"
    )
    if label not in table or anchor not in table:
        return pd.DataFrame(
            columns=["n_labeled", "seeds", "mean_abs_diff", "max_abs_diff", "seed_sd"]
        )
    paired = table.dropna(subset=[label, anchor])
    gap = (paired[label] - paired[anchor]).abs().groupby(level="n_labeled")
    spread = table[anchor].groupby(level="n_labeled").std(ddof=1)
    out = pd.DataFrame(
        {
            "seeds": gap.size(),
            "mean_abs_diff": gap.mean(),
            "max_abs_diff": gap.max(),
            "seed_sd": spread,
        }
    )
    return out.dropna(subset=["seeds"]).reset_index()
