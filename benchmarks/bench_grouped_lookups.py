"""Would one table per group of same-width fields train faster than one table per field? The
embedding part of a training step both ways, at the `small` and the MAC-scale tables.

    python -m benchmarks.bench_grouped_lookups [--rounds 8] [--threads 1]

Per field: the 16 tables of the MAC schema (16 dims each), each looked up once per step (a field
and the id sequences that share its table in one call), as `malt.layers.FieldEmbeddings` does.
Grouped: the same rows in one table, each field's ids offset by the rows before it, looked up
in one call, then either split into the fields (what the model's layers take today) or used
whole (what layers written for one [B, fields + sequence positions, d] tensor would take). A
step is the lookups, a loss that weighs every looked-up row (fixed random weights, field by
field unless whole), backward (sparse gradients) and row-wise Adam with its lookup refresh; the
model's dense layers are left out. Steps of the layouts alternate (in turn forwards and
backwards) after two warm-up steps each. With one thread the clock is the thread's CPU time, which
other processes on a shared machine do not inflate; with more, wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from benchmarks.bench_scale import mac_vocab, small_vocab, synthetic_batch
from benchmarks.report import parse_arguments, publish
from malt.data.schema import MAC
from malt.data.vocab import VocabInfo
from malt.training.row_adam import RowAdam

DIM = 16
LAYOUTS = ("per field", "grouped, split into fields", "grouped, whole")


class Layout:
    """The tables of one layout, its optimiser and one step's inputs."""

    def __init__(self, vocab: VocabInfo, batch: dict, layout: str, seed: int):
        torch.manual_seed(seed)
        sizes = [vocab.sizes[f] for f in MAC.field_names]
        shared = {f: [s for s, seq in enumerate(MAC.id_sequences) if seq.shares == f]
                  for f in MAC.field_names}
        ids = [torch.cat([batch["sparse"][:, t:t + 1], *(batch["seq"][:, s] for s in shared[f])],
                         1) for t, f in enumerate(MAC.field_names)]
        self.widths = [i.shape[1] for i in ids]
        g = torch.Generator().manual_seed(seed)
        self.weights = torch.randn(len(batch["labels"]), sum(self.widths), DIM, generator=g)
        self.field_weights = self.weights.split(self.widths, 1)
        self.whole = layout == "grouped, whole"
        if layout != "per field":
            offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0)
            self.tables = nn.ModuleList([nn.Embedding(sum(sizes), DIM, sparse=True)])
            self.ids = [torch.cat([i + o for i, o in zip(ids, offsets.tolist())], 1)]
        else:
            self.tables = nn.ModuleList(nn.Embedding(n, DIM, sparse=True) for n in sizes)
            self.ids = ids
        self.optimizer = RowAdam(self.tables.parameters(), lr=1e-3)
        self.optimizer.watch(self.tables)

    def step(self) -> None:
        if self.whole:
            loss = (self.tables[0](self.ids[0]) * self.weights).sum()
        else:
            fields = [t(i) for t, i in zip(self.tables, self.ids)] if len(self.tables) > 1 \
                else self.tables[0](self.ids[0]).split(self.widths, 1)
            loss = sum((f * w).sum() for f, w in zip(fields, self.field_weights))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()


def paired_seconds(layouts: dict[str, Layout], rounds: int) -> dict[str, list[float]]:
    one_thread = torch.get_num_threads() == 1
    clock = time.thread_time if one_thread else time.perf_counter
    for layout in layouts.values():
        layout.step()
        layout.step()
    times: dict[str, list[float]] = {name: [] for name in layouts}
    for r in range(rounds):
        for name in list(layouts)[::1 if r % 2 == 0 else -1]:
            started = clock()
            layouts[name].step()
            times[name].append(clock() - started)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=8)
    args = parse_arguments(parser, argv)
    lines = ["| tables | layout | step ms | time / per field's (median of the rounds' ratios "
             "[range]) |", "|---|---|---:|---|"]
    for label, vocab in {"small": small_vocab(), "MAC-scale": mac_vocab()}.items():
        batch = synthetic_batch(vocab, args.batch, args.seed)
        layouts = {name: Layout(vocab, batch, name, args.seed) for name in LAYOUTS}
        times = paired_seconds(layouts, args.rounds)
        for name, t in times.items():
            ratios = [x / p for x, p in zip(t, times["per field"])]
            lines.append(f"| {label} | {name} | {1e3 * statistics.median(t):.1f} | "
                         f"{statistics.median(ratios):.2f} [{min(ratios):.2f}, "
                         f"{max(ratios):.2f}] |")
            print(lines[-1], flush=True)
        del layouts
    threads = torch.get_num_threads()
    body = (f"The embedding part of a training step at batch {args.batch} (lookups of the 16 "
            f"fields and 3 id sequences of length {MAC.sequence_length}, backward with sparse "
            f"gradients, row-wise Adam), one table per field against one table for all 16 "
            f"(same width), split into the fields or whole, {args.rounds} alternating rounds "
            f"after two warm-up steps each, "
            f"{threads} torch thread{'s' if threads > 1 else ''}, "
            f"{'CPU time of the thread' if threads == 1 else 'wall time'}; synthetic ids "
            f"uniform over each table (tables as in \"training at scale\"). Load average at the "
            f"end: {os.getloadavg()[0]:.2f}.\n\n" + "\n".join(lines))
    publish("grouped lookups", "bench_grouped_lookups", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
