"""malt: the Multi-Attribution Learning Toolkit for conversion-rate prediction.

The Python API (`malt.simulate`, `malt.prepare`, `malt.train`, `malt.load_run`, `malt.export`,
`malt.compare`, `malt.Run`) lives in `malt.api`; `malt.register_model` and
`malt.register_encoder`, which add a model or an encoder of one's own, in `malt.models`. Both
are loaded on first use, so that `import malt.<module>` and the command line stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from malt._version import __version__
from malt.reproducible import request_reproducible_mkl

# Before any of malt's modules imports torch: MKL reads the setting at its first call.
request_reproducible_mkl()

__all__ = ["Run", "__version__", "compare", "export", "load_run", "prepare",
           "register_encoder", "register_model", "simulate", "train"]
_PLUGINS = ("register_encoder", "register_model")

if TYPE_CHECKING:
    from malt.api import Run, compare, export, load_run, prepare, simulate, train
    from malt.models import register_encoder, register_model


def __getattr__(name: str) -> Any:
    if name in _PLUGINS:
        import malt.models

        return getattr(malt.models, name)
    if name in __all__:
        import malt.api

        return getattr(malt.api, name)
    raise AttributeError(f"module 'malt' has no attribute '{name}'")
