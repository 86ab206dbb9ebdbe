"""How the GPU check's steps hand their results to it: `DIR/steps/STEP.json`, tagged with the
check's run so that a file left by an earlier check is never taken for this one's."""

from __future__ import annotations

import json
import os
from pathlib import Path

from malt.outputs import atomic_write_text

RUN_VARIABLE = "MALT_GPU_CHECK_RUN"
"""The environment variable through which the check gives its steps its run's id."""


def result_path(out: Path, step: str) -> Path:
    return out / "steps" / f"{step}.json"


def write_result(out: Path, step: str, ok: bool, figures: dict, report: str) -> None:
    """`out/steps/step.json`, written whole or not at all: `ok`, the step's `figures` (JSON)
    and its markdown `report`."""
    path = result_path(out, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"step": step, "run": os.environ.get(RUN_VARIABLE),
                                        "ok": ok, "figures": figures, "report": report},
                                       indent=1))


def read_result(out: Path, step: str, run: str) -> dict | None:
    """The result `step` wrote in check `run` (None when it wrote none)."""
    path = result_path(out, step)
    if not path.exists():
        return None
    written = json.loads(path.read_text())
    return written if written.get("run") == run else None
