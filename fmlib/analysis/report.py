"""A comparison of runs as files: the runs a set of globs matches (:func:`load_comparison`), then
the tables in Markdown, the AUC per group as JSON and the learning-curve and timing figures
(:func:`write_comparison`). ``fmlib compare`` is these two calls."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fmlib.analysis import compare, plots
from fmlib.records import CONFIG, load_runs, write_json

REPORT, SUMMARY = "results_table.md", "compare.json"


def load_comparison(
    patterns: Sequence[str], *, include_unfinished: bool = False, include_smoke: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy table (with ``setting``) of the runs the globs match to compare (finished ones
    unless ``include_unfinished``; smoke runs only with ``include_smoke``), and of every run
    matched.

    Raises:
        ValueError: a glob matches no run directory, every run matched is a smoke run, or none
            is finished.
    """
    paths = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True))
        runs = [p for p in matches if (Path(p) / CONFIG).is_file() or Path(p).name == CONFIG]
        if not runs:
            raise ValueError(f"no run directories (holding {CONFIG}) match {pattern!r}")
        paths += runs
    try:
        every = compare.with_setting(load_runs(paths, include_smoke=include_smoke))
    except FileNotFoundError:
        raise ValueError(
            "every run matched is a smoke run (a test, not a result); --smoke includes them"
        ) from None
    frame = every if include_unfinished else every[every["finished"]]
    if frame.empty:
        raise ValueError(
            f"none of the {every['run'].nunique()} runs matched is finished; --all "
            "includes unfinished runs"
        )
    return frame, every


def check_metric(frame: pd.DataFrame, metric: str) -> None:
    """``ValueError`` unless ``metric`` is a numeric column of ``frame`` (a rounds.csv one)."""
    numeric = metric in frame.columns and (
        pd.api.types.is_numeric_dtype(frame[metric])
        and not pd.api.types.is_bool_dtype(frame[metric])
    )
    if not numeric:
        what = "unknown" if metric not in frame.columns else "non-numeric"
        raise ValueError(
            f"{what} metric {metric!r}: a numeric rounds.csv column, e.g. accuracy, "
            "balanced_accuracy"
        )


def write_comparison(
    frame: pd.DataFrame,
    every: pd.DataFrame,
    output,
    *,
    runs: Sequence[str],
    metric: str = "accuracy",
    target: float | None = None,
    budgets: Sequence[int] = (),
    include_unfinished: bool = False,
) -> tuple[str, list[Path]]:
    """Write the comparison of ``frame``'s runs into the folder ``output``: :data:`REPORT` (AUC,
    final accuracy, labels to reach ``target``, accuracy at ``budgets`` per setting, seconds per
    round), :data:`SUMMARY` (the AUC per group) and the figures (PNG and SVG).

    Args:
        every: every run matched (those of ``frame`` and the unfinished ones left out).
        runs: the globs the runs came from, for the report's first line.

    Returns:
        The Markdown report and the figure files written.
    """
    import matplotlib.pyplot as plt

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    first = "AUC, final accuracy" + (", labels to reach the target" if target is not None else "")
    tables = {first: compare.comparison_table(frame, target=target, metric=metric)}
    for setting in sorted(frame["setting"].unique()) if budgets else []:
        tables[f"Accuracy at fixed label budgets, {setting}"] = compare.budget_table(
            frame[frame["setting"] == setting], budgets, metric=metric
        )
    tables["Seconds per round"] = compare.cost_table(frame)
    n_runs, skipped = frame["run"].nunique(), every["run"].nunique() - frame["run"].nunique()
    intro = (
        f"{n_runs} {'' if include_unfinished else 'finished '}runs from {' '.join(runs)}"
        + (f" ({skipped} unfinished left out)" if skipped else "")
        + "; mean ± std over seeds."
    )
    report = compare.markdown_report(tables, intro=intro)
    (output / REPORT).write_text(report)
    figures = []
    for y in dict.fromkeys([metric, "balanced_accuracy"]):  # the compared metric first
        fig = plots.learning_curve_panels(frame, col="setting", y=y)
        name = "learning_curves" if y == metric else f"learning_curves_{y}"
        figures += plots.save_figure(fig, output / name)
        plt.close(fig)
    fig = plots.round_timings(frame)
    figures += plots.save_figure(fig, output / "round_timings")
    plt.close(fig)
    auc = compare.mean_std(compare.area_under_curve(frame, metric=metric), "auc")
    write_json(
        output / SUMMARY,
        {
            "runs_globs": list(runs),
            "runs": int(n_runs),
            "metric": metric,
            "auc": auc.drop(columns="text").to_dict("records"),
            "figures": [p.name for p in figures] + [REPORT],
        },
    )
    return report, figures
