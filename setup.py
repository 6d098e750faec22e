"""The notebooks into the wheel: ``notebooks/*.ipynb`` copied to ``fmlib/notebooks/`` at build time,
and their demo grids ``grids/demo/`` to ``fmlib/grids/demo/``.

Everything else is in ``pyproject.toml``. In a checkout fmlib runs ``notebooks/`` itself
(:func:`fmlib.notebook.notebook_path`); an installed wheel runs the copies.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class build_py_with_notebooks(build_py):  # noqa: N801 (setuptools' command naming)
    def run(self):
        super().run()
        target = Path(self.build_lib) / "fmlib" / "notebooks"
        target.mkdir(parents=True, exist_ok=True)
        for notebook in sorted((HERE / "notebooks").glob("*.ipynb")):
            shutil.copyfile(notebook, target / notebook.name)
        demo = HERE / "grids" / "demo"
        for grid in sorted(demo.rglob("*.json")):
            copy = Path(self.build_lib) / "fmlib" / "grids" / "demo" / grid.relative_to(demo)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(grid, copy)


setup(cmdclass={"build_py": build_py_with_notebooks})
