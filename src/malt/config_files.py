"""Reading the small key/value files users write: configs and schemas (TOML, YAML or JSON)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from malt.errors import ConfigError, os_errors_as


def read_key_value_file(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The table of keys in `path`; any problem is a `ConfigError` naming the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} file {path} is a directory; name the file itself")
    if not path.is_file():
        dangling = " (a symbolic link to nothing)" if path.is_symlink() else ""
        raise ConfigError(f"{what} file {path} does not exist{dangling}")
    if path.suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise ConfigError(f"{what} file {path}: use .toml, .yaml or .json")
    with os_errors_as(path, action=f"read the {what} file"):
        data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} file {path} is not UTF-8 text (byte {exc.start}): a binary "
                          "or damaged file?") from exc
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text) or {}
    except Exception as exc:  # each parser has its own error class (yaml.YAMLError, ...)
        raise ConfigError(f"{what} file {path} is not valid: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} file {path} must hold a table of keys")
    return raw


def merge_tables(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied; nested tables merge key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = value
    return out


def tree_from_dotted_keys(pairs: dict[str, Any]) -> dict[str, Any]:
    """A tree of tables from dotted keys: {"encoder.embed_dim": 8} -> {"encoder": {...}}."""
    tree: dict[str, Any] = {}
    for key, value in pairs.items():
        *blocks, name = key.split(".")
        node = tree
        for block in blocks:
            node = node.setdefault(block, {})
            if not isinstance(node, dict):
                raise ConfigError(f"key '{key}': '{block}' is not a table")
        node[name] = value
    return tree
