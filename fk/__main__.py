"""`python -m fk`: the same command line as the `fk` console script."""

import sys

from fk.cli import main

sys.exit(main())
