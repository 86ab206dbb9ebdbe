"""`python -m malt` (and `torchrun -m malt`) run the command-line tool."""

import sys

from malt.cli import main

sys.exit(main())
