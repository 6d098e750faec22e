"""Recompute a results page's primary table from the committed records, without fmlib.

Reads every run directory's ``config.json`` and ``rounds.csv`` under RECORDS with json and
pandas, and computes, for TREATMENT minus each baseline paired by seed, the mean difference of
the AUC from the first query on (rounds >= 1, trapezoid over ``n_labeled`` divided by the label
range), its 95 % t interval, the exact two-sided sign-flip p, the paired t p, Holm's adjustment
within each family, the TOST equivalence p at each margin (Holm-adjusted), the verdict word and
the seeds a paired t test needs for 80 % power against a gap of the first margin. Statistics come
from scipy; nothing is imported from fmlib, so an error in fmlib's analysis code cannot hide
here. ``--check`` also computes the same rows with fmlib and exits 1 if any differs by more than
1e-9.

Usage (the balanced FashionMNIST page)::

    python docs/results/recompute.py results/balanced --treatment fishermask \\
        --family bait badge margin entropy bald coreset --family random --check

the claim study's *ours* anchor (``results/ablation/ours``: FisherMask is labelled ``fm``)::

    python docs/results/recompute.py results/ablation/ours --treatment fm \\
        --family entropy margin bait --family random

the large-budget page::

    python docs/results/recompute.py results/ablation/ours-large-budget --treatment fm \\
        --family bait margin entropy --family random --check

and the analysis plan's primary table (every arm of the claim study, one Holm family)::

    python docs/results/recompute.py results/ablation --ablation \\
        --family entropy margin bait --check
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05


def read_runs(root: Path) -> pd.DataFrame:
    """One row per finished run: label (directory name without ``-seed<k>``), seed, primary AUC."""
    rows = []
    for config_path in sorted(root.glob("*/config.json")):
        run = config_path.parent
        config = json.loads(config_path.read_text())["config"]
        rounds = pd.read_csv(run / "rounds.csv").sort_values("n_labeled")
        results = json.loads((run / "results.json").read_text())
        if not results.get("finished", True) or results.get("smoke"):
            continue
        after = rounds[rounds["round"] >= 1]
        x = after["n_labeled"].to_numpy(float)
        y = after["accuracy"].to_numpy(float)
        area = np.trapezoid(y, x) / (x[-1] - x[0]) if len(x) > 1 else y[-1]
        label = re.sub(r"-seed\d+$", "", run.name)
        rows.append({"label": label, "seed": int(config["seed"]), "auc_from_first_query": area})
    return pd.DataFrame(rows)


# The claim study's arms as (name, protocol, FisherMask label, {baseline: protocol it borrows}),
# written out here so that nothing comes from fmlib; a test holds them equal to
# fmlib.analysis.ablation.ARMS.
ARMS = [
    ("ours", "ours", "fm", {}),
    ("ours + authors' first query", "ours-first-authors", "fm", {}),
    ("ours + unscaled rows", "ours", "fm-scale-none", {}),
    ("ours + their ResNet-18", "ours-resnet", "fm", {}),
    ("ours + fraction 0.002", "ours", "fm-fraction0.002", {}),
    ("ours + fraction 0.01", "ours", "fm-fraction0.01", {}),
    ("ours + fraction 0.03", "ours", "fm-fraction0.03", {}),
    ("ours + random mask", "ours", "fm-random-mask", {}),
    ("ours + float64 selection", "ours", "fm-float64", {}),
    ("ours + whole pool", "ours-whole-pool", "fm", {"random": "ours"}),
    ("authors", "authors", "fm", {}),
    ("authors + trained first query", "authors-first-trained", "fm", {"bait": "authors"}),
    ("authors + sqrt(p) rows", "authors", "fm-scale-fisher", {}),
    ("authors + our CNN", "authors-cnn", "fm", {}),
    ("authors + fraction 0.002", "authors", "fm-fraction0.002", {}),
    ("authors + fraction 0.005", "authors", "fm-fraction0.005", {}),
    ("authors + fraction 0.03", "authors", "fm-fraction0.03", {}),
    ("authors + random mask", "authors", "fm-random-mask", {}),
    ("authors + 2000 candidates", "authors-2000", "fm", {"random": "authors"}),
    ("authors replica", "authors-replica", "fm", {}),
]


def read_protocols(root: Path) -> pd.DataFrame:
    """:func:`read_runs` of every protocol folder under ``root``, with its ``protocol``."""
    parts = [read_runs(d).assign(protocol=d.name) for d in sorted(root.iterdir()) if d.is_dir()]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def arm_table(runs: pd.DataFrame, baselines: list[str], margins) -> pd.DataFrame:
    """FisherMask minus each baseline for every arm with runs, one Holm family over all rows:
    the plan's primary table. The arm's label in its protocol is the treatment."""
    wide = runs.pivot_table(
        index="seed", columns=["protocol", "label"], values="auc_from_first_query"
    )
    rows = []
    for name, protocol, label, borrow in ARMS:
        if (protocol, label) not in wide:
            continue
        for baseline in baselines:
            source = (borrow.get(baseline, protocol), baseline)
            if source not in wide:
                continue
            d = (wide[(protocol, label)] - wide[source]).dropna().to_numpy(float)
            if len(d) >= 2:  # a spread, an interval and a test need two seeds
                rows.append({"arm": name, **_row(d, baseline, margins)})
    return _judged(pd.DataFrame(rows), margins)


def sign_flip(d: np.ndarray) -> float:
    """Exact two-sided sign-flip p: the share of the 2^n sign patterns (counted through the bits
    of 0 .. 2^n - 1) whose |mean| reaches the observed one."""
    n = len(d)
    patterns = (np.arange(2**n)[:, None] >> np.arange(n)) & 1  # [2^n, n] bits
    means = np.abs(((1 - 2 * patterns) * d).sum(axis=1)) / n
    return float(np.mean(means >= abs(d.mean()) * (1 - 1e-12)))


def holm(p: list[float]) -> list[float]:
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(len(p))
    m, worst = len(p), 0.0
    for rank, i in enumerate(order):
        worst = max(worst, min(1.0, (m - rank) * p[i]))
        adjusted[i] = worst
    return adjusted.tolist()


def tost(d: np.ndarray, margin: float) -> float:
    n = len(d)
    se = d.std(ddof=1) / np.sqrt(n)
    lower = stats.t.sf((d.mean() + margin) / se, n - 1)  # H0: mean <= -margin
    upper = stats.t.cdf((d.mean() - margin) / se, n - 1)  # H0: mean >= +margin
    return float(max(lower, upper))


def seeds_for_power(gap: float, sd: float, power: float = 0.8, most: int = 1000) -> int:
    """Fewest seeds for ``power`` against ``gap`` at spread ``sd`` (``most`` + 1 if more)."""
    for n in range(2, most + 1):
        df, nc = n - 1, gap / sd * np.sqrt(n)
        crit = stats.t.ppf(1 - ALPHA / 2, df)
        if stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc) >= power:
            return n
    return most + 1


def _row(d: np.ndarray, baseline: str, margins) -> dict:
    """The paired statistics of the differences ``d`` (one per seed)."""
    n, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    half = stats.t.ppf(1 - ALPHA / 2, n - 1) * sd / np.sqrt(n)
    row = {
        "baseline": baseline,
        "n": n,
        "diff": mean,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "sign_flip_p": sign_flip(d),
        "t_p": float(stats.ttest_1samp(d, 0.0).pvalue),
        "seeds_needed": seeds_for_power(margins[0], sd),
    }
    for margin in margins:
        row[f"tost_{margin}"] = tost(d, margin)
    return row


def _judged(part: pd.DataFrame, margins) -> pd.DataFrame:
    """Holm within ``part`` (one family) and the verdict word of each row."""
    part = part.copy()
    part["t_p_holm"] = holm(part["t_p"].tolist())
    for margin in margins:
        part[f"tost_{margin}_holm"] = holm(part[f"tost_{margin}"].tolist())
    first = f"tost_{margins[0]}_holm"
    part["verdict"] = [
        ("ahead" if diff > 0 else "behind") if p < ALPHA else "level" if e < ALPHA else "undecided"
        for p, e, diff in zip(part["t_p_holm"], part[first], part["diff"])
    ]
    return part


def table(runs: pd.DataFrame, treatment: str, families: list[list[str]], margins) -> pd.DataFrame:
    wide = runs.pivot_table(index="seed", columns="label", values="auc_from_first_query")
    out = []
    for family in families:
        rows = []
        for baseline in family:
            d = (wide[treatment] - wide[baseline]).dropna().to_numpy(float)
            rows.append(_row(d, baseline, margins))
        out.append(_judged(pd.DataFrame(rows), margins))
    return pd.concat(out, ignore_index=True)


def fmlib_rows(root: Path, treatment: str, families, margin: float) -> pd.DataFrame:
    """The same rows from fmlib's loader, AUC and verdicts (for --check only)."""
    from fmlib.analysis.compare import area_under_curve, judged_differences
    from fmlib.records import load_runs

    frame = load_runs(str(root / "*"))
    frame = frame.assign(label=frame["run"].str.replace(r"-seed\d+$", "", regex=True))
    per_run = area_under_curve(frame[frame["round"] >= 1], by=("label",))
    per_run = per_run.rename(columns={"auc": "auc_from_first_query"})
    parts = [
        judged_differences(
            per_run,
            "auc_from_first_query",
            treatment=treatment,
            margin=margin,
            baselines=family,
            group=(),
        )
        for family in families
    ]
    return pd.concat(parts, ignore_index=True)


def fmlib_arm_rows(root: Path, baselines, margin: float) -> pd.DataFrame:
    """The plan's primary table from fmlib (for --check only)."""
    from fmlib.analysis import ablation
    from fmlib.records import load_runs

    frame = ablation.label_runs(load_runs(str(root / "*" / "*")))
    frame = frame[frame["finished"]]
    rows = ablation.arm_differences(
        frame, from_first_query=True, margin=margin, baselines=tuple(baselines)
    )
    return rows[rows["measure"] == "auc_from_first_query"]


PAIRS = {  # this script's column: fmlib's
    "diff": "diff",
    "ci_low": "ci_low",
    "ci_high": "ci_high",
    "sign_flip_p": "p_value",
    "t_p": "t_p_value",
    "t_p_holm": "p_holm",
    "seeds_needed": "seeds_needed",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "records", type=Path, help="directory of run directories (--ablation: of protocols)"
    )
    parser.add_argument("--treatment", help="label of the treatment's runs (not with --ablation)")
    parser.add_argument(
        "--family",
        nargs="+",
        action="append",
        required=True,
        help="baselines of one Holm family (repeat for more families; --ablation takes one)",
    )
    parser.add_argument("--margin", type=float, nargs="+", default=[0.02, 0.01])
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="the claim study's primary table: every arm of ARMS, one Holm family",
    )
    parser.add_argument("--check", action="store_true", help="compare with fmlib's rows")
    args = parser.parse_args(argv)
    if args.ablation and len(args.family) != 1:
        parser.error("--ablation takes one --family (its rows are one Holm family)")
    if not args.ablation and not args.treatment:
        parser.error("--treatment is required without --ablation")
    if args.ablation:
        runs = read_protocols(args.records)
        what = "FisherMask minus each baseline per arm"
    else:
        runs = read_runs(args.records)
        what = f"{args.treatment} minus each baseline"
    if runs.empty:
        parser.error(f"no finished runs under {args.records}")
    if args.ablation:
        ours = arm_table(runs, args.family[0], args.margin)
    else:
        ours = table(runs, args.treatment, args.family, args.margin)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(f"{len(runs)} finished runs under {args.records}; {what}")
        print(ours.round(4).to_string(index=False))
    if not args.check:
        return 0
    pairs = {**PAIRS, f"tost_{args.margin[0]}_holm": "p_tost_holm"}
    if args.ablation:
        theirs = fmlib_arm_rows(args.records, args.family[0], args.margin[0])
        keys = ["arm", "baseline"]
        theirs = ours[keys].merge(theirs, on=keys, how="left")
    else:
        theirs = fmlib_rows(args.records, args.treatment, args.family, args.margin[0])
    worst = max(
        float(np.max(np.abs(ours[a].to_numpy(float) - theirs[b].to_numpy(float))))
        for a, b in pairs.items()
    )
    same_words = list(ours["verdict"]) == list(theirs["verdict"])
    print(f"fmlib's rows: largest difference {worst:.2e}, same verdicts: {same_words}")
    return 0 if worst <= 1e-9 and same_words else 1


if __name__ == "__main__":
    sys.exit(main())
