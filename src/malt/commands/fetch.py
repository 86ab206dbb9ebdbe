"""`malt fetch mac DIR`: download the MAC release from the Hugging Face hub."""

from __future__ import annotations

import argparse

HELP = "download the MAC release (about 62 GB) from the Hugging Face hub, resumably"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=["mac"], help="what to fetch")
    parser.add_argument("dest", help="directory to download into (kept between runs: a rerun "
                                     "resumes and skips the files it has)")
    parser.add_argument("--repo", default=None, help="dataset repository on the hub (default "
                                                     "alimamaTech/MAC)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit (default main)")


def run(args: argparse.Namespace) -> int:
    from malt.sources.fetch import MAC_REPO, HuggingFaceHub, fetch_mac

    def report(i: int, n: int, f) -> None:
        print(f"[{i}/{n}] {f.path} ({f.size / 1e9:.2f} GB)", flush=True)

    try:
        root = fetch_mac(args.dest, HuggingFaceHub(args.repo or MAC_REPO, args.revision),
                         progress=report)
    except KeyboardInterrupt:
        print(f"interrupted. Run the same command again to resume the download into "
              f"{args.dest}")
        return 130
    print(f"the MAC release is in {root}; cache it with:\n    malt prepare --data {root}")
    return 0
