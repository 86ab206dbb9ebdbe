"""Small model configs for the tests: every model's own config class with narrow blocks."""

from __future__ import annotations

from typing import Any

from malt.config_files import merge_tables
from malt.models import ModelConfig, model_spec

SMALL_BLOCKS = {"encoder": {"embed_dim": 8, "attention_heads": 2}, "expert": {"dim": 16},
                "tower": {"dims": [8, 4]}}


def small_config(name: str, **options: Any) -> ModelConfig:
    """Model `name`'s config with the narrow blocks and `options` (blocks as dicts)."""
    return model_spec(name).make_config(merge_tables(SMALL_BLOCKS, options))
