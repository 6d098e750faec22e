"""Sphinx configuration of the fmlib docs (``make docs``; build notes in ``docs/building.md``).

The tutorials are the notebooks of ``notebooks/``: this file copies them, numbered in reading order,
into ``docs/tutorials/`` (git-ignored copies) and myst-nb executes them there in smoke mode
(``FMLIB_SMOKE=1``: tiny runs whose records and figures go to temporary folders), so a broken
tutorial fails the build and the checkout stays clean.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # autodoc imports this checkout's fmlib, installed or not

# The notebooks' kernels inherit this environment: smoke mode, this checkout's fmlib, no GUI
# backend.
os.environ["FMLIB_SMOKE"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
)
os.environ.pop("MPLBACKEND", None)  # inline figures, as a user sees them

import fmlib  # noqa: E402

# Tutorials in reading order: (notebook in notebooks/, copy in docs/tutorials/).
TUTORIALS = [
    "fisher_primer",
    "active_learning",
    "label_yourself",
    "sensitivity",
    "compare",
    "ablation",
]
for number, name in enumerate(TUTORIALS, start=1):
    source, copy = (
        ROOT / "notebooks" / f"{name}.ipynb",
        DOCS / "tutorials" / f"{number}_{name}.ipynb",
    )
    if not copy.is_file() or copy.read_bytes() != source.read_bytes():
        # only when changed: an unchanged copy keeps Sphinx's incremental build
        shutil.copyfile(source, copy)

project = "fmlib"
author = "fmlib developers"
copyright = "fmlib developers, MIT License"
release = version = fmlib.__version__

extensions = [
    "myst_nb",  # Markdown (MyST) pages and executed notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "sphinx-mathjax-offline",  # MathJax served from _static: formulas render without internet
]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# MyST
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# myst-nb: execute every tutorial on every build (smoke mode, seconds to a minute each) and fail on
# any error. FMLIB_DOCS_EXECUTE=cache reuses unchanged notebooks' outputs between local builds
# (build/docs/.jupyter_cache).
nb_execution_mode = os.environ.get("FMLIB_DOCS_EXECUTE", "force")
nb_execution_cache_path = str(ROOT / "build" / "docs" / ".jupyter_cache")
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 900  # s per cell; smoke cells take seconds, but 2 shared cores can be slow
nb_merge_streams = True
nb_output_stderr = "remove"  # progress bars and warnings of the kernel, not tutorial content

# autodoc + napoleon (Google style, STYLE.md)
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
    "ignore-module-all": True,
}
# ignore-module-all: a package's __all__ re-exports its submodules' names; each is documented once,
# where it is defined
autodoc_typehints = "description"
autodoc_preserve_defaults = True
autodoc_mock_imports = ["submitit"]  # optional (grid extra); fmlib imports it only when used
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# intersphinx: off when FMLIB_DOCS_OFFLINE=1 (make docs sets it: the inventories live on the
# internet)
if os.environ.get("FMLIB_DOCS_OFFLINE") == "1":
    intersphinx_mapping = {}
else:
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "torch": ("https://docs.pytorch.org/docs/stable", None),
    }

# HTML
html_theme = "furo"
html_title = f"fmlib {release}"
html_static_path = ["_static"]
html_css_files = ["fmlib.css"]
html_show_sourcelink = False
copybutton_prompt_text = r"\$ "
copybutton_prompt_is_regexp = True
