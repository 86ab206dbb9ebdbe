"""Command-line flags of the training commands and their mapping onto `RunConfig`.

Every flag defaults to None (= not given), so a flag overrides the config file only when it
is actually passed. argparse rejects unknown flags; unknown config keys are rejected by
`RunConfig.from_dict`.
"""

from __future__ import annotations

import argparse
import tomllib
from typing import Any

from malt.config_files import merge_tables, read_key_value_file
from malt.data.masks import ADM_WINDOWS
from malt.data.task import MASKS
from malt.errors import ConfigError
from malt.models.config import options_from_keys
from malt.train.config import DEVICES, EVAL_SPLITS, GRAD_METHODS, GRAD_VARIANTS, RunConfig

# flag destination -> (config section or None for top level, key)
_FLAG_KEYS: dict[str, tuple[str | None, str]] = {
    "seed": (None, "seed"),
    "data": ("data", "path"), "schema": ("data", "schema"), "cache": ("data", "cache"),
    "train_days": ("data", "train_days"), "eval_split": ("data", "eval_split"),
    "main": ("task", "main"), "aux": ("task", "aux"), "aux_weight": ("task", "aux_weight"),
    "label_mode": ("task", "label_mode"), "mask": ("task", "mask"),
    "adm_window": ("task", "adm_window"), "adm_window_days": ("task", "adm_window_days"),
    "adm_alpha": ("task", "adm_alpha"),
    "lr": ("train", "lr"), "embedding_lr_scale": ("train", "embedding_lr_scale"),
    "batch_size": ("train", "batch_size"), "warmup_fraction": ("train", "warmup_fraction"),
    "grad_clip": ("train", "grad_clip"), "grad_method": ("train", "grad_method"),
    "grad_variant": ("train", "grad_variant"), "gcs_weighting": ("train", "gcs_weighting"),
    "shuffle": ("train", "shuffle"),
    "device": ("train", "device"), "amp": ("train", "amp"), "lazy_adam": ("train", "lazy_adam"),
    "log_every": ("train", "log_every"),
    "model": ("model", "name"), "release_defaults": ("model", "release_defaults"),
}


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Flags that define a training run (all optional; they override --config)."""
    p = parser
    p.add_argument("--config", help="TOML/YAML/JSON file with [data] [task] [train] [model]")
    p.add_argument("--seed", type=int, help="random seed (default 2026)")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="data directory in the MAC layout")
    g.add_argument("--schema", help="schema file (default: the MAC schema)")
    g.add_argument("--cache", help="cache directory (default DATA/.malt_cache)")
    g.add_argument("--train-days", type=int, help="use only the first N training days")
    g.add_argument("--eval-split", choices=EVAL_SPLITS,
                   help="test: evaluate on the test day; validation: hold out the last "
                        "training day")
    g = p.add_argument_group("task")
    g.add_argument("--main", help="target attribution (main view), e.g. last")
    g.add_argument("--aux", nargs="*", help="auxiliary views: other labels and/or cat")
    g.add_argument("--aux-weight", type=float, help="λ (default: reference value per target)")
    g.add_argument("--label-mode", choices=["binary", "weighted"])
    g.add_argument("--mask", choices=MASKS,
                   help="training mask for incomplete labels (default none: every label)")
    g.add_argument("--adm-window", choices=ADM_WINDOWS,
                   help="ADM counts over the trailing window (default) or all training days")
    g.add_argument("--adm-window-days", type=int, help="ADM trailing window (default 7 days)")
    g.add_argument("--adm-alpha", type=float, help="ADM threshold α for every action (10)")
    g.add_argument("--adm-alpha-for", action="append", default=[], metavar="ACTION=ALPHA",
                   help="ADM threshold of one action (repeatable)")
    g = p.add_argument_group("model")
    g.add_argument("--model", help="registered model name (see `malt models`)")
    g.add_argument("--release-defaults", action=argparse.BooleanOptionalAction, default=None,
                   help="start the model from the public release's settings")
    g.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="set a model config field, e.g. padding_mask=false (repeatable)")
    g = p.add_argument_group("training")
    g.add_argument("--lr", type=float)
    g.add_argument("--embedding-lr-scale", type=float)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--warmup-fraction", type=float)
    g.add_argument("--grad-clip", type=float)
    g.add_argument("--grad-method", choices=GRAD_METHODS)
    g.add_argument("--grad-variant", choices=GRAD_VARIANTS)
    g.add_argument("--gcs-weighting", choices=["sigmoid", "clip", "binary"],
                   help="GCS weight from the gradient cosine: sigmoid (MAC, λ unused), clip "
                        "(max(0, cos) · λ) or binary (1(cos > 0) · λ)")
    g.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--device", choices=DEVICES)
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--lazy-adam", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--log-every", type=int)


def given_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config tree of the flags that were actually passed."""
    tree: dict[str, Any] = {}
    for dest, (section, key) in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if section is None:
            tree[key] = value
        else:
            tree.setdefault(section, {})[key] = value
    for item in getattr(args, "adm_alpha_for", []) or []:
        action, sep, text = item.partition("=")
        try:
            alpha = float(text)
        except ValueError:
            alpha = None
        if not sep or not action or alpha is None:
            raise ConfigError(f"--adm-alpha-for expects ACTION=NUMBER, got '{item}'")
        tree.setdefault("task", {}).setdefault("adm_alpha_per_action", {})[action.strip()] = alpha
    options = {}
    for item in getattr(args, "model_option", []) or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-option expects KEY=VALUE, got '{item}'")
        options[key.strip()] = parse_value(text)
    if options:
        tree["model"] = merge_tables(tree.get("model", {}), options_from_keys(options))
    return tree


def parse_value(text: str) -> Any:
    """A TOML value (number, bool, array, quoted string), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def resolve_config(args: argparse.Namespace, base: dict[str, Any] | None = None) -> RunConfig:
    """`base` (e.g. a command's defaults), then the config file, then the flags."""
    tree = dict(base or {})
    if getattr(args, "config", None):
        tree = merge_tables(tree, read_key_value_file(args.config))
    tree = merge_tables(tree, given_overrides(args))
    return RunConfig.from_dict(tree, source=getattr(args, "config", None) or "flags")
