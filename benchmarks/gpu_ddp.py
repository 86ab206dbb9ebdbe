"""The GPU check's DDP step: `malt train` in two processes under torchrun against one process,
the same metrics and predictions within a tolerance (as tests/training's CPU DDP tests check).

    python -m benchmarks.gpu_ddp --out DIR [--dry-run] [--seed N]

With two GPUs or more the ranks take a GPU each and NCCL, as `malt train` sets them up. NCCL
refuses two ranks on one GPU, so with a single GPU both ranks share it and all-reduce through
gloo (which takes CUDA tensors): the step says which. A dry run trains on the CPU with gloo.
Under torchrun this module is also each rank's entry point (`--rank TRAIN ARGS`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.gpu_results import write_result

TOLERANCE = {"cpu": 1e-6, "cuda": 1e-4}
"""Largest difference of a metric or a probability between the runs. CPU: the tests' bound;
CUDA: its embedding backward and reductions sum in a varying order (about 1e-7 per step) and
training amplifies it."""


def rank_main(train_args: list[str]) -> int:
    """One rank: with fewer GPUs than ranks, join the process group through gloo and put every
    rank on GPU 0 before `malt train` sets up its world (it keeps a group already there)."""
    import torch
    import torch.distributed as dist

    from malt.cli import main

    shared = torch.cuda.is_available() and \
        torch.cuda.device_count() < int(os.environ["WORLD_SIZE"])
    if shared:
        os.environ["LOCAL_RANK"] = "0"
        dist.init_process_group(backend="gloo")
    return main(["train", *train_args])


def backend(device: str) -> str:
    """How the ranks all-reduce on `device`: the check's description of the set-up."""
    if device == "cpu":
        return "gloo on the CPU"
    import torch

    if torch.cuda.device_count() >= 2:
        return "NCCL, one GPU per rank"
    return "gloo on CUDA tensors, both ranks on one GPU (NCCL needs a GPU per rank)"


def train_config(data: Path, device: str, seed: int) -> dict:
    """MoAE with every auxiliary view on `data` (malt's default model sizes on a GPU, small
    ones in a dry run)."""
    small = {"encoder": {"embed_dim": 8, "attention_heads": 2}, "expert": {"dim": 16},
             "tower": {"dims": [8, 4]}} if device == "cpu" else {}
    return {"seed": seed, "data": {"path": str(data)},
            "task": {"main": "last", "aux": ["first", "linear", "mta", "cat"]},
            "train": {"batch_size": 512, "device": device, "log_every": 10},
            "model": {"name": "moae", **small}}


def largest_differences(distributed: Path, single: Path) -> dict[str, float]:
    """The largest |difference| of the views' AUC, GAUC and log loss, and of the predictions,
    between two finished runs, with the distributed run's world size."""
    from malt.eval.predictions import Predictions
    from malt.runs.record import RunMetrics

    ddp = RunMetrics.from_dict(json.loads((distributed / "metrics.json").read_text()))
    one = RunMetrics.from_dict(json.loads((single / "metrics.json").read_text()))
    metrics = max(abs(getattr(ddp.views[view], name) - getattr(values, name))
                  for view, values in one.views.items() for name in ("auc", "gauc", "logloss"))
    probs = np.abs(Predictions.load(distributed / "predictions.npz").probs
                   - Predictions.load(single / "predictions.npz").probs).max()
    return {"world_size": ddp.train.world_size, "metrics": float(metrics),
            "predictions": float(probs)}


def parity(device: str, seed: int, users: int) -> tuple[bool, dict, str]:
    """Train one process and two ranks on a simulated set of `users`; compare them."""
    from malt.sources.simulate import simulate, size_config

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate(size_config("tiny", users=users, days=4, seed=seed), root / "data")
        (root / "config.json").write_text(json.dumps(train_config(root / "data", device, seed)))
        common = ["--config", str(root / "config.json")]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        seconds = {}
        for name, launcher in (("single", [sys.executable, "-m", "malt", "train"]),
                               ("ddp", [sys.executable, "-m", "torch.distributed.run",
                                        "--standalone", "--nproc-per-node", "2", "-m",
                                        "benchmarks.gpu_ddp", "--rank"])):
            started = time.perf_counter()
            subprocess.run([*launcher, *common, "--out", str(root / name)], check=True, env=env)
            seconds[name] = time.perf_counter() - started
        differences = largest_differences(root / "ddp", root / "single")
    ok = differences["world_size"] == 2 and \
        max(differences["metrics"], differences["predictions"]) <= TOLERANCE[device]
    figures = {"backend": backend(device), "tolerance": TOLERANCE[device], "users": users,
               "seconds": seconds, **differences}
    report = (f"DDP parity: `malt train` of MoAE (all auxiliary views) on a simulated set of "
              f"{users:,} users and 4 days, two ranks under torchrun ({figures['backend']}) "
              f"against one process: largest difference of a view's AUC / GAUC / log loss "
              f"{differences['metrics']:.1e}, of a predicted probability "
              f"{differences['predictions']:.1e} (tolerance {TOLERANCE[device]:.0e}); "
              f"{'match' if ok else 'MISMATCH'}. Wall time: one process "
              f"{seconds['single']:.1f} s, two ranks {seconds['ddp']:.1f} s (start-up "
              "included).")
    return ok, figures, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", action="store_true", help="a rank under torchrun")
    parser.add_argument("--out", type=Path, help="the check's output directory")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, with gloo")
    parser.add_argument("--seed", type=int, default=2026)
    args, train_args = parser.parse_known_args(argv)
    if args.rank:
        return rank_main([*train_args, "--out", str(args.out)])
    if args.out is None:
        parser.error("--out is required")
    # Cut by the check (SIGTERM): exit through Python, so that the simulated data is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    device = "cpu" if args.dry_run else "cuda"
    ok, figures, report = parity(device, args.seed, users=200 if args.dry_run else 1_800)
    write_result(args.out, "ddp", ok, figures, report)
    print(report, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
