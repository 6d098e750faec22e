"""The results pages' independent recomputation (docs/results/recompute.py) agrees with fmlib's
analysis on the committed records, and the balanced page prints what the records give."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BALANCED = ROOT / "results" / "balanced"
FAMILIES = [["bait", "badge", "margin", "entropy", "bald", "coreset"], ["random"]]


def recompute_module():
    spec = importlib.util.spec_from_file_location("recompute", ROOT / "docs/results/recompute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.skipif(not BALANCED.is_dir(), reason="needs the committed records")


@pytest.mark.parametrize(
    "records, treatment, families",
    [
        (BALANCED, "fishermask", FAMILIES),
        (
            ROOT / "results/ablation/ours-large-budget",
            "fm",
            [["bait", "margin", "entropy"], ["random"]],
        ),
    ],
    ids=["balanced", "large-budget"],
)
def test_recomputation_agrees_with_fmlib_on_the_committed_records(
    capsys, records, treatment, families
):
    argv = [str(records), "--treatment", treatment, "--check"]
    for family in families:
        argv += ["--family", *family]
    assert recompute_module().main(argv) == 0
    assert "same verdicts: True" in capsys.readouterr().out


PAGES = [  # (page, records, treatment label, families, rows of its primary table)
    ("fashion-mnist.md", BALANCED, "fishermask", FAMILIES, 7),
    (
        "large-budget.md",
        ROOT / "results" / "ablation" / "ours-large-budget",
        "fm",
        [["bait", "margin", "entropy"], ["random"]],
        4,
    ),
]


@pytest.mark.parametrize("page, records, treatment, families, count", PAGES)
def test_a_results_page_shows_the_recomputed_primary_table(
    page, records, treatment, families, count
):
    module = recompute_module()
    table = module.table(module.read_runs(records), treatment, families, [0.02, 0.01])
    text = (ROOT / "docs" / "results" / page).read_text()
    names = {"BAIT": "bait", "BADGE": "badge", "BALD": "bald"}
    number = r"([+−-]\d\.\d{3})"
    rows = re.findall(rf"^\| (\w+) \| {number} \[{number}, {number}\] \|.*\| (\d+) \|$", text, re.M)
    assert len(rows) == count
    for name, diff, low, high, seeds in rows:
        row = table[table["baseline"] == names.get(name, name)].iloc[0]
        shown = [float(v.replace("−", "-")) for v in (diff, low, high)]
        assert shown == [round(row[c], 3) for c in ("diff", "ci_low", "ci_high")], name
        assert int(seeds) == row["seeds_needed"], name


ABLATION = ROOT / "results" / "ablation"
NUMBER = r"([+−-]\d\.\d{3})"
CELL = rf"{NUMBER} \[{NUMBER}, {NUMBER}\]"


def shown(*values: str) -> list[float]:
    return [float(v.replace("−", "-")) for v in values]


def rounded(row) -> list[float]:
    return [round(float(row[c]), 3) for c in ("diff", "ci_low", "ci_high")]


@pytest.fixture(scope="module")
def ablation_frame():
    from fmlib.analysis import ablation
    from fmlib.records import load_runs

    frame = ablation.label_runs(load_runs(str(ABLATION / "*" / "*")))
    return frame[frame["finished"]]


@pytest.mark.skipif(not ABLATION.is_dir(), reason="needs the committed records")
def test_the_analysis_plan_shows_what_the_records_give(ablation_frame):
    """Every cell of the plan's primary table (arm × entropy, margin, BAIT) and of its
    factor-effect table is the records' value rounded once to three decimals."""
    from fmlib.analysis import ablation

    page = (ROOT / "docs/results/analysis-plan.md").read_text()
    keywords = {"budgets": (85,), "from_first_query": True, "margin": 0.02}
    primary = ablation.arm_differences(
        ablation_frame, baselines=("entropy", "margin", "bait"), **keywords
    )
    primary = primary[primary["measure"] == "auc_from_first_query"]
    three = rf"^\| ([^|]+?) \| {CELL}, [^|]+\| {CELL}, [^|]+\| {CELL}, [^|]+\|$"
    rows = re.findall(three, page, re.M)
    assert len(rows) >= 10
    for name, *cells in rows:
        arm = re.sub(r" \(\d+ seeds\)$", "", name)
        for i, base in enumerate(("entropy", "margin", "bait")):
            row = primary[(primary["arm"] == arm) & (primary["baseline"] == base)].iloc[0]
            assert shown(*cells[3 * i : 3 * i + 3]) == rounded(row), (arm, base)
    effects = ablation.factor_effects(ablation_frame, **keywords)
    effects = effects[effects["measure"] == "auc_from_first_query"]
    rows = re.findall(rf"^\| ([^|]+?) \| {CELL} \| [^|]+\|$", page, re.M)
    arms = set(effects["arm"])  # a row names its arm, or an *ours* arm by its factor alone
    factors = [(n if n in arms else f"ours + {n}", c) for n, *c in rows]
    factors = [(arm, cells) for arm, cells in factors if arm in arms]
    assert len(factors) >= 8
    for arm, cells in factors:
        row = effects[effects["arm"] == arm].iloc[0]
        assert shown(*cells) == rounded(row), arm


def test_the_recomputation_names_the_arms_fmlib_names():
    from fmlib.analysis.ablation import ARMS

    theirs = [(a.name, a.protocol, a.label, a.borrow) for a in ARMS]
    assert recompute_module().ARMS == theirs


@pytest.mark.skipif(not ABLATION.is_dir(), reason="needs the committed records")
def test_the_plans_primary_table_recomputed_without_fmlib(capsys):
    module = recompute_module()
    argv = [str(ABLATION), "--ablation", "--family", "entropy", "margin", "bait", "--check"]
    assert module.main(argv) == 0
    assert "same verdicts: True" in capsys.readouterr().out
    table = module.arm_table(module.read_protocols(ABLATION), ["entropy", "margin", "bait"], [0.02])
    page = (ROOT / "docs/results/analysis-plan.md").read_text()
    three = rf"^\| ([^|]+?) \| {CELL}, [^|]+\| {CELL}, [^|]+\| {CELL}, [^|]+\|$"
    rows = re.findall(three, page, re.M)
    assert {re.sub(r" \(\d+ seeds\)$", "", r[0]) for r in rows} == set(table["arm"])
    for name, *cells in rows:
        arm = re.sub(r" \(\d+ seeds\)$", "", name)
        for i, base in enumerate(("entropy", "margin", "bait")):
            row = table[(table["arm"] == arm) & (table["baseline"] == base)].iloc[0]
            assert shown(*cells[3 * i : 3 * i + 3]) == rounded(row), (arm, base)
