"""MkDocs hook: serve MathJax from the installed `django-static-mathjax` package, not a CDN.

The docs extra installs that package for its copy of MathJax 3 (it needs no Django: it is a
plain folder of MathJax's files). This hook adds the browser build (`es5/`) to the site under
`javascripts/mathjax/`, so that formulas render offline: the combined TeX component the pages
load, the CHTML fonts, and the parts MathJax loads on demand (TeX extensions, the menu, the
accessibility and speech components). The other combined builds and the SVG output are left
out. Listed in mkdocs.yml under `hooks`.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

SITE_FOLDER = "javascripts/mathjax"
"""Where the MathJax files are in the site (mkdocs.yml's `extra_javascript` loads one)."""
COMPONENT = "tex-mml-chtml.js"
"""The one combined component the pages load."""


def mathjax_es5() -> Path:
    """The installed MathJax browser build."""
    try:
        root = Path(str(importlib.resources.files("mathjax"))) / "static" / "mathjax" / "es5"
    except ModuleNotFoundError:
        root = None
    if root is None or not (root / COMPONENT).is_file():
        raise PluginError("MathJax is missing: install the docs extra (pip install -e "
                          "'.[docs]'), which brings it in the django-static-mathjax package")
    return root


def wanted(relative: Path) -> bool:
    """Whether the site needs the MathJax file at `relative` (under `es5/`)."""
    if len(relative.parts) == 1:  # the combined builds: only the one the pages load
        return relative.name == COMPONENT
    return relative.parts[:2] != ("output", "svg") and relative.parts[0] != "adaptors"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = mathjax_es5()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and wanted(relative):
            files.append(File.generated(config, f"{SITE_FOLDER}/{relative.as_posix()}",
                                        abs_src_path=str(path)))
    return files
