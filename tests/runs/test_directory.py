"""A run directory's log on a full disk."""

from __future__ import annotations

import contextlib
import logging
import os

import pytest

from malt.errors import ConfigError
from malt.runs.directory import RunDir


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_log_that_cannot_be_written_ends_with_an_error_naming_it(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    run.claim()
    run.log_file.symlink_to("/dev/full")  # every write fails: no space left on the device
    handler = run.attach_log()
    try:
        with pytest.raises(ConfigError, match=f"cannot write {run.log_file}: no space left"):
            logging.getLogger("malt.training").info("finished day 1")
    finally:
        logging.getLogger("malt").removeHandler(handler)
        with contextlib.suppress(OSError):  # what it holds cannot be written either
            handler.close()
    assert "Traceback" not in capsys.readouterr().err  # logging's own report of the error
