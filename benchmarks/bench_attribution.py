"""Attribution engine speed: clicks per second from raw logs to labels and to the MAC layout.

The log is synthetic: `--clicks` clicks over 21 days by `--users` users, each user clicking a few
items of their own (so (user, item) pairs repeat and journeys have several clicks), plus one
conversion per `--conversion-every` clicks, 0-3 days after a click of the same (user, item).
Every stage is timed on its own (best of `--repeats`), then the whole `attribute` call with all
six rules, then the writer.

    python -m benchmarks.bench_attribution [--clicks 1000000] [--users 100000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.report import best_of, update_section
from malt.sources.attribution import ALL_RULES, AttributionConfig, ClickLog, attribute
from malt.sources.attribution.engine import journey_keys
from malt.sources.attribution.journeys import DAY, build_journeys
from malt.sources.attribution.mac import build_schema, write_mac
from malt.sources.attribution.rules import credit


def synthetic_log(clicks: int, users: int, conversion_every: int, seed: int) -> ClickLog:
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, clicks)
    own_items = rng.integers(0, 50 * users, (users, 6))
    item = own_items[user, rng.integers(0, 6, clicks)]
    time_ = np.round(rng.uniform(0, 21 * DAY, clicks))
    frame = pd.DataFrame({"user": user, "item": item, "click_time": time_,
                          "click_id": rng.permutation(clicks).astype(np.int64),
                          "scenario": rng.integers(0, 8, clicks), "hour": (time_ // 3600) % 24})
    picked = rng.choice(clicks, clicks // conversion_every, replace=False)
    conversions = pd.DataFrame({"user": user[picked], "item": item[picked],
                                "conversion_time": time_[picked]
                                + np.round(rng.uniform(0, 3 * DAY, len(picked)))})
    return ClickLog(clicks=frame, conversions=conversions,
                    click_order=frame["click_id"].to_numpy(), features=("scenario", "hour"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--conversion-every", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    log = synthetic_log(args.clicks, args.users, args.conversion_every, args.seed)
    config = AttributionConfig(rules=ALL_RULES, dda_features=("scenario",))
    n = len(log.clicks)
    rows = []

    t_keys, (click_key, conv_key) = best_of(args.repeats, lambda: journey_keys(log, "direct"))
    rows.append(("matching keys (user, item)", t_keys))
    click_time = log.clicks["click_time"].to_numpy()
    conv_time = log.conversions["conversion_time"].to_numpy()
    t_build, journeys = best_of(args.repeats, lambda: build_journeys(
        click_key, click_time, log.click_order, conv_key, conv_time, config.window))
    rows.append(("journeys (7-day window)", t_build))
    pair_time, pair_id = click_time[journeys.click], log.click_order[journeys.click]
    t_rules, _ = best_of(args.repeats, lambda: [
        credit(rule, journeys.conversion, pair_time, pair_id, journeys.age)
        for rule in ALL_RULES[:-1]])
    rows.append((f"rules last, first, linear, position, time_decay ({len(journeys):,} pairs)",
                 t_rules))
    t_all, result = best_of(args.repeats, lambda: attribute(log, config))
    t_stages = sum(t for _, t in rows)
    rows.append(("rule `dda` (fit + Shapley shares)", max(t_all - t_stages, 0.0)))
    rows.append(("**`attribute`, all six rules**", t_all))

    schema = build_schema(log, config.rules, name="bench")
    with tempfile.TemporaryDirectory() as tmp:
        t_write, days = best_of(1, lambda: write_mac(Path(tmp) / "out", log, result.labels,
                                                     schema))
    rows.append((f"write MAC layout ({len(days)} days, vocabs, schema)", t_write))

    sizes = result.journeys.sizes
    lines = [f"Synthetic log: {n:,} clicks by {args.users:,} users over 21 days, "
             f"{len(log.conversions):,} conversions ({np.count_nonzero(sizes):,} with a journey, "
             f"{len(result.journeys):,} (conversion, click) pairs, mean journey "
             f"{sizes[sizes > 0].mean():.2f} clicks), direct mode, seed {args.seed}. "
             f"Best of {args.repeats} runs (the writer: one run); the `dda` row is the full call "
             "minus the other stages.", "",
             "| stage | seconds | clicks / s |", "|---|---:|---:|"]
    for name, seconds in rows:
        lines.append(f"| {name} | {seconds:.3f} | {n / max(seconds, 1e-9):,.0f} |")
    if result.dda_model is not None:
        second = ", ".join(f"{v:+.2f}" for v in result.dda_model.cell_effects[0])
        lines += ["", f"Fitted dda: first-click logit {result.dda_model.first_click_logit:+.2f}; "
                      f"a second click adds (gap <=1 min, <=1 h, <=1 day, longer) {second}."]
    body = "\n".join(lines)
    print(body)
    command = "python -m benchmarks.bench_attribution" + (
        f" --clicks {args.clicks}" if args.clicks != 1_000_000 else "")
    update_section("Attribution engine", command, body)


if __name__ == "__main__":
    main()
