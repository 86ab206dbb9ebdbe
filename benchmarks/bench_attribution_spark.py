"""Attribution on Spark against the in-memory engine: clicks per second, and per core, of
`malt attribute` end to end (parquet logs in, the MAC layout out), on local[1] and local[2].

The log is `bench_attribution`'s synthetic one, written to parquet first. Every configuration
runs once after a warm-up run on a small log (the JVM compiles its code on first use); the
time to start the session is reported on its own.

    python -m benchmarks.bench_attribution_spark [--clicks 1000000] [--users 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.bench_attribution import synthetic_log
from benchmarks.report import best_of, update_section
from malt.sources.attribution import ALL_RULES, RULES, AttributionConfig
from malt.sources.attribution.pipeline import attribute_logs


def write_log(folder: Path, clicks: int, users: int, conversion_every: int, seed: int
              ) -> tuple[str, str]:
    log = synthetic_log(clicks, users, conversion_every, seed)
    paths = str(folder / "clicks.parquet"), str(folder / "conversions.parquet")
    log.clicks.to_parquet(paths[0])
    log.conversions.to_parquet(paths[1])
    return paths


def spark_session(cores: int, driver_memory: str):
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    session = (SparkSession.builder.master(f"local[{cores}]").appName("malt bench")
               .config("spark.driver.memory", driver_memory)
               .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--conversion-every", type=int, default=30)
    parser.add_argument("--cores", default="1,2", help="local[k] masters to run, comma-separated")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cores = [int(c) for c in args.cores.split(",")]
    rule_sets = {"all six": ALL_RULES, "five (no dda)": RULES}

    rows, runs = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        logs = write_log(folder, args.clicks, args.users, args.conversion_every, args.seed)
        small = folder / "small"
        small.mkdir()
        warm_up = write_log(small, 20_000, 2_000, args.conversion_every, args.seed)

        def run(paths, rules, engine, master=None) -> float:
            nonlocal runs
            runs += 1
            config = AttributionConfig(rules=rules, dda_features=("scenario",))
            seconds, _ = best_of(1, lambda: attribute_logs(
                *paths, folder / f"out-{runs}", config, engine=engine, master=master))
            return seconds

        for name, rules in rule_sets.items():
            rows.append(("memory", 1, name, run(logs, rules, "memory")))
        starts = []
        for k in cores:
            t0 = time.perf_counter()
            spark_session(k, args.driver_memory)
            starts.append(f"local[{k}] {time.perf_counter() - t0:.1f} s")
            run(warm_up, ALL_RULES, "spark")
            for name, rules in rule_sets.items():
                rows.append((f"spark local[{k}]", k, name, run(logs, rules, "spark")))

    lines = [f"Synthetic log of `bench_attribution`: {args.clicks:,} clicks by {args.users:,} "
             f"users over 21 days, one conversion per {args.conversion_every} clicks, direct "
             f"mode, dda feature `scenario`, seed {args.seed}; `malt attribute` end to end "
             "(parquet in, MAC layout out), one run each after a warm-up run on 20,000 clicks. "
             f"Starting the session (the JVM included): {', '.join(starts)}.", "",
             "| engine | cores | rules | seconds | clicks / s | clicks / s per core |",
             "|---|---:|---|---:|---:|---:|"]
    for engine, k, name, seconds in rows:
        rate = args.clicks / seconds
        lines.append(f"| {engine} | {k} | {name} | {seconds:.1f} | {rate:,.0f} | "
                     f"{rate / k:,.0f} |")
    body = "\n".join(lines)
    print(body)
    command = "python -m benchmarks.bench_attribution_spark" + (
        f" --clicks {args.clicks}" if args.clicks != 1_000_000 else "")
    update_section("Attribution engine on Spark", command, body)


if __name__ == "__main__":
    main()
