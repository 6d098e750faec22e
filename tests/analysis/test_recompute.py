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


def test_recomputation_agrees_with_fmlib_on_the_balanced_records(capsys):
    argv = [str(BALANCED), "--treatment", "fishermask", "--check"]
    for family in FAMILIES:
        argv += ["--family", *family]
    assert recompute_module().main(argv) == 0
    assert "same verdicts: True" in capsys.readouterr().out


def test_the_balanced_page_shows_the_recomputed_primary_table():
    module = recompute_module()
    table = module.table(module.read_runs(BALANCED), "fishermask", FAMILIES, [0.02, 0.01])
    page = (ROOT / "docs/results/fashion-mnist.md").read_text()
    names = {"BAIT": "bait", "BADGE": "badge", "BALD": "bald"}
    number = r"([+−-]\d\.\d{3})"
    rows = re.findall(rf"^\| (\w+) \| {number} \[{number}, {number}\] \|.*\| (\d+) \|$", page, re.M)
    assert len(rows) == 7
    for name, diff, low, high, seeds in rows:
        row = table[table["baseline"] == names.get(name, name)].iloc[0]
        shown = [float(v.replace("−", "-")) for v in (diff, low, high)]
        assert shown == [round(row[c], 3) for c in ("diff", "ci_low", "ci_high")], name
        assert int(seeds) == row["seeds_needed"], name
