"""Every JSON file malt writes is strict JSON: no call to json.dump(s) lets NaN or Infinity
through (JSON has neither; jq and browsers refuse them)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "malt"


def calls_to_json_dumps(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("dump", "dumps") and \
                isinstance(node.func.value, ast.Name) and node.func.value.id == "json":
            yield node


def test_every_json_malt_writes_refuses_nan_and_infinity():
    calls = {path: list(calls_to_json_dumps(ast.parse(path.read_text())))
             for path in SRC.rglob("*.py")}
    lax = [f"{path.relative_to(SRC)}:{call.lineno}" for path, found in calls.items()
           for call in found
           if not any(k.arg == "allow_nan" and isinstance(k.value, ast.Constant) and
                      k.value.value is False for k in call.keywords)]
    assert sum(map(len, calls.values())) > 10 and not lax
