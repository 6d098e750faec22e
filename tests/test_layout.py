"""The shape of the package: every public name imports, each family in its own module, and the
import graph (top-level and function-level imports, package ``__init__`` files counted) runs one
way: no cycle, no arrow up the layers."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fmlib"


@pytest.mark.parametrize(
    "module, names",
    [
        (
            "fmlib",
            [
                "run_experiment",
                "load_runs",
                "load_run",
                "ExperimentConfig",
                "get_strategy",
                "STRATEGIES",
            ],
        ),
        (
            "fmlib.strategies",
            [
                "get_strategy",
                "STRATEGIES",
                "register",
                "Strategy",
                "kmeans_pp",
                "head_gradient_embeddings",
            ],
        ),
        (
            "fmlib.experiment",
            [
                "ExperimentConfig",
                "ActiveLoop",
                "run_experiment",
                "label_schedule",
                "smoke_config",
                "load_data",
            ],
        ),
        ("fmlib.seeds", ["round_seed", "seeded"]),
        ("fmlib.grid.spec", ["expand_grid", "load_grid"]),
        ("fmlib.grid.runner", ["run_grid", "summarize"]),
        ("fmlib.grid.cli", ["main", "parser", "usage_examples"]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_public_names_still_import(module, names):
    imported = importlib.import_module(module)
    assert all(hasattr(imported, name) for name in names)


def test_strategy_families_have_their_own_modules():
    from fmlib import strategies

    families = {
        "base": ["random"],
        "uncertainty": ["entropy", "margin", "least_confidence", "bald"],
        "diversity": ["coreset", "badge"],
        "fisher": ["bait", "fishermask"],
    }
    for module, names in families.items():
        for name in names:
            assert strategies.STRATEGIES[name].__module__ == f"fmlib.strategies.{module}", name
    assert sorted(strategies.STRATEGIES) == sorted(n for names in families.values() for n in names)


def test_plot_families_have_their_own_modules():
    from fmlib.analysis import plots

    families = {
        "common": ["save_figure", "class_palette", "strategy_palette"],
        "runs": [
            "learning_curves",
            "learning_curve_panels",
            "per_class_accuracy",
            "class_histogram",
            "round_timings",
        ],
        "sensitivity": [
            "mask_overlap",
            "mask_overlap_matrix",
            "layer_share",
            "layer_share_summary",
            "fisher_over_rounds",
            "class_sensitivity",
            "top_samples",
        ],
        "ablation": ["paired_differences", "paired_differences_by_budget"],
    }
    for module, names in families.items():
        for name in names:
            assert getattr(plots, name).__module__ == f"fmlib.analysis.plots.{module}", name
    assert sorted(plots.__all__) == sorted(n for names in families.values() for n in names)
    for source in (PACKAGE / "analysis" / "plots").glob("*.py"):
        assert len(source.read_text().splitlines()) <= 450, source.name


def imports(module: str, top_level: bool = False) -> set[str]:
    """The modules a module (or every module of a package, subpackages included) imports;
    ``top_level``: only at import time."""
    path = PACKAGE / module
    sources = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    found = set()
    for source in sources:
        tree = ast.parse(source.read_text())
        nodes = tree.body if top_level else list(ast.walk(tree))
        found |= {
            alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names
        }
        found |= {node.module for node in nodes if isinstance(node, ast.ImportFrom) and node.module}
    return {m for m in found if m.startswith("fmlib")}


def test_the_loop_never_touches_records_and_config_builds_without_them():
    assert imports("loop") <= {
        "fmlib.seeds",
        "fmlib.data",
        "fmlib.models",
        "fmlib.train",
        "fmlib.strategies",
        "fmlib.records.formats",  # the declared round row, nothing that writes
    }
    # from_run reads a run directory when called
    assert "fmlib.records" not in imports("config", top_level=True)
    assert "fmlib.records" not in imports("build")  # build: the parts of a run, nothing written
    assert {"fmlib.config", "fmlib.build", "fmlib.loop", "fmlib.records"} <= imports("experiment")


def test_split_modules_import_one_way():
    """Each split imports one way: build -> config, datasets -> data, fisher embeddings -> its
    engines, the naive greedy -> the greedy, the run directory -> its lock, the toy -> its
    labels."""
    assert "fmlib.build" not in imports("config")  # trial builds live with what they build
    assert "fmlib.config" in imports("build", top_level=True)
    assert "fmlib.datasets" not in imports("data") and "fmlib.data" in imports(
        "datasets", top_level=True
    )
    assert "fmlib.fisher.embeddings" not in imports("fisher/func")
    assert "fmlib.fisher.func" in imports("fisher/embeddings", top_level=True)
    assert "fmlib.fisher.embeddings" not in imports("fisher/hooks")
    assert "fmlib.fisher.hooks" in imports("fisher/embeddings", top_level=True)
    assert "fmlib.fisher.greedy_naive" not in imports("fisher/greedy")  # the oracle sits above
    assert "fmlib.records.directory" not in imports("records/lock")
    assert "fmlib.records.lock" in imports("records/directory", top_level=True)
    assert "fmlib.primer.toy" not in imports("primer/labels")


def _outside(package: str) -> set[str]:
    return {m for m in imports(package) if not m.startswith(f"fmlib.{package}")}


def test_the_fisher_engine_never_imports_more_than_the_data_and_the_models():
    allowed = {"fmlib.checks", "fmlib.data", "fmlib.inputs", "fmlib.models", "fmlib.progress"}
    assert _outside("fisher") <= allowed


def test_records_never_import_analysis_the_loop_the_config_or_the_grid():
    assert _outside("records") <= {"fmlib"}  # the version


def test_the_record_formats_import_nothing_of_the_package():
    assert imports("records/formats") == set()


def test_analysis_never_imports_the_experiment_the_loop_or_the_grid():
    forbidden = {"fmlib.experiment", "fmlib.loop", "fmlib.build", "fmlib.config"}
    assert not {m for m in _outside("analysis") if m in forbidden or m.startswith("fmlib.grid")}


# Lowest first; a module may import its own layer or a lower one, never a higher one.
LAYERS = [
    [
        "fmlib",
        "fmlib.checks",
        "fmlib.seeds",
        "fmlib.named",
        "fmlib.inputs",
        "fmlib.stopping",
        "fmlib.progress",
    ],
    ["fmlib.data", "fmlib.notebook"],
    ["fmlib.models", "fmlib.datasets", "fmlib.hf"],
    ["fmlib.train"],
    ["fmlib.fisher"],
    ["fmlib.strategies"],
    ["fmlib.records", "fmlib.callbacks", "fmlib.bounds"],
    ["fmlib.config"],
    ["fmlib.build", "fmlib.loop"],
    ["fmlib.session"],
    ["fmlib.experiment"],
    ["fmlib.analysis", "fmlib.primer", "fmlib.labeling"],
    ["fmlib.grid", "fmlib.watch", "fmlib.cli_run"],
    ["fmlib.cli", "fmlib.__main__"],
]


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    out = {}
    for source in PACKAGE.rglob("*.py"):
        parts = list(source.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = source
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its file; importing ``a.b.c`` runs
    ``a/__init__`` and ``a/b/__init__`` too, so those count as imported (but for the packages the
    importing module is itself inside, whose ``__init__`` runs first anyway)."""
    names = module_names()

    def known(name: str) -> set[str]:
        parts = name.split(".")
        return {
            ".".join(parts[:n]) for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in names
        }

    graph = {}
    for module, source in names.items():
        found = set()
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found |= {n for alias in node.names for n in known(alias.name)}
            elif (
                isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fmlib")
            ):
                found |= known(node.module) | {
                    n for a in node.names for n in known(f"{node.module}.{a.name}")
                }
        # itself, and the packages it is inside (already running)
        graph[module] = found - known(module)
    return graph


def layer(module: str) -> int:
    for index, members in enumerate(LAYERS):
        if any(module == m or (m != "fmlib" and module.startswith(f"{m}.")) for m in members):
            return index
    raise AssertionError(f"{module} is in no layer of LAYERS")


def test_the_import_graph_has_no_cycle():
    graph, state = import_graph(), {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            assert state.get(target) != "open", " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_no_import_points_up_the_layers():
    upward = [
        f"{a} -> {b}"
        for a, targets in import_graph().items()
        for b in targets
        if layer(b) > layer(a)
    ]
    assert not upward


def test_what_a_strategy_reports_is_declared():
    import numpy as np
    import torch

    from fmlib.data import ImageData
    from fmlib.strategies import FisherReport, SelectionReport, get_strategy

    labels = np.arange(12) % 3
    pool = ImageData(
        torch.randint(0, 255, (12, 1, 8, 8), dtype=torch.uint8),
        torch.from_numpy(labels),
        ["a", "b", "c"],
    )
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

    assert not hasattr(fmlib.grid.spec, "default_run_dir") and not hasattr(
        ExperimentConfig, "result_fields"
    )
    assert not hasattr(importlib.import_module("fmlib.records"), "mask_tensors")


def test_notebooks_take_repo_root_from_the_notebook_helpers_not_the_grid():
    for name in ("active_learning", "sensitivity", "compare"):
        source = (PACKAGE.parent / "notebooks" / f"{name}.ipynb").read_text()
        assert (
            "from fmlib.grid.spec import repo_root" not in source and "fmlib.notebook" in source
        ), name


def test_mask_fraction_and_method_are_checked_in_one_place():
    sources = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}
    for message in ("fraction must be a number in (0, 1]", "unknown method {method!r}"):
        assert [name for name, text in sources.items() if message in text] == ["fisher/masks.py"], (
            message
        )


def test_the_bounds_of_a_run_are_defined_in_one_module():
    sources = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}
    for definition in (
        "MAX_ROUNDS =",
        "def check_memory(",
        "def size_problems(",
        "def schedule_rounds(",
        "TRAINING_RULES =",
    ):
        assert [name for name, text in sources.items() if definition in text] == ["bounds.py"], (
            definition
        )
