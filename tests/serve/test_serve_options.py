"""`malt serve`'s choice of model: a run or an exported file (one of them), refused up front,
exit 3, before anything is loaded."""

from __future__ import annotations

import pytest

from malt.cli import main
from malt.errors import ConfigError
from malt.serve.options import ServeOptions


@pytest.mark.parametrize("flags, message", [
    ([], "--run RUN or --export FILE"),
    (["--run", "r", "--export", "m.onnx"], "--run RUN or --export FILE"),
    (["--export", "m.onnx", "--engine", "torch"], "run by ONNX Runtime"),
])
def test_the_model_to_serve_is_one_run_or_one_onnx_export(flags, message, capsys):
    assert main(["serve", *flags]) == 3
    assert message in capsys.readouterr().err


def test_a_run_is_scored_by_torch_and_an_export_by_onnx_unless_told():
    assert ServeOptions(run="r").engine_name == "torch"
    assert ServeOptions(run="r", engine="onnx").engine_name == "onnx"
    assert ServeOptions(export="m.onnx").engine_name == "onnx"
    with pytest.raises(ConfigError):
        ServeOptions(export="m.onnx", engine="torch")
