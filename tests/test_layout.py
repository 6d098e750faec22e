"""Issue 10, structure: the package split by jobs keeps every public name, and the loop never
touches records."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fmlib"


@pytest.mark.parametrize(
    "module, names",
    [
        ("fmlib", ["run_experiment", "load_runs", "load_run", "ExperimentConfig", "get_strategy", "STRATEGIES"]),
        ("fmlib.strategies", ["get_strategy", "STRATEGIES", "register", "Strategy", "kmeans_pp", "head_gradient_embeddings"]),
        ("fmlib.experiment", ["ExperimentConfig", "ActiveLoop", "run_experiment", "label_schedule", "smoke_config",
                              "load_data"]),
        ("fmlib.seeds", ["round_seed", "seeded"]),
        ("fmlib.grid.spec", ["expand_grid", "load_grid"]),
        ("fmlib.grid.runner", ["run_grid", "summarize"]),
        ("fmlib.grid.cli", ["main", "parser", "usage_examples"]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_public_names_still_import(module, names):
    imported = importlib.import_module(module)
    assert all(hasattr(imported, name) for name in names)


def test_strategy_families_have_their_own_modules():
    from fmlib import strategies

    families = {"base": ["random"], "uncertainty": ["entropy", "margin", "least_confidence", "bald"],
                "diversity": ["coreset", "badge"], "fisher": ["bait", "fishermask"]}  # fmt: skip
    for module, names in families.items():
        for name in names:
            assert strategies.STRATEGIES[name].__module__ == f"fmlib.strategies.{module}", name
    assert sorted(strategies.STRATEGIES) == sorted(n for names in families.values() for n in names)


def imports(module: str, top_level: bool = False) -> set[str]:
    """The modules a module (or every module of a package) imports; ``top_level``: only at import time."""
    path = PACKAGE / module
    sources = sorted(path.glob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    found = set()
    for source in sources:
        tree = ast.parse(source.read_text())
        nodes = tree.body if top_level else list(ast.walk(tree))
        found |= {alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
        found |= {node.module for node in nodes if isinstance(node, ast.ImportFrom) and node.module}
    return {m for m in found if m.startswith("fmlib")}


def test_the_loop_never_touches_records_and_config_builds_without_them():
    assert imports("loop") <= {"fmlib.seeds", "fmlib.data", "fmlib.models", "fmlib.train", "fmlib.strategies"}
    assert "fmlib.records" not in imports("config", top_level=True)  # from_run reads a run directory when called
    assert "fmlib.records" not in imports("build")  # build: the parts of a run, nothing written
    assert {"fmlib.config", "fmlib.build", "fmlib.loop", "fmlib.records"} <= imports("experiment")


def test_split_modules_import_one_way():
    """Each split imports one way: build -> config, datasets -> data, fisher embeddings -> its engines."""
    assert "fmlib.build" not in imports("config", top_level=True)  # problems() builds trial parts when called
    assert "fmlib.config" in imports("build", top_level=True)
    assert "fmlib.datasets" not in imports("data") and "fmlib.data" in imports("datasets", top_level=True)
    assert "fmlib.fisher.embeddings" not in imports("fisher/func")
    assert "fmlib.fisher.func" in imports("fisher/embeddings", top_level=True)
    assert "fmlib.fisher.embeddings" not in imports("fisher/hooks")
    assert "fmlib.fisher.hooks" in imports("fisher/embeddings", top_level=True)


def test_records_import_nothing_of_the_loop_the_config_or_the_grid():
    outside = {m for m in imports("records") if not m.startswith("fmlib.records")}
    assert outside <= {"fmlib", "fmlib.analysis.compare"}  # the version; the summary's numbers (at call time)


def test_what_a_strategy_reports_is_declared():
    import numpy as np
    import torch

    from fmlib.data import ImageData
    from fmlib.strategies import FisherReport, SelectionReport, get_strategy

    labels = np.arange(12) % 3
    pool = ImageData(torch.randint(0, 255, (12, 1, 8, 8), dtype=torch.uint8), torch.from_numpy(labels), ["a", "b", "c"])
    model = torch.nn.Sequential()
    model.embed = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    model.head = torch.nn.Linear(4, 3)
    model.forward = lambda x: model.head(model.embed(x))
    for name, fisher in (("entropy", False), ("bait", True)):
        strategy = get_strategy(name)
        strategy.select(model, pool, np.arange(3), np.arange(3, 12), 2)
        assert isinstance(strategy.report, SelectionReport) and strategy.report.embed_time >= 0
        assert isinstance(strategy.report.fisher, FisherReport) == fisher


def test_dead_code_is_gone():
    import fmlib.grid.spec
    from fmlib.experiment import ExperimentConfig

    assert not hasattr(fmlib.grid.spec, "default_run_dir") and not hasattr(ExperimentConfig, "result_fields")
    assert not hasattr(importlib.import_module("fmlib.records"), "mask_tensors")


def test_notebooks_take_repo_root_from_the_notebook_helpers_not_the_grid():
    for name in ("active_learning", "sensitivity", "compare"):
        source = (PACKAGE.parent / "notebooks" / f"{name}.ipynb").read_text()
        assert "from fmlib.grid.spec import repo_root" not in source and "fmlib.notebook" in source, name


def test_mask_fraction_and_method_are_checked_in_one_place():
    sources = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}
    for message in ("fraction must be a number in (0, 1]", "unknown method {method!r}"):
        assert [name for name, text in sources.items() if message in text] == ["fisher/masks.py"], message
