"""Full training steps at the table sizes users run: every MAC-setting model at the `small`
simulation's vocab and at MAC-scale tables, with each optimiser of the tables (dense Adam,
row-wise Adam: the default, lazy SparseAdam), as a fraction of the matmul floor measured in the
same run.

A step is forward, per-view losses, the λ-weighted total, backward and the optimiser step
(`malt.training.optim.Optimisation`, malt's defaults) on a synthetic batch of `--batch` rows
whose ids are uniform over each table. The floor is the sgemm rate at the expert's shape
(batch x 336 x 256) divided by 6 x dense parameters (forward + backward FLOPs per sample).

    python -m benchmarks.bench_scale [--batch 4096] [--steps 4] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.bench_models import task_for
from benchmarks.report import parse_arguments, publish, sgemm_rate
from malt.data.lookups import load_lookups, vocab_info
from malt.data.schema import MAC
from malt.data.vocab import VocabInfo
from malt.models import model_spec
from malt.runs.config import TrainConfig
from malt.training.optim import Optimisation

MODELS = ("base", "shared_bottom", "mmoe", "ple", "home", "natal", "moae")
MAC_TABLES = {"user_feat0": 800_000, "ad_feat0": 9_600_000, "ad_feat1": 500_000,
              "ad_feat2": 2_400_000}
"""MAC-scale rows of the large tables (users, items, shops, ad groups; MAC paper §3.2 and the
reference's table layout); every other field gets `OTHER_ROWS`."""
OTHER_ROWS = 1_000


def small_vocab() -> VocabInfo:
    """The table sizes of the simulated `small` data set (simulated into a temporary folder)."""
    from malt.sources.simulate import simulate, size_config

    with tempfile.TemporaryDirectory() as tmp:
        simulate(size_config("small"), Path(tmp) / "small")
        return vocab_info(MAC, load_lookups(MAC, Path(tmp) / "small" / "vocabs"))


def mac_vocab() -> VocabInfo:
    sizes = {f: MAC_TABLES.get(f, OTHER_ROWS) for f in MAC.field_names}
    return VocabInfo(sizes, {s.name: 0 for s in MAC.id_sequences})


def synthetic_batch(vocab: VocabInfo, rows: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    length = MAC.sequence_length
    sparse = torch.stack([torch.randint(1, vocab.sizes[f], (rows,), generator=g)
                          for f in MAC.field_names], 1)
    seq = torch.stack([torch.randint(1, vocab.sizes[s.shares], (rows, length), generator=g)
                       for s in MAC.id_sequences], 1)
    pad = torch.arange(length) >= torch.randint(0, length + 1, (rows, 1), generator=g)
    weights = torch.rand(rows, len(MAC.labels), generator=g)
    weights = weights * (torch.rand(rows, len(MAC.labels), generator=g) < 0.05)
    return {"sparse": sparse, "seq": seq.masked_fill(pad.unsqueeze(1), 0),
            "dense_seq": torch.rand(rows, len(MAC.float_sequences), length, generator=g) * 2 - 1,
            "weights": weights, "labels": (weights > 0).float()}


TABLE_OPTIMIZERS = {"dense": "dense Adam", "rows": "row-wise Adam (default)",
                    "lazy": "lazy SparseAdam"}


def training_setup(name: str, vocab: VocabInfo, table_optimizer: str, seed: int):
    """(model, task, optimisation) of model `name` as `malt train` builds them on the CPU."""
    spec = model_spec(name)
    task = task_for(name)
    torch.manual_seed(seed)
    sparse = table_optimizer != "dense"
    config = spec.make_config({"encoder": {"sparse_embeddings": True}} if sparse else {})
    model = spec.build(MAC, vocab, task, config)
    optimisation = Optimisation(model, model.embedding_parameters(),
                                TrainConfig(table_optimizer=table_optimizer), total_steps=1000,
                                sparse_tables=sparse)
    return model, task, optimisation


def step_samples_per_s(name: str, vocab: VocabInfo, table_optimizer: str, batch: dict,
                       steps: int, seed: int) -> tuple[int, float]:
    """(dense parameters, samples/s of full steps) of model `name`."""
    model, task, optimisation = training_setup(name, vocab, table_optimizer, seed)
    seconds = median_step_seconds(model, task, optimisation, batch, steps)
    return model.parameter_counts()[0], len(batch["labels"]) / seconds


def median_step_seconds(model, task, optimisation: Optimisation, batch: dict, steps: int,
                        clock=time.perf_counter) -> float:
    """Median `clock` time of `steps` full training steps, after one warm-up step (which
    allocates the optimiser's state)."""
    model.train()
    times = []
    for i in range(steps + 1):
        start = clock()
        full_step(model, task, optimisation, batch)
        if i:
            times.append(clock() - start)
    return statistics.median(times)


def full_step(model, task, optimisation: Optimisation, batch: dict) -> None:
    """One training step as `malt train` takes it: forward, the λ-weighted losses, backward and
    the optimiser."""
    model.loss_terms(model(batch), batch).total(task.aux_weight).backward()
    optimisation.step()
    optimisation.zero_grad()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=4)
    args = parse_arguments(parser, argv)
    rate = sgemm_rate(args.batch, 336, 256, repeats=10)
    vocabs = {"small": small_vocab(), "MAC-scale": mac_vocab()}
    lines = ["| model | tables | embedding rows | " + " | ".join(
        f"{label} samples/s | of floor" for label in TABLE_OPTIMIZERS.values()) + " |",
        "|---|---|---:|" + "---:|---:|" * len(TABLE_OPTIMIZERS)]
    for label, vocab in vocabs.items():
        batch = synthetic_batch(vocab, args.batch, args.seed)
        rows = sum(vocab.sizes.values())
        for name in MODELS:
            rates = {}
            for table_optimizer in TABLE_OPTIMIZERS:
                dense_params, rates[table_optimizer] = step_samples_per_s(
                    name, vocab, table_optimizer, batch, args.steps, args.seed)
            floor = rate / (6 * dense_params)
            print(f"{label:<10} {name:<14} " + "  ".join(
                f"{k} {v:>9,.0f}" for k, v in rates.items()) + f"  floor {floor:>9,.0f}",
                flush=True)
            lines.append(f"| {name} | {label} | {rows:,} | " + " | ".join(
                f"{v:,.0f} | {v / floor:.0%}" for v in rates.values()) + " |")
    body = (f"Full training steps at batch {args.batch} (forward, losses, backward, optimiser), "
            f"median of {args.steps} after one warm-up step, synthetic ids uniform over each "
            f"table. `small`: the tables of the simulated small set; MAC-scale: "
            f"{', '.join(f'{f} {n:,}' for f, n in MAC_TABLES.items())} rows and {OTHER_ROWS:,} "
            f"for each other field (16 dims). Floor = sgemm at {args.batch} x 336 x 256 "
            f"({rate / 1e9:.0f} GFLOP/s here) / (6 x dense parameters). The optimisers of the "
            f"tables (`--table-optimizer dense|rows|lazy`): dense Adam over every row; "
            f"row-wise Adam (sparse gradients, dense Adam's numbers); lazy SparseAdam (sparse "
            f"gradients, moments not decayed between touches). Load average "
            f"at the end: {os.getloadavg()[0]:.2f}.\n\n" + "\n".join(lines))
    publish("training at scale", "bench_scale", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
