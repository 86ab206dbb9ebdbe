"""`malt demo` reuses an earlier demo only when every setting matches."""

import json

import pytest

from malt.commands.demo import claim_demo
from malt.errors import ConfigError
from malt.outputs import OutputDir

SETTINGS = {"seed": 2026, "data": None, "size": "small", "models": {"base": [], "moae": ["cat"]}}


def test_a_demo_is_reused_only_with_the_same_settings(tmp_path):
    out = tmp_path / "demo"
    assert claim_demo(out, SETTINGS, overwrite=False) is False
    OutputDir(out / "runs" / "base", "run").claim()
    assert claim_demo(out, SETTINGS, overwrite=False) is True
    other = {**SETTINGS, "seed": 1}
    with pytest.raises(ConfigError, match="other settings.*seed 2026, size small"):
        claim_demo(out, other, overwrite=False)
    with pytest.raises(ConfigError, match="other settings"):
        claim_demo(out, {**SETTINGS, "models": {"base": []}}, overwrite=False)
    assert claim_demo(out, other, overwrite=True) is False
    assert json.loads((out / "demo.json").read_text())["seed"] == 1
    assert not (out / "runs").exists()


def test_a_demo_never_replaces_files_it_did_not_write(tmp_path):
    out = tmp_path / "demo"
    claim_demo(out, SETTINGS, overwrite=False)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        claim_demo(out, {**SETTINGS, "seed": 1}, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a malt output"):
        claim_demo(elsewhere, SETTINGS, overwrite=True)
    assert [p.name for p in elsewhere.iterdir()] == ["x.txt"]
