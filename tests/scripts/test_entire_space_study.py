"""scripts/entire_space_study.py: its two simulations hold the same impressions, and it runs
end to end with every comparison it promises."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "entire_space_study.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, str]:
    """The script run on a tiny simulation (1 seed, both models): its folder and its output."""
    spec = importlib.util.spec_from_file_location("entire_space_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("entire-space")
    capture = pytest.MonkeyPatch()
    lines: list[str] = []
    capture.setattr("builtins.print", lambda text: lines.append(text))
    try:
        module.main(["--out", str(out), "--size", "tiny", "--users", "300", "--seeds", "1",
                     "--resamples", "50"])
    finally:
        capture.undo()
    return out, "\n".join(lines)


def test_the_counterfactual_simulation_holds_the_same_impressions(study):
    out, _ = study
    observed = pq.read_table(out / "impressions" / "test" / "test.parquet")
    counterfactual = pq.read_table(out / "counterfactual" / "test" / "test.parquet")
    clicked = observed["click"].to_numpy() > 0
    assert 0 < clicked.sum() < len(clicked)
    for column in ("user_id", "ad_feat0", "context_feat0", "true_cvr"):
        assert np.array_equal(observed[column].to_numpy(), counterfactual[column].to_numpy())
    # a clicked impression's labels are the counterfactual's; an unclicked one converts nothing
    for view in ("linear", "mta"):
        seen, would = observed[view].to_numpy(), counterfactual[view].to_numpy()
        assert np.array_equal(seen[clicked], would[clicked])
        assert not seen[~clicked].any() and would[~clicked].any()


def test_every_comparison_and_calibration_row_is_reported(study):
    _, text = study
    for section in ("### MMoE", "### MoAE", "### MoAE − MMoE"):
        assert f"\n{section}\n" in text
    deltas = [line for line in text.splitlines()
              if line.startswith(("| clicked, observed", "| every impression, counterfactual",
                                  "| unclicked, counterfactual"))]
    assert len(deltas) == 3 * 3 * 3   # 3 comparisons × 3 row sets × AUC, GAUC, logloss
    for row in deltas:
        low, high = (float(x) for x in row.split("|")[4].strip(" []").split(","))
        assert low <= float(row.split("|")[3]) <= high
    calibration = [line for line in text.splitlines()
                   if line.startswith(("| MMoE, ", "| MoAE, "))]
    assert len(calibration) == 4
