"""``python -m fmlib.grid``: the grid's command line (:func:`fmlib.grid.cli.main`)."""

import sys

from fmlib.grid.cli import main

sys.exit(main())
