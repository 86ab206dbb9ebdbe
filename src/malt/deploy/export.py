"""Export a trained model as one self-contained file: ONNX or TorchScript.

The file holds the network and a JSON description under the key `malt` (ONNX metadata
property; TorchScript extra file `malt.json`): input and output names, dtypes and shapes (a
dynamic batch dimension), the views, the schema and the table sizes, the calibration (method,
slicing and days, or null), the malt version and the git commit. A sidecar `<file>.json` holds the
same and the run's resolved config.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import warnings
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from malt.deploy.choices import EXPORT_FORMATS, ExportFormat
from malt.deploy.serving import ServingModule
from malt.errors import ConfigError
from malt.outputs import atomic_write, atomic_write_text, single_file_output
from malt.provenance import provenance
from malt.runs.load import TrainedModel

METADATA_KEY = "malt"
"""Key of the description in the ONNX metadata; TorchScript stores it as `malt.json`."""
SIDECAR_MARK = "malt_export_sidecar"
"""Key that marks a sidecar as malt's; `--overwrite` replaces only a marked one."""
ONNX_OPSET = 17
ONNX_MAX_BYTES = 2 ** 31 - 2 ** 24
"""A single ONNX file (one protobuf) holds less than 2 GiB."""


def describe(trained: TrainedModel, serving: ServingModule, fmt: ExportFormat) -> dict[str, Any]:
    """The description stored in the artifact."""
    return {
        "format": fmt, **provenance(), "run": str(trained.run.path),
        "parent": None if trained.parent is None else trained.parent.path,
        "model": trained.config.model["name"], "main": trained.task.main,
        "views": list(serving.views),
        "inputs": [asdict(s) for s in serving.input_specs()],
        "outputs": [asdict(s) for s in serving.output_specs()],
        "schema": trained.schema.to_dict(), "vocab_sizes": trained.vocab.sizes,
        "sequence_pad": trained.vocab.sequence_pad,
        "calibration": None if serving.calibration is None else {
            "method": serving.calibration.method, "by": serving.calibration.by,
            "days": list(serving.calibration.days), "rows": serving.calibration.rows},
    }


def import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ConfigError("ONNX export needs the onnx package: pip install 'malt[onnx]'") from exc
    return onnx


def sidecar_path(path: Path) -> Path:
    """`<file>.json` next to an exported file."""
    return path.with_name(path.name + ".json")


def export(trained: TrainedModel, out: str | Path, fmt: ExportFormat = "onnx", *,
           overwrite: bool = False, calibrated: bool = True) -> dict[str, Any]:
    """Write `trained`'s model to `out` in format `fmt`, and its sidecar; returns the sidecar's
    content (with the file's size and sha256). The run's calibrators, when it has some and
    `calibrated`, are part of the graph: its outputs are calibrated probabilities."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format '{fmt}', expected one of {list(EXPORT_FORMATS)}")
    out = Path(out)
    with single_file_output({out: exported_by_malt, sidecar_path(out): is_sidecar},
                            overwrite=overwrite):
        serving = ServingModule(trained.model,
                                trained.calibration if calibrated else None).eval()
        meta = describe(trained, serving, fmt)
        writer = to_onnx if fmt == "onnx" else to_torchscript
        data = writer(serving, json.dumps(meta, allow_nan=False))
        sidecar = {SIDECAR_MARK: True, **meta, "bytes": len(data),
                   "sha256": hashlib.sha256(data).hexdigest(), "config": trained.config.to_dict()}
        atomic_write(out, lambda tmp: tmp.write_bytes(data))
        try:
            atomic_write_text(sidecar_path(out), json.dumps(sidecar, indent=2, allow_nan=False))
        except BaseException:
            # A file without its sidecar (or beside an older one) is no export: leave neither.
            out.unlink(missing_ok=True)
            sidecar_path(out).unlink(missing_ok=True)
            raise
    return sidecar


def exported_by_malt(path: Path) -> bool:
    """Whether `path` is a model file `export` wrote (its description is inside), read without
    loading the model: a TorchScript archive holding `malt.json`, or an ONNX model with the
    `malt` metadata property."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile):
            return False
        return any(name.endswith(f"/extra/{METADATA_KEY}.json") for name in names)
    try:
        props = import_onnx().load(str(path), load_external_data=False).metadata_props
    except Exception:  # whatever the parser makes of a file that is not ONNX: not malt's
        return False
    return any(p.key == METADATA_KEY for p in props)


def is_sidecar(path: Path) -> bool:
    """Whether `path` is a sidecar `export` wrote (a JSON object marked as one)."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and content.get(SIDECAR_MARK) is True


def to_onnx(serving: ServingModule, description: str) -> bytes:
    """The serving module as an ONNX model (opset `ONNX_OPSET`, dynamic batch dimension)."""
    onnx = import_onnx()

    size = sum(t.numel() * t.element_size() for t in serving.state_dict().values())
    if size > ONNX_MAX_BYTES:
        raise ConfigError(f"the model holds {size / 2**30:.1f} GiB of parameters, more than one "
                          "ONNX file can; export it as torchscript")
    names = [*serving.input_names, *serving.output_names]
    buffer = io.BytesIO()
    # The TorchScript-based exporter: a few seconds per model, and every model of malt is
    # traceable. torch >= 2.5 has to be told (its default became the dynamo exporter).
    options = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters \
        else {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        # On some graphs (seen on models with numeric features) the exporter's constant
        # folding meets a slice it does not fold and says so in each of its three passes; the
        # slice stays in the graph for ONNX Runtime to compute, so the export is exact (the
        # parity tests check it) and the warning gives a user nothing to act on.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1 can be "
                                "constant folded", category=UserWarning)
        torch.onnx.export(serving, serving.example_inputs(), buffer,
                          input_names=list(serving.input_names),
                          output_names=list(serving.output_names),
                          dynamic_axes={n: {0: "batch"} for n in names},
                          opset_version=ONNX_OPSET, **options)
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, description
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def to_torchscript(serving: ServingModule, description: str) -> bytes:
    """The serving module traced to TorchScript, with the description as `malt.json`."""
    buffer = io.BytesIO()
    # torch >= 2.9 marks TorchScript deprecated in favour of torch.export; it still is what
    # C++ and Java serving stacks load.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        traced = torch.jit.trace(serving, serving.example_inputs(), check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={f"{METADATA_KEY}.json": description})
    return buffer.getvalue()


def read_description(path: str | Path) -> dict[str, Any]:
    """The description stored in an exported file (ONNX or TorchScript)."""
    path = Path(path)
    if path.suffix == ".onnx":
        onnx = import_onnx()
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
                 .metadata_props}
        if METADATA_KEY not in props:
            raise ConfigError(f"{path} was not exported by malt (no '{METADATA_KEY}' metadata)")
        return json.loads(props[METADATA_KEY])
    files = {f"{METADATA_KEY}.json": ""}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    if not files[f"{METADATA_KEY}.json"]:
        raise ConfigError(f"{path} was not exported by malt (no {METADATA_KEY}.json)")
    return json.loads(files[f"{METADATA_KEY}.json"])
