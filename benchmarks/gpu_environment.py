"""The GPU check's first step: what this machine offers (torch, CUDA, the GPUs, NCCL, the
packages malt and the check need), failing clearly when torch sees no GPU or a package is
missing. Of malt it imports only `malt.outputs` (through `benchmarks.gpu_results`: no numpy,
pandas or pyarrow), so that a missing package is named, not a traceback.

    python -m benchmarks.gpu_environment --out DIR [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path

from benchmarks.gpu_results import write_result

PACKAGES = ("numpy", "pyarrow", "pandas", "safetensors", "pyyaml", "tqdm", "tensorboard",
            "matplotlib", "pytest", "hypothesis")
"""malt's runtime dependencies (pyproject.toml), and pytest and hypothesis, which the CUDA tests
need."""


def package_versions() -> dict[str, str | None]:
    """The installed version of each of `PACKAGES` (None: missing)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment(dry_run: bool) -> tuple[bool, dict, list[str]]:
    """(ok, the figures, the problems): a dry run needs no GPU."""
    import torch

    cuda = torch.cuda.is_available()
    figures: dict = {"python": sys.version.split()[0], "torch": torch.__version__,
                     "cuda_build": torch.version.cuda, "cuda_available": cuda,
                     "gpus": torch.cuda.device_count() if cuda else 0}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        figures |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                    "capability": f"{props.major}.{props.minor}",
                    "nccl": ".".join(map(str, torch.cuda.nccl.version()))}
    figures["packages"] = package_versions()
    problems = [f"package {name} is missing" for name, version in figures["packages"].items()
                if version is None]
    if not cuda and not dry_run:
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else \
            "built without CUDA"
        problems.append(f"torch {torch.__version__} sees no CUDA GPU ({build}): run the check "
                        "with a Python whose torch is built with CUDA, on a machine with a GPU")
    return not problems, figures, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="no GPU needed")
    parser.add_argument("--seed", type=int, default=2026, help="unused: every step takes it")
    args = parser.parse_args(argv)
    ok, figures, problems = environment(args.dry_run)
    packages = ", ".join(f"{k} {v}" for k, v in figures["packages"].items())
    report = ("Environment: " + ", ".join(f"{k} {v}" for k, v in figures.items()
                                          if k != "packages") + f"; packages: {packages}.")
    print(json.dumps(figures, indent=1), flush=True)
    for problem in problems:
        print(problem, file=sys.stderr)
    write_result(args.out, "environment", ok, figures, report)
    print(report, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
