"""What `malt train` prints on the ranks of a torchrun launch (torchrun sets RANK)."""

import pytest

import malt.jobs.train
from malt.cli import main
from malt.errors import Interrupted


@pytest.mark.parametrize("rank", ["0", "1"])
def test_only_rank_0_says_how_to_resume_an_interrupted_run(monkeypatch, capsys, tmp_path, rank):
    def interrupted(*args, **kwargs):
        raise Interrupted("stopped at day 0 step 3")

    monkeypatch.setattr(malt.jobs.train, "train_run", interrupted)
    monkeypatch.setenv("RANK", rank)
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 130
    printed = capsys.readouterr().out
    if rank == "0":
        assert printed == (f"stopped at day 0 step 3; checkpoint saved. Continue with: malt "
                           f"train --resume --out {tmp_path / 'r'}\n")
    else:
        assert printed == ""
