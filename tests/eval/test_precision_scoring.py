"""Scoring a run's evaluation days under `--precision bf16` (`score_days`, `rescore`, `malt eval
--data/--day --precision`): finite scores near the float32 ones, and refused where it cannot
apply.

How near: the model is the same, so only the forward pass's rounding differs. bfloat16 keeps 8
significant bits (inputs of each product rounded by up to 2^-9 of their size); through these
small models a logit moves by a few thousandths and a probability by a quarter of that at
most. 0.01 leaves room for other CPUs' kernels; a broken path (NaN, other rows, an untrained
model) moves scores by more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from malt.cli import main
from malt.errors import ConfigError
from malt.eval.options import EvalOptions
from malt.eval.rescore import rescore
from malt.runs.directory import RunDir
from support.mac_data import write_random_dataset

SCORE_TOLERANCE = 0.01
"""Largest probability difference of a bf16 forward pass from float32 (see above)."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, RunDir]:
    """A float32 MoAE run on random data (its evaluation: the test day)."""
    root = tmp_path_factory.mktemp("bf16-scoring")
    data = write_random_dataset(root / "data", days=3, rows=301)
    out = root / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--seed", "3",
                 "--batch-size", "64", "--model", "moae", "--aux", "first", "cat",
                 "--model-option", "encoder.embed_dim=8", "--model-option", "expert.dim=16"
                 ]) == 0
    return data, RunDir(out)


def test_bf16_scores_are_finite_and_near_the_float32_scores(trained):
    data, run = trained
    fp32, bf16 = rescore(run, data, device="cpu"), rescore(run, data, device="cpu",
                                                           precision="bf16")
    assert bf16.probs.dtype == np.float32 and np.isfinite(bf16.probs).all()
    np.testing.assert_allclose(bf16.probs, fp32.probs, rtol=0, atol=SCORE_TOLERANCE)
    assert not np.array_equal(bf16.probs, fp32.probs)  # the forward pass ran in bf16
    np.testing.assert_array_equal(bf16.user, fp32.user)  # the same rows, in the same order


def test_eval_rescores_in_bf16_and_refuses_it_without_rows_to_score(trained, capsys):
    data, run = trained
    assert main(["eval", "--run", str(run.path), "--data", str(data), "--precision",
                 "bf16"]) == 0
    capsys.readouterr()
    assert main(["eval", "--run", str(run.path), "--precision", "bf16"]) == 3
    assert "--precision applies to scoring: give --data or --day" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        rescore(run, data, device="cpu", precision="fp16")


def test_eval_options_take_only_the_known_precisions():
    with pytest.raises(ConfigError, match="precision"):
        EvalOptions(run="r", data="d", precision="fp16")
