"""Impression logs from the simulated clicks (`malt simulate --impressions`).

Every simulated click becomes an impression; whether the user clicks it is drawn afresh, with a
chance that rises with the impression's true conversion probability (an interested user clicks
more) and falls with its position band:

    logit P(click) = CLICK_BASE + CLICK_INTEREST · logit(clip(true_cvr, ε, 1 − ε))
                     − CLICK_SLOT · slot

so the clicked rows are a sample biased towards the rows likely to convert, by a rule known by
construction and written beside each row (`true_ctr`). The labels of an unclicked impression
are 0 (a conversion needs the click): its attribution credit, its known-at times and its true
credit are dropped. Its `true_cvr` stays: the chance its journey would have ended in a purchase
had it been clicked, what an entire-space CVR model is scored against. The draw has a random
stream of its own, so the rows and features are those of the click-only data set.
"""

from __future__ import annotations

import json

import numpy as np

from malt.data.schema import MAC, Schema

CLICK_BASE = 0.0
CLICK_INTEREST = 0.4
CLICK_SLOT = 0.2
CLIP = 0.01
"""The true conversion probability is clipped to [CLIP, 1 − CLIP] before its logit (one-off
clicks have 0)."""
CLICK_COLUMN = "click"
TRUE_CTR_COLUMN = "true_ctr"
SCHEMA_NAME = "mac-impressions"


def click_probability(true_cvr: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """P(click) of each impression: true conversion probability [N], position band [N] ->
    float64 [N] (see the module docstring)."""
    p = np.clip(true_cvr, CLIP, 1 - CLIP)
    logit = CLICK_BASE + CLICK_INTEREST * np.log(p / (1 - p)) - CLICK_SLOT * slot
    return 1.0 / (1.0 + np.exp(-logit))


def impression_schema() -> Schema:
    """The MAC schema with the click column (and `true_ctr` ignored, like the truth)."""
    return Schema.from_dict(schema_toml_dict(), source="schema.toml")


def schema_toml_dict() -> dict:
    """The keys of the written `schema.toml`."""
    groups = {g: [f.name for f in MAC.fields if f.group == g] for g in ("user", "ad", "context")}
    return {
        "name": SCHEMA_NAME, "user_column": MAC.user_column, "labels": list(MAC.labels),
        "click_column": CLICK_COLUMN, "sequence_length": MAC.sequence_length,
        "sequence_pad": MAC.sequence_pad,
        "float_sequences": [s.name for s in MAC.float_sequences],
        "true_probability_column": MAC.true_probability_column,
        "true_credit_column": MAC.true_credit_column,
        "ignore_columns": [TRUE_CTR_COLUMN], "fields": groups,
        "id_sequences": {s.name: s.shares for s in MAC.id_sequences}}


def schema_toml() -> str:
    """`schema_toml_dict` as TOML (every value a string, a number, a list of strings or a table
    of strings, which JSON spells as TOML does)."""
    lines = ["# Written by `malt simulate --impressions`: the MAC columns, and `click`."]
    tables = []
    for key, value in schema_toml_dict().items():
        if isinstance(value, dict):
            tables += ["", f"[{key}]", *(f"{k} = {json.dumps(v, allow_nan=False)}"
                                         for k, v in value.items())]
        else:
            lines.append(f"{key} = {json.dumps(value, allow_nan=False)}")
    return "\n".join([*lines, *tables]) + "\n"
