"""The primer executed by papermill reads well when opened afterwards: every live figure's output
carries its last image (JupyterLab shows it without the widget state), no output is a widget's
``LiveFigure(children=...`` text, and the record holds FisherMask's picks beside BAIT's."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "fisher_primer.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.mark.slow
@pytest.mark.notebook
def test_the_executed_primer_leaves_an_image_for_every_live_figure(tmp_path):
    import papermill as pm

    out = tmp_path / "primer.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        cwd=str(tmp_path),
        progress_bar=False,
        kernel_name="python3",
        parameters={
            "n_points": 60,
            "train_steps": 60,
            "batch_size": 4,
            "figures_dir": str(tmp_path / "fig"),
            "smoke": True,
        },
    )
    outputs = [
        o
        for c in nbformat.read(out, as_version=4).cells
        if c.cell_type == "code"
        for o in c.outputs
    ]
    live = [o for o in outputs if WIDGET in o.get("data", {})]
    assert len(live) == 3  # the Fisher map, the mask and BAIT
    for output in live:
        assert base64.b64decode(output["data"]["image/png"]).startswith(b"\x89PNG")
        assert output["data"]["text/plain"].startswith("<live figure ")
    texts = [str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in outputs]
    assert not any("LiveFigure(children" in t or "0%|" in t for t in texts)
    record = json.loads((tmp_path / "fig" / "fisher_primer.json").read_text())
    assert len(set(record["fishermask_picks"])) == 4 and record["fishermask_objective"] > 0
    assert record["mask_rule"].startswith(f"k = max(⌊0.25·{record['parameters']}⌋")
