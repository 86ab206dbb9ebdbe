"""Make Intel MKL give the same bits for the same numbers, wherever they lie in memory.

MKL picks a kernel for each call by the CPU and by the alignment of its arguments. Its
matrix-vector product (torch uses it for every layer with one output, the shape of each tower's
last layer, and for small batches) sums in another order when its input does not start on a
16-byte boundary, and where torch places a freed block depends on what the process did before:
a run resumed from a checkpoint then differs from an uninterrupted one in the last bits, and so
can two runs of the same seed (docs/testing.md, "Reproducibility"). MKL's conditional numerical
reproducibility removes that: with `MKL_CBWR=AUTO,STRICT` it keeps the fastest code path of the
CPU and sums in one order whatever the alignment and the number of threads.

MKL reads the variable once, at its first call, so it must be set before torch computes
anything: `import malt` sets it (`request_reproducible_mkl`) unless the user set their own.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

VARIABLE = "MKL_CBWR"
REPRODUCIBLE = "AUTO,STRICT"
_BRANCH = 1
"""`mkl_cbwr_get`'s query for the code-path setting."""
_BRANCH_OFF = 1
"""Its answer when reproducibility is off."""


def request_reproducible_mkl() -> None:
    """Ask MKL for reproducible results; a value the user set is kept. Effective only before
    MKL's first call in the process."""
    os.environ.setdefault(VARIABLE, REPRODUCIBLE)


def mkl_reproducible() -> bool | None:
    """Whether torch's MKL runs in a reproducible mode; None where torch has no MKL or its
    mode cannot be read (another platform or build)."""
    import torch

    if not torch.backends.mkl.is_available():
        return None
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        # MKL's own service call; the public `mkl_cbwr_get` is not exported by torch's build.
        get_mode = ctypes.CDLL(str(library)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get_mode.argtypes, get_mode.restype = [ctypes.c_int], ctypes.c_int
    return get_mode(_BRANCH) != _BRANCH_OFF
