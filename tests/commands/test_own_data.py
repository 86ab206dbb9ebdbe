"""A data set of one's own, through the documented commands only: its own column names, two
numeric columns, no vocab files, three test days and five attribution labels."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from malt.cli import main
from malt.data.layout import write_day

SCHEMA = """
name = "shop-logs"
user_column = "buyer"
labels = ["last", "first", "linear", "position", "dda"]
numeric = {price = "log1p", discount = "standardise"}

[fields]
user = ["buyer_city"]
ad = ["sku", "brand"]
context = ["slot"]
"""


def write_shop(root, rows=600, seed=0):
    """Four training days and three test days; conversions follow price and discount."""
    rng = np.random.default_rng(seed)
    names = [f"train/day{d}.parquet" for d in range(4)] + \
        [f"test/day{d}.parquet" for d in range(4, 7)]
    for name in names:
        price = rng.lognormal(4, 1, rows)
        discount = rng.normal(0.2, 0.1, rows)
        logit = -1.0 - 0.8 * (np.log1p(price) - 4) + 6 * (discount - 0.2)
        converted = rng.random(rows) < 1 / (1 + np.exp(-logit))
        share = rng.random(rows)
        table = {"buyer": pa.array([f"b{i}" for i in rng.integers(0, 150, rows)]),
                 "buyer_city": pa.array(rng.integers(0, 8, rows)),
                 "sku": pa.array(rng.integers(1000, 1100, rows)),
                 "brand": pa.array([f"br{i}" for i in rng.integers(0, 12, rows)]),
                 "slot": pa.array(rng.integers(0, 4, rows)),
                 "price": pa.array(price), "discount": pa.array(discount)}
        for k, label in enumerate(["last", "first", "linear", "position", "dda"]):
            credit = converted * (share > 0.2 * k) * np.where(k in (2, 3, 4), share, 1.0)
            table[label] = pa.array(credit.astype(np.float32))
        write_day(root / name, pa.table(table))
    (root / "schema.toml").write_text(SCHEMA)
    return root


def test_own_data_from_files_to_trained_models(tmp_path, capsys):
    data = write_shop(tmp_path / "shop")
    assert main(["prepare", "--data", str(data), "--build-vocabs", "--min-count", "2"]) == 0
    out = capsys.readouterr().out
    for field in ("buyer", "buyer_city", "sku", "brand", "slot"):
        assert f"vocabs/{field}.json" in out
    assert "test rows with an out-of-vocabulary id: buyer" in out
    runs = {}
    for model, aux in (("base", []), ("moae", ["first", "linear", "position", "dda"])):
        out_dir = tmp_path / model
        args = ["train", "--data", str(data), "--model", model, "--main", "last",
                "--aux", *aux, "--batch-size", "32", "--lr", "0.01", "--embedding-lr-scale", "1",
                "--out", str(out_dir),
                "--model-option", "encoder.embed_dim=4", "--model-option", "expert.dim=16",
                "--model-option", "tower.dims=[8]"]
        assert main(args) == 0
        printed = capsys.readouterr().out
        assert "main view 'last' by day:" in printed
        metrics = json.loads((out_dir / "metrics.json").read_text())
        assert list(metrics["per_day"]) == ["day4", "day5", "day6"]
        runs[model] = metrics["views"]["last"]["auc"]
    assert all(auc > 0.6 for auc in runs.values()), runs  # the numbers carry the signal
    assert main(["eval", "--run", str(tmp_path / "moae"), "--data", str(data)]) == 0
    table = capsys.readouterr().out
    assert "pooled" in table and f"{runs['moae']:.4f}" in table


GUIDE = Path(__file__).parents[2] / "docs" / "own-data.md"
NEEDS_OTHER_INPUT = ("fetch", "attribute")
"""Commands of the guide that start from the release's files or raw logs, not from DATA."""


def guide_commands() -> list[list[str]]:
    """The `malt ...` commands of docs/own-data.md (continued lines joined), without `malt`."""
    text = re.sub(r"\\\n\s*", " ", GUIDE.read_text())
    return [shlex.split(line)[1:] for line in text.splitlines() if line.startswith("    malt ")]


@pytest.mark.slow
def test_the_guides_commands_run_as_written(tmp_path, monkeypatch, capsys):
    data = write_shop(tmp_path / "shop")
    monkeypatch.chdir(tmp_path)
    commands = [c for c in guide_commands() if c[0] not in NEEDS_OTHER_INPUT]
    assert [c[0] for c in commands] == ["prepare", "study", "train", "train", "eval", "compare",
                                        "eval"]
    said, slices = {}, None
    for command in commands:
        args = [str(data) if arg == "DATA" else arg for arg in command]
        assert main(args) == 0, args
        if command[0] == "eval" and "--by" in command:
            slices = capsys.readouterr().out
        else:
            said[command[0]] = capsys.readouterr().out
    assert "preset `own-data` on schema 'shop-logs': malt's model defaults" in said["study"]
    assert "warning: the validation GAUC counts only" in said["study"]
    # The shop's few thousand rows train the guide's models to below a constant predictor on
    # validation: the search flags each such setting and selects none, and says so.
    assert "worse than constant" in said["study"]
    assert "no setting could be selected" in said["study"]
    assert "Preset `own-data, malt's model defaults`" in (tmp_path / "studies/shop/search.md"
                                                          ).read_text()
    configs = [json.loads(p.read_text()) for p in
               (tmp_path / "studies/shop/runs").glob("*/config.json")]
    # The validation grids (2 + 4 settings, the leaders again on more seeds); no setting was
    # selected, so no test run.
    assert len(configs) >= 2 + 4
    assert all(c["data"]["eval_split"] == "validation" for c in configs)
    assert all(c["model"]["release_defaults"] is False and "encoder" not in c["model"]
               for c in configs)  # malt train's own model
    assert "warning: the test GAUC of 'last'" in said["eval"]
    verdicts = ("verdict: better", "verdict: worse", "verdict: no detectable difference")
    assert any(v in said["compare"] for v in verdicts), said["compare"]
    for title in ("position/last", "brand", "user clicks"):
        assert f"gain over runs/base on 'last' by {title}:" in slices
