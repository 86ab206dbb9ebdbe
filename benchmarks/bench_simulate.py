"""Simulator speed (clicks/s) and peak memory, `medium` size by default.

Each size runs in a fresh child process writing into a temporary directory, so the peak resident
memory reported (`getrusage` of the finished child) is the simulator's alone, interpreter and
imports included. The time is the simulator's own (catalogue, users, journeys, labels, features,
parquet writing, vocabs).

    python -m benchmarks.bench_simulate [--sizes medium] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.report import update_section

_CHILD = """
import json, sys
from pathlib import Path
from malt.sources.simulate import size_config, simulate
out = Path(sys.argv[2])
stats = simulate(size_config(sys.argv[1], seed=int(sys.argv[3])), out)
size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
print(json.dumps({"clicks": stats.clicks, "seconds": stats.seconds, "bytes": size,
                  "ratios": stats.ratios(), "days": len(stats.rows_per_day)}))
"""


def run_size(size: str, seed: int) -> dict:
    """Simulate `size` in a child process; its figures plus the child's peak RSS in bytes."""
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        done = subprocess.run([sys.executable, "-c", _CHILD, size, str(Path(tmp) / "data"),
                               str(seed)], check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Linux reports ru_maxrss in KiB; the children's figure is the largest finished child so
    # far, and sizes run in increasing order, so it belongs to this one.
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["medium"],
                        choices=["tiny", "small", "medium", "mac"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    order = ["tiny", "small", "medium", "mac"]
    rows = []
    for size in sorted(set(args.sizes), key=order.index):
        r = run_size(size, args.seed)
        ratios = " / ".join(f"{100 * r['ratios'][k]:.2f}" for k in ("last", "first", "mta",
                                                                      "linear"))
        rows.append(f"| {size} | {r['days']} | {r['clicks']:,} | {r['seconds']:.1f} | "
                    f"{r['clicks'] / r['seconds']:,.0f} | {r['peak_rss'] / 2**30:.2f} | "
                    f"{r['bytes'] / 2**20:,.0f} | {ratios} |")
        print(rows[-1], flush=True)
    body = ("| size | days | clicks | seconds | clicks/s | peak RSS (GiB) | on disk (MiB) | "
            "positive % last / first / DDA / linear |\n|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows)
            + "\n\nOne process, numpy on the CPU; the time covers simulation, labels, features, "
              "zstd parquet writing and vocabs. MAC's positive ratios: 1.6 / 1.8 / 4.3 / 5.3.")
    update_section("simulate", "python -m benchmarks.bench_simulate --sizes "
                   + " ".join(sorted(set(args.sizes), key=order.index)), body)


if __name__ == "__main__":
    main()
