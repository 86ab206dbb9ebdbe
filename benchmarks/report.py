"""Write a benchmark's figures into its own section of BENCHMARKS.md (other sections are kept)."""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import sys
import time
from datetime import date
from pathlib import Path

import torch

from malt.allocator import retain_freed_memory

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
_HEADER = ("# Benchmarks\n\nFigures written by the scripts in `benchmarks/`; each section names "
           "the command that produced it. Re-run a script to refresh its section.\n")


def best_of(repeats: int, fn):
    """(fastest wall time of `repeats` calls of `fn`, the last call's result)."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def sgemm_rate(m: int, k: int, n: int, repeats: int = 5) -> float:
    """FLOP/s of a float32 [m, k] x [k, n] product on the CPU (best of `repeats`): the floor
    the benchmarks report their figures against."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    seconds, _ = best_of(repeats, lambda: a @ b)
    return 2 * m * k * n / seconds


def cpu_description() -> str:
    """The CPU's model name, core count and the vector instructions torch uses on it (with AMX
    where the CPU has it): sessions land on different CPUs, and the figures differ with them."""
    name, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    extras = ", AMX" if "amx_bf16" in flags else ""
    return (f"{name} ({os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()}"
            f"{extras})")


def machine() -> str:
    """One line describing where the figures were taken."""
    cpu = cpu_description()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    threads = torch.get_num_threads()
    malloc = "malloc keeps freed memory" if retain_freed_memory() else "system malloc"
    return (f"{cpu}, {threads} torch threads, {gpu}, {malloc}, torch {torch.__version__}, "
            f"{date.today()}")


def invocation(script: str, argv: list[str] | None) -> str:
    """The command line that ran `python -m benchmarks.<script>` with `argv` (None: this
    process's arguments)."""
    given = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", "benchmarks." + script, *given])


def update_section(name: str, command: str, body: str, *, machine_line: str | None = None,
                   path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section `name` of `path` with `body`; its `Machine:` line is
    `machine_line` (figures taken elsewhere), else this machine's."""
    text = path.read_text() if path.exists() else _HEADER
    section = (f"<!-- bench:{name} -->\n## {name}\n\nCommand: `{command}`  \n"
               f"Machine: {machine_line or machine()}\n\n{body.strip()}\n"
               f"<!-- /bench:{name} -->")
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->",
                         re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) \
        else text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def publish(name: str, script: str, argv: list[str] | None, body: str, *,
            report: bool = True) -> None:
    """Print `body` and, when `report`, write it as section `name` of BENCHMARKS.md with the
    command line of `python -m benchmarks.<script>`."""
    print(body)
    if report:
        update_section(name, invocation(script, argv), body)


def parse_arguments(parser: argparse.ArgumentParser,
                    argv: list[str] | None) -> argparse.Namespace:
    """`argv` parsed after adding the options the model benchmarks share (`--seed`,
    `--threads`, `--no-report`); `--threads` is applied to torch."""
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads on CPU (default: torch's choice)")
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args
