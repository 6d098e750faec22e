"""Hostile config files (``fmlib run --config FILE``): every bad file or value in it is one line
``fmlib run: error: ...`` and exit status 2, before any data is loaded. One row per probe:
``(id, the file's bytes, pattern of the error)``."""

from __future__ import annotations

import json
import re

import pytest

from fmlib.cli import main


def js(value) -> bytes:
    return json.dumps(value).encode()


CASES = [
    ("not_utf8", '{"dataset": "caf\xe9"}'.encode("latin-1"), r"is not UTF-8 text"),
    ("not_json", b'{"seed": 1,}', r"is not valid JSON"),
    ("a_list", js([1, 2]), r"must hold a JSON object of config fields, got list"),
    ("unknown_field", js({"sed": 1}), r"unknown config fields \['sed'\]"),
    ("budget_huge", js({"budget": 10**12}), r"budget 10+: .*at most 10000"),
    ("rounds_huge", js({"rounds": 10**12, "budget": None}), r"rounds 10+: .*at most 10000"),
    ("budget_float", js({"budget": 1.5e3}), r"budget must be an integer"),
    (
        "lr_huge",
        js({"train_options": {"lr": 1e6}}),
        r"lr must be a finite number > 0 \(at most 10\)",
    ),
    (
        "lamb_huge",
        js({"strategy": "bait", "strategy_options": {"lamb": 1e300}}),
        r"lamb must be a finite number > 0",
    ),
    (
        "run_config_json_with_bad_seed",
        js({"config": {"seed": -1}, "fmlib_version": "0"}),
        r"seed must be an integer >= 0",
    ),
]


@pytest.mark.parametrize(("content", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_config_file_is_one_line_and_exit_status_2(tmp_path, capsys, content, pattern):
    file = tmp_path / "config.json"
    file.write_bytes(content)
    assert main(["run", "--config", str(file), "-o", str(tmp_path / "run"), "-n"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert (
        "Traceback" not in err and len(lines) == 1 and lines[0].startswith("fmlib run: error: ")
    ), err
    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "run").exists()
