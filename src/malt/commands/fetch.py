"""`malt fetch mac DIR`: download the MAC release from the Hugging Face hub."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options

HELP = "download the MAC release (about 62 GB) from the Hugging Face hub, resumably"


def configure(parser: argparse.ArgumentParser) -> None:
    from malt.sources.fetch import FetchOptions

    add_options(parser, FetchOptions)


def run(args: argparse.Namespace) -> int:
    from malt.sources.fetch import FetchOptions, HuggingFaceHub, fetch_mac

    options = read_options(args, FetchOptions)

    def report(i: int, n: int, f) -> None:
        print(f"[{i}/{n}] {f.path} ({f.size / 1e9:.2f} GB)", flush=True)

    try:
        root = fetch_mac(options.dest, HuggingFaceHub(options.repo, options.revision),
                         progress=report)
    except KeyboardInterrupt:
        print(f"interrupted. Run the same command again to resume the download into "
              f"{options.dest}")
        return 130
    print(f"the MAC release is in {root}; cache it with:\n    malt prepare --data {root}")
    return 0
