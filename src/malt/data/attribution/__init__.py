"""Attribution engine: turn clicks and conversions into per-click weights under several rules."""

from malt.data.attribution.rules import RULES, credit

__all__ = ["RULES", "credit"]
