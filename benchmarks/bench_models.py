"""Forward + backward throughput of every model at batch 4096 (MAC schema).

Each model runs the configuration of the reference grid for main view `last`: BASE alone,
Shared-Bottom / MMoE / PLE / HoME with aux first, mta, linear, and NATAL / MoAE with `cat` as
well. Embedding tables have `--vocab-rows` rows each (dense gradients, as the reference). A step
is: forward, per-view losses, λ-weighted total, backward (no optimiser step).

    python -m benchmarks.bench_models [--batch 4096] [--vocab-rows 100000] [--steps 5]
                                      [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.report import parse_arguments, publish
from malt.data.schema import MAC
from malt.data.task import CAT, Task
from malt.data.vocab import VocabInfo
from malt.models import build_model, model_names

AUX = ("first", "mta", "linear")


def task_for(name: str) -> Task:
    if name == "base":
        return Task("last")
    return Task("last", (*AUX, CAT) if name in ("natal", "moae") else AUX)


def make_batch(rows: int, vocab_rows: int, device: torch.device, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    length = MAC.sequence_length
    seq = torch.randint(1, vocab_rows, (rows, len(MAC.id_sequences), length), generator=g)
    pad = torch.arange(length) >= torch.randint(0, length + 1, (rows, 1), generator=g)
    weights = torch.rand(rows, len(MAC.labels), generator=g)
    weights = weights * (torch.rand(rows, len(MAC.labels), generator=g) < 0.05)
    batch = {"sparse": torch.randint(0, vocab_rows, (rows, len(MAC.fields)), generator=g),
             "seq": seq.masked_fill(pad.unsqueeze(1), 0),
             "dense_seq": torch.rand(rows, len(MAC.float_sequences), length, generator=g) * 2 - 1,
             "weights": weights, "labels": (weights > 0).float()}
    return {k: v.to(device) for k, v in batch.items()}


def step_seconds(model, batch: dict, steps: int, warmup: int, device: torch.device) -> float:
    """Median wall time of one forward + backward."""
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        model.loss_terms(model(batch), batch).total(model.task.aux_weight).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(device: torch.device, args: argparse.Namespace) -> dict[str, tuple[int, float]]:
    vocab = VocabInfo(dict.fromkeys(MAC.field_names, args.vocab_rows),
                      {s.name: 0 for s in MAC.id_sequences})
    batch = make_batch(args.batch, args.vocab_rows, device, args.seed)
    out = {}
    for name in model_names():
        torch.manual_seed(args.seed)
        model = build_model(name, MAC, vocab, task_for(name)).to(device)
        seconds = step_seconds(model, batch, args.steps, args.warmup, device)
        out[name] = (model.parameter_counts()[0], args.batch / seconds)
        print(f"{device.type:<5} {name:<14} {out[name][1]:>10,.0f} samples/s", flush=True)
        del model
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--vocab-rows", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parse_arguments(parser, argv)
    results = {"cpu": measure(torch.device("cpu"), args)}
    if torch.cuda.is_available():
        results["cuda"] = measure(torch.device("cuda"), args)
    header = "| model | views | dense params | CPU samples/s |" + \
        (" CUDA samples/s |" if "cuda" in results else "")
    rule = "|---|---|---:|---:|" + ("---:|" if "cuda" in results else "")
    rows = []
    for name in model_names():
        dense, cpu = results["cpu"][name]
        row = f"| {name} | {' '.join(task_for(name).views)} | {dense:,} | {cpu:,.0f} |"
        if "cuda" in results:
            row += f" {results['cuda'][name][1]:,.0f} |"
        rows.append(row)
    body = (f"Forward + backward (no optimiser step) at batch {args.batch}, MAC schema, "
            f"{args.vocab_rows:,} rows per embedding table (dense gradients), malt's defaults, "
            f"median of {args.steps} steps after {args.warmup} warm-up steps.\n\n"
            + "\n".join([header, rule, *rows]))
    publish("models", "bench_models", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
