"""The labeling widget in a real browser: ``notebooks/label_yourself.ipynb`` in JupyterLab (headless
chromium, Selenium; the server and browser of tests/test_browser.py), a person's part played by the
test: it picks each queried image's true class in its dropdown, clicks submit, and checks that the
round was recorded with those labels (source "oracle"), that the next round's query is shown, and
that the records equal the built-in simulation's for the same answers."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import requires_fashion_mnist
from tests.test_browser import (  # noqa: F401 - browser is a fixture
    CELL_ERRORS,
    KERNEL_IDLE,
    RUN_ALL,
    RUN_ALL_RESULT,
    RUN_TIMEOUT,
    START_TIMEOUT,
    JupyterLab,
    browser,
    browser_paths,
    console,
    page,
    wait_for,
)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "label_yourself.ipynb"
ROUND_TIMEOUT = 240  # s: submit -> the round recorded, the next model trained, its query shown

pytestmark = [pytest.mark.slow, pytest.mark.notebook, requires_fashion_mnist]


@pytest.fixture
def lab(tmp_path):
    browser_paths()
    root = tmp_path / "lab"
    root.mkdir()
    notebook = json.loads(NOTEBOOK.read_text())
    (cell,) = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    run = tmp_path / "run"
    source = "".join(cell["source"])
    source = re.sub(
        r"^auto_answer(: [^=]+)? = .*$",  # the typed parameter line
        "auto_answer = False  # the test answers in the browser",
        source,
        flags=re.M,
    )
    source = re.sub(
        r"^output_dir(: [^=]+)? = .*$",
        f"output_dir = {str(run)!r}  # the test reads the records",
        source,
        flags=re.M,
    )
    cell["source"] = source.splitlines(keepends=True)
    (root / NOTEBOOK.name).write_text(json.dumps(notebook))
    server = JupyterLab(root, tmp_path)  # FMLIB_SMOKE=1: a tiny run
    server.run = run
    try:
        wait_for(server.ready, START_TIMEOUT, "the Jupyter server to answer")
        yield server
    finally:
        server.stop()


def test_a_person_labels_a_round_in_the_browser_and_the_next_round_runs(lab, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from fmlib.build import load_data
    from fmlib.experiment import ExperimentConfig, run_experiment

    screenshot = Path(tempfile.mkdtemp(prefix="fmlib-browser-test-")) / "label_yourself.png"
    try:
        browser.get(lab.url(f"lab/tree/{NOTEBOOK.name}"))
        wait_for(
            lambda: page(browser, KERNEL_IDLE), START_TIMEOUT, "the notebook and an idle kernel"
        )
        browser.execute_script(RUN_ALL)
        ran = wait_for(
            lambda: page(browser, RUN_ALL_RESULT),
            RUN_TIMEOUT,
            "Run All Cells to finish",
            interval=2,
        )
        cells = browser.execute_script(CELL_ERRORS)
        errors = [e for cell in cells for e in cell["errors"]]
        assert errors == [] and ran == "true", "\n\n".join(errors) + f"\n{console(browser)}"

        items = wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, ".fmlib-label-item"),
            START_TIMEOUT,
            "the queried images",
        )
        config = ExperimentConfig.from_run(lab.run)
        pool = load_data(config).pool
        answers = {}
        for item in items:
            (position,) = [
                int(c.split("-")[-1])
                for c in item.get_attribute("class").split()
                if c.startswith("fmlib-position-")
            ]
            answers[position] = int(pool.labels[position])
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", item)
            Select(item.find_element(By.CSS_SELECTOR, "select")).select_by_visible_text(
                pool.classes[answers[position]]
            )
        progress = browser.find_element(By.CSS_SELECTOR, ".fmlib-label-progress")
        wait_for(
            lambda: progress.text == f"{len(items)} / {len(items)} labeled",
            30,
            "every answer to reach the kernel",
        )
        assert json.loads((lab.run / "answers.json").read_text())["answers"] == {
            str(p): y for p, y in answers.items()
        }
        browser.find_element(
            By.CSS_SELECTOR, ".fmlib-label-submit button, button.fmlib-label-submit"
        ).click()

        title = browser.find_element(By.CSS_SELECTOR, ".fmlib-label-round")
        wait_for(lambda: "round 1" in title.text, ROUND_TIMEOUT, "the next round's query")
        rounds = pd.read_csv(lab.run / "rounds.csv")
        queries = pd.read_csv(lab.run / "queries.csv")
        assert len(rounds) == 1
        asked = queries.query("round == 1")
        assert dict(zip(asked["pool_index"], asked["label"])) == answers and set(
            asked["source"]
        ) == {"oracle"}
        assert browser.find_elements(By.CSS_SELECTOR, ".fmlib-label-item")  # the next query is up

        threads = torch.get_num_threads()
        # the kernel's count: the same floats
        torch.set_num_threads(int(rounds["torch_threads"].iloc[0]))
        try:
            simulated = run_experiment({**config.to_dict(), "output_dir": None}, max_rounds=1)
        finally:
            torch.set_num_threads(threads)
        times = ["train_time", "eval_time", "select_time", "embed_time"]
        pd.testing.assert_frame_equal(
            rounds.drop(columns=times),
            simulated.rounds_frame().drop(columns=times),
            check_dtype=False,
        )
        picked = simulated.queries_frame().query("round == 1")
        assert picked["pool_index"].tolist() == asked["pool_index"].tolist()
        assert picked["label"].tolist() == asked["label"].tolist()
    finally:
        browser.save_screenshot(str(screenshot))
        print(f"screenshot: {screenshot}")
        shutil.rmtree(lab.run.parent / "chromium", ignore_errors=True)
