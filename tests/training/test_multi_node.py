"""Two torchrun "nodes" on localhost (two launches with --nnodes 2 and a node rank each, gloo):
the data is prepared once per cache, a failure there stops every rank, and training matches
one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from support.mac_data import write_random_dataset
from support.run_parity import assert_same_run

PREPARE = Path(__file__).with_name("ddp_prepare.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_nodes(per_node: int, commands: list[list[str]], cwd: Path
                 ) -> list[subprocess.CompletedProcess]:
    """Run one torchrun launch per entry of `commands` (node rank = its index) as the nodes of
    one job on 127.0.0.1, at the same time; their results in node order."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launches = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(len(commands)),
         "--nproc-per-node", str(per_node), "--node-rank", str(node), "--master-addr",
         "127.0.0.1", "--master-port", str(port), *command],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for node, command in enumerate(commands)]
    results = []
    try:
        for launch in launches:
            # A bound, not a measurement: ranks left waiting on a failed one would hang here.
            stdout, stderr = launch.communicate(timeout=240)
            results.append(subprocess.CompletedProcess(launch.args, launch.returncode, stdout,
                                                       stderr))
    finally:
        for launch in launches:
            if launch.poll() is None:
                launch.kill()
                launch.wait()
    return results


@pytest.mark.slow
def test_the_data_is_prepared_once_and_a_failure_stops_every_rank(tmp_path):
    good = write_random_dataset(tmp_path / "good", days=4, rows=301)
    bad = write_random_dataset(tmp_path / "bad", days=4, rows=301)
    (bad / "train" / "train-01.parquet").write_bytes(b"not parquet")
    out = tmp_path / "out"
    out.mkdir()
    command = [str(PREPARE), str(out), str(good), str(bad), str(good)]
    nodes = launch_nodes(2, [command, command], tmp_path)
    assert [n.returncode for n in nodes] == [0, 0], [n.stderr[-3000:] for n in nodes]
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(4)]
    assert [(r["rank"], r["local_rank"]) for r in ranks] == [(0, 0), (1, 1), (2, 0), (3, 1)]
    # Cold cache shared by both nodes: rank 0 alone hashes and converts; node 1's local rank 0
    # finds it complete, the local ranks 1 open it read-only.
    cold, failed, warm = zip(*(r["results"] for r in ranks))
    assert [r["prepared"] for r in cold] == [1, 0, 1, 0]
    assert cold[0]["built"] == [True] * 4 and cold[0]["converted"] == 4
    assert sorted(cold[0]["hashed"]) == sorted(str(p) for p in [*good.glob("*/*.parquet"),
                                                                 *good.glob("vocabs/*")])
    for other in cold[1:]:
        assert other["built"] == [False] * 4
        assert other["converted"] == 0 and other["hashed"] == []
        assert (other["directories"], other["users"]) == (cold[0]["directories"],
                                                         cold[0]["users"])
    assert "train-01.parquet: not a readable parquet file" in failed[0]["error"]
    for other in failed[1:]:
        assert other["error"] == "rank 0 failed to prepare the data set: see that rank's error"
        assert other["converted"] == other["prepared"] == 0
    # After the failure every rank carries on with the next data set, now cached.
    for rank in warm:
        assert rank["built"] == [False] * 4 and rank["converted"] == 0 and rank["hashed"] == []
        assert rank["users"] == cold[0]["users"]


def _config(data: Path) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 7, "data": {"path": str(data)}, "task": {"main": "last", "aux": ["first", "cat"]},
        "train": {"batch_size": 64, "log_every": 2},
        "model": {"name": "mmoe", "encoder": {"embed_dim": 8, "attention_heads": 2},
                  "expert": {"dim": 16}, "tower": {"dims": [8, 4]}},
    })


@pytest.mark.slow
def test_two_nodes_with_their_own_caches_match_one_process(tmp_path):
    data = write_random_dataset(tmp_path / "data", days=4, rows=301)
    config = _config(data)
    train_run(config, tmp_path / "single")
    (tmp_path / "cfg.json").write_text(json.dumps(config.to_dict()))
    train = ["-m", "malt", "--log-level", "INFO", "train", "--config", str(tmp_path / "cfg.json"),
             "--device", "cpu", "--out", str(tmp_path / "ddp")]
    node_cache = tmp_path / "node-1-cache"
    nodes = launch_nodes(1, [train, [*train, "--cache", str(node_cache)]], tmp_path)
    assert [n.returncode for n in nodes] == [0, 0], [n.stderr[-3000:] for n in nodes]
    # Each 301-row day ends in a 45-row step split 23/22 over the ranks (see run_parity).
    assert_same_run(tmp_path / "ddp", tmp_path / "single", world_size=2)
    # Node 1 built its own cache (every day), from the same data.
    assert len([p for p in node_cache.iterdir() if p.is_dir()]) == 4
    # Rank 0 speaks for the run: progress, the plan, the log and the metrics; rank 1 says nothing.
    assert "step 15/15" in nodes[0].stdout and "run: " in nodes[0].stdout
    assert "INFO malt.training.trainer: finished day train-02" in nodes[0].stderr
    assert nodes[1].stdout == ""
    assert "malt." not in nodes[1].stderr  # no record of malt's loggers
