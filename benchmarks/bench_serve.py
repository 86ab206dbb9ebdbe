"""Latency and throughput of `malt serve` on loopback, beside the model's offline scoring rate.

A tiny simulated data set is written and BASE and MoAE are trained on one of its days (their
speed does not depend on how well they are trained). Each model is served by `malt serve` in a
process of its own; an asyncio client (httpx) keeps 1, 8 and 64 requests in flight for
`--seconds` each, with requests of one row (JSON) and of 200 candidate rows (JSON and Arrow),
the rows taken from the test day. Figures: requests/s, rows/s, p50 and p99 latency, and the
served rows/s as a fraction of the model alone scoring converted rows (`Scorer.score`, model
calls of 4,096 rows), measured in the same run. Client and service share the machine's cores.

    python -m benchmarks.bench_serve [--seconds 8] [--clients 1 8 64] [--models base moae]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.bench_predict import converted_rows, model_rows_per_s
from benchmarks.report import parse_arguments, publish
from malt.deploy.predict import PREDICT_BATCH_ROWS, Scorer
from malt.runs.load import load_run

CANDIDATES = 200
"""Rows of a ranking request: the candidates of one page view."""
ARROW = "application/vnd.apache.arrow.stream"
MODEL_FLAGS = {"base": ["--model", "base"], "moae": ["--model", "moae"]}


def malt(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "malt", *args], check=True, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(run: Path, port: int, threads: int | None):
    """`malt serve --run RUN` in its own process, until the block ends (SIGTERM)."""
    env = dict(os.environ, **({} if threads is None else {"OMP_NUM_THREADS": str(threads)}))
    process = subprocess.Popen([sys.executable, "-m", "malt", "serve", "--run", str(run),
                                "--port", str(port), "--device", "cpu"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"malt serve exited: {process.stderr.read().decode()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("malt serve did not answer /health within 120 s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=60)


def request_bodies(table: pa.Table, rows: int, kind: str, count: int,
                   seed: int) -> list[tuple[bytes, str]]:
    """`count` encoded request bodies of `rows` consecutive rows each, at random offsets."""
    starts = np.random.default_rng(seed).integers(0, table.num_rows - rows, count)
    bodies = []
    for start in starts:
        part = table.slice(int(start), rows)
        if kind == "json":
            bodies.append((json.dumps({"rows": part.to_pylist()}).encode(), "application/json"))
        else:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, part.schema) as writer:
                writer.write_table(part)
            bodies.append((sink.getvalue().to_pybytes(), ARROW))
    return bodies


async def load(url: str, bodies: list[tuple[bytes, str]], clients: int,
               seconds: float) -> np.ndarray:
    """Latencies (s) of every request answered while `clients` requests are kept in flight
    for `seconds`; an answer other than 200 stops the benchmark."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        stop = time.perf_counter() + seconds
        latencies: list[float] = []

        async def one_client(offset: int) -> None:
            i = offset
            while time.perf_counter() < stop:
                body, kind = bodies[i % len(bodies)]
                start = time.perf_counter()
                answer = await client.post("/predict", content=body,
                                           headers={"content-type": kind})
                if answer.status_code != 200:
                    raise RuntimeError(f"{answer.status_code}: {answer.text[:200]}")
                latencies.append(time.perf_counter() - start)
                i += clients

        await asyncio.gather(*(one_client(i) for i in range(clients)))
    return np.asarray(latencies)


def offline_rows_per_s(run: Path, data: Path) -> float:
    """The model alone on converted rows of the test day, model calls of 4,096 rows."""
    scorer = Scorer(load_run(run), engine="torch", batch_size=PREDICT_BATCH_ROWS)
    arrays = converted_rows(scorer, next((data / "test").glob("*.parquet")), 65_536)
    return model_rows_per_s(scorer, arrays, repeats=3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per load level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--models", nargs="+", choices=sorted(MODEL_FLAGS),
                        default=["base", "moae"])
    args = parse_arguments(parser, argv)
    lines = ["| model | request | clients | requests/s | rows/s | of offline | p50 ms | "
             "p99 ms |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    offline = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        malt("simulate", "--size", "tiny", "--seed", str(args.seed), "--out", str(data))
        test = pq.read_table(next((data / "test").glob("*.parquet")))
        for name in args.models:
            run = root / name
            malt("train", "--data", str(data), "--train-days", "1", "--seed", str(args.seed),
                 "--out", str(run), *MODEL_FLAGS[name])
            offline[name] = offline_rows_per_s(run, data)
            print(f"{name}: offline {offline[name]:,.0f} rows/s", flush=True)
            with served(run, free_port(), args.threads) as url:
                columns = httpx.get(f"{url}/metadata").json()["schema"]["columns"]
                table = test.select(columns)
                for rows, kind in ((1, "json"), (CANDIDATES, "json"), (CANDIDATES, "arrow")):
                    bodies = request_bodies(table, rows, kind, 256, args.seed)
                    asyncio.run(load(url, bodies, 1, 1.0))  # warm the service up
                    for clients in args.clients:
                        latency = asyncio.run(load(url, bodies, clients, args.seconds))
                        per_s = len(latency) / args.seconds
                        p50, p99 = np.percentile(latency, [50, 99]) * 1e3
                        share = per_s * rows / offline[name]
                        label = f"{rows} row{'s' if rows > 1 else ''}, {kind}"
                        print(f"{name:<5} {label:<16} {clients:>3} clients  {per_s:>8,.0f} "
                              f"req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
                              f"{share:.0%} of offline", flush=True)
                        lines.append(f"| {name} | {label} | {clients} | {per_s:,.0f} | "
                                     f"{per_s * rows:,.0f} | {share:.1%} | {p50:.1f} | "
                                     f"{p99:.1f} |")
    load_average = os.getloadavg()[0]
    body = (f"`malt serve` (torch engine, CPU, default batching: up to 4,096 rows per model "
            f"call, 2 ms wait) on loopback; an asyncio httpx client in another process keeps "
            f"N requests in flight for {args.seconds:g} s per level; bodies are rows of the "
            f"`tiny` simulation's test day (256 distinct bodies per kind). Offline: the model "
            f"alone on converted rows, calls of 4,096 rows: "
            + ", ".join(f"{m} {r:,.0f} rows/s" for m, r in offline.items())
            + f". Client and service share the cores. Load average at the end: "
            f"{load_average:.2f}.\n\n" + "\n".join(lines))
    publish("serving latency and throughput", "bench_serve", argv, body,
            report=not args.no_report)


if __name__ == "__main__":
    main()
