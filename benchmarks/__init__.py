"""Speed measurements; each script writes its section of BENCHMARKS.md.

Every script runs with the allocator settings the `malt` command uses (`malt.allocator`), so
the figures are those of the command; `MALT_MALLOC=system` measures the C library's defaults.
"""

from malt.allocator import retain_freed_memory

retain_freed_memory()
