"""An ONNX file written by `malt export`, read back to score raw rows: its description, the
vocab lookups that map raw ids to the rows of its embedding tables, and the file's bytes for
ONNX Runtime.

The file holds the network (with the run's calibrators, when it was exported with them) and
its description; the sidecar `<file>.json` holds the same and the run's config. Neither holds
the vocabs: they are `vocabs` when given, else the run's own (`<run>/vocabs`, a warm-started
run's) when the run named in the description is still there, else those of the data set the
run was trained on (the sidecar's config), as `malt.runs.load.load_run` finds them. Tables of
other sizes than the exported ones are refused: ids would silently land on other rows.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malt.data.lookups import Lookup, load_lookups, vocab_info
from malt.data.schema import Schema
from malt.deploy.export import METADATA_KEY, import_onnx, is_sidecar, sidecar_path
from malt.errors import ConfigError, DataError
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.load import vocab_directory


@dataclass(frozen=True)
class ExportedModel:
    """An exported ONNX file ready to score raw rows."""

    path: Path
    data: bytes
    """The file's bytes (what ONNX Runtime loads)."""
    sha256: str
    description: dict[str, Any]
    """What `malt.deploy.export.describe` stored in the file."""
    schema: Schema
    lookups: dict[str, Lookup]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec["name"] for spec in self.description["inputs"])

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec["name"] for spec in self.description["outputs"])

    @property
    def calibrated(self) -> bool:
        """Whether the file's graph holds calibrators (its outputs are calibrated)."""
        return self.description["calibration"] is not None


def load_export(path: str | Path, *, vocabs: str | Path | None = None) -> ExportedModel:
    """Read the ONNX export at `path` and its sidecar and load the vocabs (see the module
    docstring); a `ConfigError` when the file is not one malt exported to ONNX, its sidecar
    is missing or belongs to another file, or the vocabs do not fit its tables."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} is not there (no such exported file)")
    if zipfile.is_zipfile(path):
        raise ConfigError(f"{path} is a TorchScript file: malt serve scores ONNX exports "
                          "(malt export --format onnx), or serve the run itself with --run")
    data = path.read_bytes()
    description = _description(path, data)
    sidecar = sidecar_path(path)
    if not is_sidecar(sidecar):
        raise ConfigError(f"{sidecar}, the sidecar malt export writes beside {path.name}, is "
                          "missing or not malt's: export the run again (malt export --run RUN "
                          f"--out {path})")
    content = json.loads(sidecar.read_text())
    sha256 = hashlib.sha256(data).hexdigest()
    if content.get("sha256") != sha256:
        raise ConfigError(f"{sidecar} describes another file than {path} (its sha256 differs): "
                          "export the run again")
    schema = Schema.from_dict(description["schema"], source=f"{path} (schema)")
    config = RunConfig.from_dict(content["config"], source=f"{sidecar} (config)")
    run = RunDir(Path(description["run"]))
    if vocabs is None and run.vocab_dir.is_dir():
        vocabs = run.vocab_dir
    try:
        lookups = load_lookups(schema, vocab_directory(config, vocabs))
    except DataError as exc:
        raise ConfigError(f"the vocabs of {path}: {exc}") from exc
    info = vocab_info(schema, lookups)
    if info.sizes != description["vocab_sizes"] or \
            info.sequence_pad != description["sequence_pad"]:
        wrong = sorted(c for c in description["vocab_sizes"]
                       if info.sizes.get(c) != description["vocab_sizes"][c])
        raise ConfigError(f"these vocabs do not fit {path}: its embedding tables have other "
                          f"sizes ({wrong or 'sequence padding rows'}); pass the vocabs of the "
                          "run's training data with --vocabs DIR")
    return ExportedModel(path=path, data=data, sha256=sha256, description=description,
                         schema=schema, lookups=lookups)


def _description(path: Path, data: bytes) -> dict[str, Any]:
    """The description stored in the ONNX model `data` (read from `path`)."""
    try:
        props = import_onnx().load_from_string(data).metadata_props
    except ConfigError:
        raise
    except Exception as exc:  # whatever the parser makes of a file that is not ONNX
        raise ConfigError(f"{path} is not an ONNX model ({type(exc).__name__}): give a file "
                          "written by malt export") from exc
    found = {p.key: p.value for p in props}
    if METADATA_KEY not in found:
        raise ConfigError(f"{path} was not exported by malt (no '{METADATA_KEY}' metadata)")
    description = json.loads(found[METADATA_KEY])
    if description.get("format") != "onnx":
        raise ConfigError(f"{path} is not an ONNX export of malt")
    return description
