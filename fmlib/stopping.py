"""Rules that end a run before its label schedule does: a label budget, a target accuracy, a
plateau of the learning curve.

A rule looks at the rows of the rounds so far (the current one last, trained and evaluated,
before it selects) and says whether the run stops there: that round then queries nothing and is
the run's last. Rules are plain values in a config (``stopping``: a list of dicts such as
``{"rule": "target_accuracy", "accuracy": 0.85}``), so they travel through ``config.json``,
papermill and the grid; the records say which rule stopped the run and in which round
(``config.json``'s ``stopped``, ``results.json``'s ``stopped``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


class LabelBudget:
    """Stop once the labeled set holds ``labels`` samples or more."""

    rule = "label_budget"

    def __init__(self, labels: int):
        if isinstance(labels, bool) or not isinstance(labels, int) or labels < 1:
            raise ValueError(
                f"stopping rule label_budget: labels must be an integer >= 1, got {labels!r}"
            )
        self.labels = labels

    def should_stop(self, rows: Sequence[Mapping]) -> bool:
        return int(rows[-1]["n_labeled"]) >= self.labels

    def to_dict(self) -> dict:
        return {"rule": self.rule, "labels": self.labels}


METRICS = ("accuracy", "balanced_accuracy")  # the rows' columns a rule may watch


def _check_metric(rule: str, metric) -> None:
    if metric not in METRICS:
        raise ValueError(
            f"stopping rule {rule}: metric must be 'accuracy' or 'balanced_accuracy', "
            f"got {metric!r}"
        )


class TargetAccuracy:
    """Stop once the test ``metric`` (``accuracy`` or ``balanced_accuracy``) reaches
    ``accuracy``."""

    rule = "target_accuracy"

    def __init__(self, accuracy: float, metric: str = "accuracy"):
        if not _real(accuracy) or not 0 < accuracy <= 1:
            raise ValueError(
                f"stopping rule target_accuracy: accuracy must be in (0, 1], got {accuracy!r}"
            )
        _check_metric("target_accuracy", metric)
        self.accuracy, self.metric = float(accuracy), metric

    def should_stop(self, rows: Sequence[Mapping]) -> bool:
        return float(rows[-1][self.metric]) >= self.accuracy

    def to_dict(self) -> dict:
        return {"rule": self.rule, "accuracy": self.accuracy, "metric": self.metric}


class Plateau:
    """Stop when the best accuracy of the last ``patience`` rounds beats the best before them by
    less than ``min_delta`` (the learning curve has flattened)."""

    rule = "plateau"

    def __init__(self, patience: int = 2, min_delta: float = 0.005, metric: str = "accuracy"):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(
                f"stopping rule plateau: patience must be an integer >= 1, got {patience!r}"
            )
        if not _real(min_delta) or min_delta < 0:
            raise ValueError(
                f"stopping rule plateau: min_delta must be a number >= 0, got {min_delta!r}"
            )
        _check_metric("plateau", metric)
        self.patience, self.min_delta, self.metric = patience, float(min_delta), metric

    def should_stop(self, rows: Sequence[Mapping]) -> bool:
        if len(rows) <= self.patience:
            return False
        values = [float(r[self.metric]) for r in rows]
        return max(values[-self.patience :]) - max(values[: -self.patience]) < self.min_delta

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "metric": self.metric,
        }


RULES = {cls.rule: cls for cls in (LabelBudget, TargetAccuracy, Plateau)}


def stop_rules(specs) -> list:
    """Rule objects from a config's ``stopping`` (dicts with a ``rule`` key, or rule objects);
    ``ValueError`` naming what is wrong."""
    if not isinstance(specs, (list, tuple)):
        raise ValueError(f"stopping must be a list of rules, got {type(specs).__name__}")
    out = []
    for spec in specs:
        if hasattr(spec, "should_stop"):
            out.append(spec)
            continue
        if not isinstance(spec, Mapping) or spec.get("rule") not in RULES:
            raise ValueError(
                f"stopping: each rule is a dict with 'rule' one of {list(RULES)}, got {spec!r}"
            )
        options = {k: v for k, v in spec.items() if k != "rule"}
        try:
            out.append(RULES[spec["rule"]](**options))
        except TypeError as err:
            raise ValueError(f"stopping rule {spec['rule']}: {err}") from None
    return out


def rule_specs(specs) -> list[dict]:
    """The plain-dict form of ``stopping`` (what ``config.json`` holds)."""
    return [spec.to_dict() if hasattr(spec, "to_dict") else dict(spec) for spec in specs]


def check_stop(rules: Sequence, rows: Sequence[Mapping]) -> dict | None:
    """The first rule that stops after ``rows`` (``{"rule": ..., options}``), or ``None``."""
    for rule in rules:
        if rows and rule.should_stop(rows):
            return rule.to_dict()
    return None


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
