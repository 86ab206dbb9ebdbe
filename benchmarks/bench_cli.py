"""How long the command line takes to start: `import malt.cli`, `malt --help` and
`malt train --help`, each as a multiple of a fresh interpreter (`python -c pass`) timed in the
same run, and the heavy libraries `malt --help` loads.

    python -m benchmarks.bench_cli [--repeats 7] [--baseline OTHER/src]

`--baseline` times another checkout's `src` (say, before a change) in the same run, as a second
row. Every figure is the median of `--repeats` fresh processes, taken in turns.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import publish

SRC = Path(__file__).resolve().parent.parent / "src"
HEAVY = ("pandas", "pyarrow", "torch", "numpy", "matplotlib", "tensorboard")
LOADED = ("import json, sys, malt.cli\n"
          "try:\n    malt.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
          f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)")
COMMANDS = {
    "floor": ["-c", "pass"],
    "import": ["-c", "import malt.cli"],
    "help": ["-m", "malt", "--help"],
    "train help": ["-m", "malt", "train", "--help"],
}


def run(argv: list[str], src: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, *extra, *argv], env=env, capture_output=True,
                          text=True, check=True)


def timings(sources: list[Path], repeats: int) -> list[dict[str, float]]:
    """Per source, the median wall seconds of each of COMMANDS in fresh processes, every
    command of every source in turn."""
    seconds = [{name: [] for name in COMMANDS} for _ in sources]
    for _ in range(repeats):
        for src, times in zip(sources, seconds):
            for name, argv in COMMANDS.items():
                started = time.perf_counter()
                run(argv, src)
                times[name].append(time.perf_counter() - started)
    return [{name: statistics.median(values) for name, values in times.items()}
            for times in seconds]


def import_seconds(src: Path, module: str, code: str) -> float | None:
    """Cumulative import time of `module` while running `code` (`python -X importtime`)."""
    err = run(["-c", code], src, "-X", "importtime").stderr
    found = re.search(rf"^import time:\s+\d+ \|\s+(\d+) \|\s+{re.escape(module)}$", err,
                      re.M)
    return int(found.group(1)) / 1e6 if found else None


def measure(src: Path, times: dict[str, float]) -> dict:
    """`times` with the import figures and the heavy libraries of `src`."""
    help_code = "import malt.cli\ntry:\n    malt.cli.main(['--help'])\nexcept SystemExit:\n    pass"
    return {"times": times,
            "import_malt_cli": import_seconds(src, "malt.cli", "import malt.cli"),
            "pandas": import_seconds(src, "pandas", help_code),
            "loaded": json.loads(run(["-c", LOADED], src).stderr.strip().splitlines()[-1])}


def row(label: str, m: dict) -> str:
    t = m["times"]
    floor = t["floor"]
    pandas = "not loaded" if m["pandas"] is None else f"{m['pandas']:.2f} s"

    def of_floor(name: str) -> str:
        return f"{t[name]:.2f} s ({t[name] / floor:.0f}x)"

    return (f"| {label} | {floor:.3f} | {of_floor('import')} | {m['import_malt_cli']:.2f} | "
            f"{of_floor('help')} | {of_floor('train help')} | {pandas} | "
            f"{', '.join(m['loaded']) or 'none'} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout's src directory, timed in the same run")
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args(argv)
    sources = {**({f"baseline (`{args.baseline}`)": args.baseline} if args.baseline else {}),
               "this checkout": SRC}
    times = timings(list(sources.values()), args.repeats)
    rows = [row(label, measure(src, t)) for (label, src), t in zip(sources.items(), times)]
    body = "\n".join([
        f"Median of {args.repeats} fresh processes per command, every command of every source "
        "in turn; `x`: multiple of the floor, a fresh interpreter (`python -c pass`) timed in "
        "the same run. `import malt.cli` (importtime): the cumulative import time that "
        "`python -X importtime` reports. pandas under `malt --help`: its cumulative import "
        f"time there. Load average at the end: {os.getloadavg()[0]:.2f}.",
        "",
        "| source | floor s | `import malt.cli` | `import malt.cli` (importtime) s | "
        "`malt --help` | `malt train --help` | pandas under `malt --help` | "
        "heavy libraries `malt --help` loads |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *rows])
    publish("command-line start-up", "bench_cli", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
