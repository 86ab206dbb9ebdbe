"""Nested values with tensors in them, stored as one safetensors file: data, never code.

A tree is what training state is made of: dicts (string or integer keys), lists, tuples,
numbers, strings, booleans, None and dense tensors. `write_tree` puts every tensor in the
file's tensor section and the rest of the tree, as JSON with a marker where each tensor was,
in its text metadata; `read_tree` rebuilds it. Reading parses JSON and raw tensor bytes only,
so a file from anywhere (a colleague's run, a download) cannot run code when it is loaded,
unlike a pickle. Floats survive bit for bit (JSON keeps their shortest exact text; NaN and the
infinities get markers), so a resumed run continues with exactly the state it saved.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from malt.errors import ConfigError, os_errors_as

TREE_KEY = "malt.tree"
"""Metadata key of the JSON skeleton."""
FORMAT_KEY = "malt.format"
"""Metadata key naming what the file holds (e.g. a malt checkpoint), checked on reading."""
_TENSOR, _DICT, _TUPLE, _FLOAT = "$tensor", "$dict", "$tuple", "$float"
_SPECIAL_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class _Packer:
    """Turns a tree into a JSON skeleton and a flat name -> tensor dict."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self._storages: set[tuple[int, int]] = set()

    def pack(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return {_TENSOR: self._add(value)}
        if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {_FLOAT: repr(value)}
        if isinstance(value, dict):
            bad = [k for k in value if isinstance(k, bool) or not isinstance(k, (int, str))]
            if bad:
                raise TypeError(f"a tree's dict keys are strings or integers, got {bad[0]!r}")
            return {_DICT: [[k, self.pack(v)] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {_TUPLE: [self.pack(v) for v in value]}
        if isinstance(value, list):
            return [self.pack(v) for v in value]
        raise TypeError(f"a tree holds no {type(value).__name__} (only tensors, containers "
                        "and plain values)")

    def _add(self, tensor: torch.Tensor) -> str:
        if tensor.is_sparse:
            raise TypeError("a tree holds dense tensors only")
        tensor = tensor.detach().cpu()
        # safetensors refuses tensors that share memory (tied or viewed state): store a copy.
        storage = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        shared = storage in self._storages and tensor.numel() > 0
        self._storages.add(storage)
        if shared or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        name = f"t{len(self.tensors)}"
        self.tensors[name] = tensor
        return name


def write_tree(path: Path, tree: Any, *, kind: str) -> None:
    """Write `tree` to the safetensors file `path` (not atomic: see `malt.outputs`), marked
    as holding a `kind`."""
    packer = _Packer()
    skeleton = packer.pack(tree)
    metadata = {FORMAT_KEY: kind, TREE_KEY: json.dumps(skeleton, allow_nan=False)}
    try:
        save_file(packer.tensors, path, metadata=metadata)
    except SafetensorError as exc:
        # safetensors words the system's refusal (a full disk, no permission) in its own error
        # type; as an OSError it reaches the handlers that name the file and what to do.
        code = re.search(r"os error (\d+)", str(exc))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from exc


def read_tree(path: Path, *, kind: str, device: torch.device | str = "cpu") -> Any:
    """The tree written to `path` by `write_tree`, its tensors on `device`. A file that is not
    a readable safetensors file holding a `kind` raises a `ConfigError` naming it."""
    with os_errors_as(path):
        # safetensors reports a file it may not read as missing: ask the system first.
        Path(path).open("rb").close()
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as file:
            metadata = file.metadata() or {}
            if metadata.get(FORMAT_KEY) != kind:
                raise ConfigError(f"{path} is not a malt {kind} (its header says "
                                  f"{metadata.get(FORMAT_KEY)!r})")
            skeleton = json.loads(metadata[TREE_KEY])
            tensors = {name: file.get_tensor(name) for name in file.keys()}
    except (SafetensorError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"{path} is damaged or not a malt {kind} ({exc}); it cannot be "
                          "loaded") from None
    try:
        return _unpack(skeleton, tensors)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path} is damaged or not a malt {kind} (bad structure: {exc})"
                          ) from None


def _unpack(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_unpack(v, tensors) for v in node]
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"unexpected node {str(node)[:80]}")
    (marker, body), = node.items()
    if marker == _TENSOR:
        return tensors[body]
    if marker == _FLOAT:
        return _SPECIAL_FLOATS[body]
    if marker == _TUPLE:
        return tuple(_unpack(v, tensors) for v in _list(body))
    if marker == _DICT:
        out = {}
        for pair in _list(body):
            key, value = _list(pair)
            if isinstance(key, bool) or not isinstance(key, (int, str)):
                raise ValueError(f"bad key {key!r}")
            out[key] = _unpack(value, tensors)
        return out
    raise ValueError(f"unknown marker {marker!r}")


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {str(value)[:80]}")
    return value
