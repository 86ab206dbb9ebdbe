"""BASE vs MoAE on every encoder, on a data set with bags and ragged sequences or a simulation.

Writes a click log of another shape than MAC's (`foreign_data`): a user bag of interest tags
(multi-hot, 0 to 12 tags, the first 8 kept), a ragged item history (0 to 40 items, latest
first, the 10 latest kept), a handful of ad and context fields, and last / first / linear
attribution labels over each user's path. A user clicks ads one after another until a click
converts (or the planned clicks run out); a click converts with probability σ(z), where z rises
when the ad's tag is among the user's interests (the bag), and more when the ad's item is among
the user's 10 latest items or, less, shares a tag with one of them (the sequence). So the
converting click is the path's last, its `last` label is that click's own draw, and a model
that ignores the bag or the sequence loses AUC. Every day draws its users from one population,
so most test users were seen in training. Then trains BASE and MoAE on each encoder
(`target_attention`, `dnn`, `dcnv2`, `din`), and BASE without the bag, without the sequence
and without both, for `--runs` training seeds; and writes each comparison's paired interval
over the test users and the seeds (`malt.api.compare`) as a Markdown table and a CSV under
`--results`: MoAE against BASE on each encoder, each encoder against `target_attention` under
BASE and under MoAE, and the ablations against BASE.

    python scripts/compare_backbones.py [--out studies/backbones] [--seed 2026] \
        [--results docs/results/backbones] [--runs 3] [--users-per-day 9000] [--jobs 1]

With `--data simulation` the data is instead a MAC-shaped simulation of the `small` preset
(`--users` users over 11 days; fixed-length id and float sequences, no bag) with the views
last, first, linear and mta, and the table has no ablations.

`--seed` fixes the data (same seed, same bytes) and the first training seed (then +1, +2).
Runs already complete under OUT are reused, as in a study.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from malt.api import compare, prepare
from malt.data.layout import write_day
from malt.experiments.cells import Cell
from malt.experiments.scheduler import run_cells
from malt.experiments.study import reference_aux
from malt.metrics import auc
from malt.runs.config import RunConfig
from malt.sources.simulate import simulate, size_config

SCHEMA = """\
name = "foreign"
user_column = "user"
labels = ["last", "first", "linear"]
ragged_sequences = true
sequence_length = 10

[fields]
user = ["age"]
ad = ["item", "tag", "shop"]
context = ["slot"]

[bags]
interests = { group = "user", pooling = "sum", max_length = 8 }

[id_sequences]
history = "item"

[embed_dims]
age = 4
slot = 4
"""
LABELS = ("last", "first", "linear")
SIMULATION_LABELS = ("last", "first", "linear", "mta")
SIMULATION_USERS = 20_000
"""The `small` preset's users: about 1M clicks over 11 days."""
ITEMS, TAGS, SHOPS, SLOTS, AGES = 600, 40, 60, 6, 8
KEPT_INTERESTS, RECENT = 8, 10
"""The bag's kept length, and how many of the latest history items raise z: the sequence's
kept length, so every item that counts is in what the models see."""
TRAIN_DAYS, USERS_PER_DAY = 5, 9000
ENCODERS = ("target_attention", "dnn", "dcnv2", "din")
ABLATIONS = {"no-bag": ("interests",), "no-sequence": ("history",),
             "no-bag-no-sequence": ("interests", "history")}
"""BASE on `target_attention` with these columns left out of the schema."""


def ragged(lengths: np.ndarray, values: np.ndarray) -> pa.ListArray:
    """A list column of rows of `lengths` [N] items taken in order from `values`."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def padded(lengths: np.ndarray, values: np.ndarray, width: int) -> np.ndarray:
    """The first `width` items of every row of a list column, -1 past its length: [N, width]."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    positions = np.arange(width)
    index = starts[:, None] + positions
    keep = positions < lengths[:, None]
    return np.where(keep, values[np.where(keep, index, 0)] if len(values) else -1, -1)


@dataclass(frozen=True)
class Users:
    """Everyone who may click: each user's age, interest tags and item history (latest first)."""

    age: np.ndarray
    """[U]"""
    n_interests: np.ndarray
    """[U] tags in each user's bag."""
    interests: np.ndarray
    """The bags' tags, user after user."""
    n_history: np.ndarray
    """[U] items in each user's history."""
    history: np.ndarray
    """The histories' items, user after user, each latest first."""


def population(rng: np.random.Generator, users: int) -> Users:
    """`users` users: 0 to 12 distinct interest tags, 0 to 40 history items each."""
    n_interests = np.minimum(rng.poisson(4.0, users), 12)
    # each user's distinct tags: the first n of a random order of all of them
    order = np.argsort(rng.random((users, TAGS)), axis=1)
    n_history = np.minimum(rng.geometric(1 / 12, users) - 1, 40)
    return Users(age=rng.integers(0, AGES, users), n_interests=n_interests,
                 interests=order[np.arange(TAGS) < n_interests[:, None]],
                 n_history=n_history,
                 history=rng.integers(0, ITEMS, int(n_history.sum())))


def day_table(rng: np.random.Generator, everyone: Users, users: int,
              item_effect: np.ndarray, slot_effect: np.ndarray,
              tag_of_item: np.ndarray, shop_of_item: np.ndarray) -> pa.Table:
    """One day: `users` users drawn from `everyone`, each planning 1 to 6 clicks and stopping
    at the first that converts (rows grouped by user, in click order), and the attribution
    labels of their conversions."""
    who = rng.choice(len(everyone.age), users, replace=False)
    kept_interests = padded(everyone.n_interests, everyone.interests, KEPT_INTERESTS)[who]
    recent = padded(everyone.n_history, everyone.history, RECENT)[who]      # [users, 10]

    planned = rng.integers(1, 7, users)
    user = np.repeat(np.arange(users), planned)
    rows = len(user)
    # A click's item: a recent item again, an item of an interest tag, or any item.
    source = rng.random(rows)
    any_item = rng.integers(0, ITEMS, rows)
    again = recent[user, rng.integers(0, RECENT, rows)]
    interest = kept_interests[user, rng.integers(0, KEPT_INTERESTS, rows)]
    by_tag = interest + TAGS * rng.integers(0, ITEMS // TAGS, rows)     # items of tag t: t mod T
    item = np.where((source < 0.25) & (again >= 0), again,
                    np.where((source >= 0.25) & (source < 0.5) & (interest >= 0), by_tag,
                             any_item))
    tag = tag_of_item[item]
    slot = rng.integers(0, SLOTS, rows)
    z = click_logit(*matches(kept_interests[user], recent[user], item, tag_of_item),
                    item_effect[item], slot_effect[slot])
    causes = rng.random(rows) < 1 / (1 + np.exp(-z))
    # A user who converts stops clicking: keep each path up to its first converting click.
    start = np.concatenate([[0], np.cumsum(planned)[:-1]])
    earlier = np.cumsum(causes) - causes
    kept = earlier == earlier[start][user]
    user, item, tag, slot, causes = user[kept], item[kept], tag[kept], slot[kept], causes[kept]
    clicks = np.bincount(user, minlength=users)
    converted = np.bincount(user, weights=causes, minlength=users) > 0
    position = np.arange(len(user)) - (np.cumsum(clicks) - clicks)[user]
    won = converted[user]
    weights = {"last": (won & (position == clicks[user] - 1)).astype(np.float32),
               "first": (won & (position == 0)).astype(np.float32),
               "linear": np.where(won, 1 / clicks[user], 0).astype(np.float32)}
    row_user = who[user]
    return pa.table({
        "user": pa.array(row_user),
        "age": pa.array(everyone.age[row_user]),
        "item": pa.array(item), "tag": pa.array(tag), "shop": pa.array(shop_of_item[item]),
        "slot": pa.array(slot),
        "interests": ragged(everyone.n_interests[row_user], everyone.interests[
            _row_index(everyone.n_interests, row_user)]),
        "history": ragged(everyone.n_history[row_user], everyone.history[
            _row_index(everyone.n_history, row_user)]),
        **{name: pa.array(weights[name]) for name in LABELS}})


def matches(interests: np.ndarray, recent: np.ndarray, item: np.ndarray,
            tag_of_item: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What z hangs on, per click [N] from its user's kept interests [N, 8] and latest items
    [N, 10] (-1 past their length): the item's tag is in the bag; the item is among the latest;
    the item is not, but its tag is one of theirs."""
    tag = tag_of_item[item]
    in_recent = (recent == item[:, None]).any(1)
    recent_tags = np.where(recent >= 0, tag_of_item[np.maximum(recent, 0)], -1)
    return ((interests == tag[:, None]).any(1), in_recent,
            (recent_tags == tag[:, None]).any(1) & ~in_recent)


def click_logit(in_bag: np.ndarray, in_recent: np.ndarray, same_tag: np.ndarray,
                item_effect: np.ndarray, slot_effect: np.ndarray) -> np.ndarray:
    """z of each click [N]: it converts with probability σ(z)."""
    return -3.5 + 1.5 * in_bag + 2.0 * in_recent + 0.8 * same_tag + item_effect + slot_effect


def effects(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each item's and each slot's own term of z: the data seed's first draws."""
    return rng.normal(0, 0.4, ITEMS), rng.normal(0, 0.3, SLOTS)


def click_score_aucs(data: Path, seed: int) -> dict[str, float]:
    """AUC on the test day's `last` labels of each click's own z (`all`): how well a row's
    features can tell its label when the model knows the generator (a ceiling for the
    models' AUC, up to the draws' noise); and of z without its bag term (`no-bag`), its
    sequence terms (`no-sequence`) or both (`no-bag-no-sequence`): what the ablations can
    reach at best."""
    item_effect, slot_effect = effects(np.random.default_rng(seed))
    table = pq.read_table(data / "test" / f"day{TRAIN_DAYS}.parquet")
    lists = {c: table[c].combine_chunks() for c in ("interests", "history")}
    interests, history = (padded(lists[c].value_lengths().to_numpy(zero_copy_only=False),
                                 lists[c].values.to_numpy(), width)
                          for c, width in (("interests", KEPT_INTERESTS), ("history", RECENT)))
    item, last = table["item"].to_numpy(), table["last"].to_numpy() > 0
    in_bag, in_recent, same_tag = matches(interests, history, item, np.arange(ITEMS) % TAGS)
    none = np.zeros_like(in_bag)
    terms = {"all": (in_bag, in_recent, same_tag), "no-bag": (none, in_recent, same_tag),
             "no-sequence": (in_bag, none, none), "no-bag-no-sequence": (none, none, none)}
    return {name: auc(click_logit(*kept, item_effect[item],
                                  slot_effect[table["slot"].to_numpy()]), last)
            for name, kept in terms.items()}


def _row_index(lengths: np.ndarray, user: np.ndarray) -> np.ndarray:
    """Positions in a per-user list column's values of every row's copy of its user's list,
    the rows in order: the lists repeated once per row of their user."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    row_lengths = lengths[user]
    row_starts = np.concatenate([[0], np.cumsum(row_lengths)[:-1]])
    within = np.arange(int(row_lengths.sum())) - np.repeat(row_starts, row_lengths)
    return np.repeat(starts[user], row_lengths) + within


def foreign_data(root: Path, seed: int, users_per_day: int = USERS_PER_DAY) -> Path:
    """Write the data set (train days 0-4, one test day, vocabs, schema) to `root`: every day
    draws its users from one population of 3 · `users_per_day`, so most test users were seen
    in training (and GAUC has users with history; the others count as users of their own)."""
    rng = np.random.default_rng(seed)
    item_effect, slot_effect = effects(rng)
    tag_of_item = np.arange(ITEMS) % TAGS
    shop_of_item = rng.integers(0, SHOPS, ITEMS)
    everyone = population(rng, 3 * users_per_day)
    for day in range(TRAIN_DAYS + 1):
        split = "train" if day < TRAIN_DAYS else "test"
        table = day_table(rng, everyone, users_per_day, item_effect, slot_effect,
                          tag_of_item, shop_of_item)
        write_day(root / split / f"day{day}.parquet", table)
    (root / "schema.toml").write_text(SCHEMA)
    prepare(root, build_vocabs=True)
    return root


def without(data: Path, columns: tuple[str, ...], out: Path) -> Path:
    """A copy of `data` whose schema leaves `columns` out (ignored, not read)."""
    if (out / "schema.toml").exists():
        return out
    for split in ("train", "test", "vocabs"):
        shutil.copytree(data / split, out / split, dirs_exist_ok=True)
    text = SCHEMA.replace("interests = {", "# interests = {") if "interests" in columns \
        else SCHEMA
    if "history" in columns:
        text = text.replace('history = "item"', "").replace("ragged_sequences = true\n", "")
    ignored = ", ".join(f'"{c}"' for c in columns)
    (out / "schema.toml").write_text(text.replace('labels = [', f"ignore_columns = [{ignored}]"
                                                  "\nlabels = [", 1))
    return out


@dataclass(frozen=True)
class Arm:
    """One side of the table: a model on an encoder (and data) over the training seeds."""

    name: str
    model: str
    encoder: str
    data: Path
    runs: Path
    """Where its runs go: one folder per data set, since a cell's id leaves the data's path
    out."""
    labels: tuple[str, ...] = LABELS
    """The data's views: the auxiliary ones are the reference set of `model` among them."""


def config(arm: Arm, seed: int) -> RunConfig:
    """The run of `arm` for training seed `seed`: one shuffled pass, main view `last`, the
    reference auxiliary views of its model."""
    return RunConfig.from_dict({
        "seed": seed, "data": {"path": str(arm.data)},
        "task": {"main": "last", "aux": list(reference_aux(arm.model, "last", arm.labels))},
        "train": {"lr": 3e-3, "batch_size": 512, "shuffle": True, "device": "cpu",
                  "log_every": 1000},
        "model": {"name": arm.model, "encoder": {"name": arm.encoder},
                  "expert": {"dim": 64}, "tower": {"dims": [64, 32]}}})


def simulated_data(root: Path, seed: int, users: int) -> Path:
    """Write the `small` simulation of `users` users from `seed` to `root` (MAC layout)."""
    simulate(size_config("small", users=users, seed=seed), root)
    return root


def truth_auc(data: Path) -> str:
    """How well the simulator's chance that a test click's journey ends in a purchase scores
    `last`, as the table's first sentence: a reference, not a ceiling, since `last` also
    credits a click for being its journey's last, which the features partly show."""
    table = pq.read_table(data / "test", columns=["true_cvr", "last"])
    score = auc(table["true_cvr"].to_numpy(), table["last"].to_numpy() > 0)
    return (f"The simulator's chance that a click's journey ends in a purchase (`true_cvr`) "
            f"scores `last` at AUC {score:.4f}; it is no ceiling, as `last` also credits a "
            "click for being its journey's last, which the features partly show.")


def foreign_reference(data: Path, seed: int) -> str:
    """The generator's AUC with and without its bag and sequence terms, as the table's first
    sentence (see `click_score_aucs`)."""
    reference = click_score_aucs(data, seed)
    return (f"Each click's own z (the generator's) scores `last` at AUC {reference['all']:.4f}; "
            f"without its bag term {reference['no-bag']:.4f}, without its sequence terms "
            f"{reference['no-sequence']:.4f}, without either "
            f"{reference['no-bag-no-sequence']:.4f}.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("foreign", "simulation"), default="foreign",
                        help="the foreign-shaped data set with bags and ragged sequences, or a "
                             "MAC-shaped simulation")
    parser.add_argument("--out", type=Path, default=Path("studies/backbones"))
    parser.add_argument("--results", type=Path, default=Path("docs/results/backbones"))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--runs", type=int, default=3, help="training seeds per arm")
    parser.add_argument("--users-per-day", type=int, default=USERS_PER_DAY,
                        help="foreign data: users a day (each with 1 to 6 clicks), drawn from "
                             "3 times as many")
    parser.add_argument("--users", type=int, default=SIMULATION_USERS,
                        help="simulation: users simulated over 11 days")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    if args.data == "foreign":
        data = args.out / "data"
        if not (data / "vocabs").is_dir():
            foreign_data(data, args.seed, args.users_per_day)
        labels, ablations = LABELS, ABLATIONS
    else:
        data = args.out / "simulation"
        if not (data / "vocabs").is_dir():
            simulated_data(data, args.seed, args.users)
        labels, ablations = SIMULATION_LABELS, {}
    arms = {f"{model}/{encoder}": Arm(f"{model}/{encoder}", model, encoder, data,
                                      args.out / "runs", labels)
            for encoder in ENCODERS for model in ("base", "moae")}
    for name, columns in ablations.items():
        arms[f"base/{name}"] = Arm(f"base/{name}", "base", "target_attention",
                                   without(data, columns, args.out / f"data-{name}"),
                                   args.out / f"runs-{name}", labels)
    seeds = [args.seed + i for i in range(args.runs)]
    cells = {(arm, s): Cell(config(a, s)) for arm, a in arms.items() for s in seeds}
    outcomes = {}
    for root in dict.fromkeys(a.runs for a in arms.values()):
        keys = [key for key in cells if arms[key[0]].runs == root]
        by_id = run_cells([cells[key] for key in keys], root, jobs=args.jobs, cpu_jobs=None)
        outcomes.update({key: by_id[cells[key].id] for key in keys})
    failed = [f"{arm} seed {s}" for (arm, s), outcome in outcomes.items() if not outcome.ok]
    if failed:
        raise SystemExit(f"runs failed: {failed}")
    runs = {arm: [cells[(arm, s)].run_dir(arms[arm].runs).path for s in seeds] for arm in arms}
    pairs = [(f"moae/{e}", f"base/{e}") for e in ENCODERS]
    pairs += [(f"{model}/{e}", f"{model}/target_attention") for model in ("base", "moae")
              for e in ENCODERS[1:]]
    pairs += [(f"base/{name}", "base/target_attention") for name in ablations]
    rows = []
    for candidate, baseline in pairs:
        result = compare(runs[candidate], runs[baseline], metrics=("auc", "gauc"),
                         seed=args.seed)
        means = {arm: [outcomes[(arm, s)].metrics.views["last"] for s in seeds]
                 for arm in (candidate, baseline)}
        rows.append({"candidate": candidate, "baseline": baseline,
                     "auc": np.mean([m.auc for m in means[candidate]]),
                     "baseline_auc": np.mean([m.auc for m in means[baseline]]),
                     **{f"{metric}_{part}": 100 * getattr(result.deltas[metric], part)
                        for metric in ("auc", "gauc") for part in ("estimate", "low", "high")},
                     "verdict": result.verdict})
    reference = foreign_reference(data, args.seed) if args.data == "foreign" \
        else truth_auc(data)
    write_results(args.results, rows, seeds, reference)


def write_results(out: Path, rows: list[dict], seeds: list[int], reference: str) -> None:
    """The comparisons as `backbones.csv` and as the Markdown table `backbones.md`, after the
    sentence `reference` on what the data allows."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "backbones.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()}
                         for r in rows)
    seed_list = ", ".join(map(str, seeds))
    lines = [f"Test day, main view `last`, {len(seeds)} training seeds ({seed_list}); "
             "Δ in points with its 95 % paired bootstrap interval over test users and seeds. "
             + reference,
             "",
             "| candidate | baseline | AUC | baseline AUC | Δ AUC (pt) | Δ GAUC (pt) | verdict |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['candidate']} | {r['baseline']} | {r['auc']:.4f} | {r['baseline_auc']:.4f} | "
            f"{r['auc_estimate']:+.2f} [{r['auc_low']:+.2f}, {r['auc_high']:+.2f}] | "
            f"{r['gauc_estimate']:+.2f} [{r['gauc_low']:+.2f}, {r['gauc_high']:+.2f}] | "
            f"{r['verdict']} |")
    (out / "backbones.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
