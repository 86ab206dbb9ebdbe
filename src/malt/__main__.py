"""`python -m malt` (and `torchrun -m malt`) run the command-line tool."""

from malt.cli import run

run()
