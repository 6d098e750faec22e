"""``python -m fmlib``: the ``fmlib`` command line (:mod:`fmlib.cli`)."""

import sys

from fmlib.cli import main

sys.exit(main())
