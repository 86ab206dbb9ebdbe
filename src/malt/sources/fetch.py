"""The MAC release from the Hugging Face hub: its file list checked, disk space checked, then
every file downloaded (resumably) into a directory in the MAC layout.

The release is about 62 GB and its cache (`malt prepare`) about 40 GB more, so the free space
for both is checked before the first byte is fetched. Files already downloaded whole are kept;
a partial one is resumed by `huggingface_hub`. `Hub` is what talks to the hub, so that tests
pass a fake one and never touch the network.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from malt.data.schema import MAC
from malt.errors import ConfigError
from malt.typed_fields import validate

MAC_REPO = "alimamaTech/MAC"
TRAIN_DAYS = 20
CACHE_SHARE = 0.65
"""Cache size as a share of the release's (about 40 of 62 GB)."""
Release = Literal["mac"]
"""A release `malt fetch` downloads."""


@dataclass(frozen=True)
class FetchOptions:
    """What `malt fetch` downloads, from where, and into which directory."""

    dataset: Release = field(metadata={"flag": "dataset"})
    """What to fetch."""
    dest: str = field(metadata={"flag": "dest"})
    """Directory to download into (kept between runs: a rerun resumes and skips the files it
    has)."""
    repo: str = MAC_REPO
    """Dataset repository on the hub."""
    revision: str | None = None
    """Branch, tag or commit (default main)."""

    def __post_init__(self) -> None:
        validate(self, "")


@dataclass(frozen=True)
class HubFile:
    path: str
    """Path in the repository, e.g. `data/train/train-00.parquet`."""
    size: int


class Hub(Protocol):
    def files(self) -> list[HubFile]:
        """Every file of the release."""

    def download(self, path: str, local_dir: Path) -> Path:
        """Fetch `path` into `local_dir` (keeping its repository path); returns where it is."""


class HuggingFaceHub:
    """The release on the Hugging Face hub (needs `pip install 'malt[fetch]'`)."""

    def __init__(self, repo: str = MAC_REPO, revision: str | None = None):
        try:
            import huggingface_hub
        except ImportError:
            raise ConfigError("malt fetch needs huggingface_hub: pip install 'malt[fetch]'") \
                from None
        self._hub, self.repo, self.revision = huggingface_hub, repo, revision

    def files(self) -> list[HubFile]:
        api = self._hub.HfApi()
        entries = api.list_repo_tree(self.repo, repo_type="dataset", revision=self.revision,
                                     recursive=True)
        return [HubFile(e.path, int(e.size)) for e in entries if hasattr(e, "size")]

    def download(self, path: str, local_dir: Path) -> Path:
        return Path(self._hub.hf_hub_download(self.repo, path, repo_type="dataset",
                                              revision=self.revision, local_dir=local_dir))


def expected_files() -> list[str]:
    """Paths, relative to the layout's root, of every file the MAC release must hold."""
    return ([f"train/train-{d:02d}.parquet" for d in range(TRAIN_DAYS)] + ["test/test.parquet"]
            + [f"vocabs/{c}.json" for c in MAC.vocab_columns])


def plan(files: list[HubFile]) -> tuple[str, list[HubFile]]:
    """(the layout's root in the repository, the release files to fetch); raises when the
    repository does not hold the MAC layout."""
    roots = {f.path[:-len("train/train-00.parquet")] for f in files
             if re.fullmatch(r"(.*/)?train/train-00\.parquet", f.path)}
    if len(roots) != 1:
        raise ConfigError("the repository does not hold one MAC layout (train/train-00.parquet "
                          f"found under {sorted(roots) or 'no folder'})")
    root = roots.pop()
    by_path = {f.path: f for f in files}
    missing = [p for p in expected_files() if root + p not in by_path]
    if missing:
        raise ConfigError(f"the repository lacks {len(missing)} file(s) of the MAC layout: "
                          f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return root.rstrip("/"), [by_path[root + p] for p in expected_files()]


def fetch_mac(dest: str | Path, hub: Hub, *, progress: Callable[[int, int, HubFile], None]
              | None = None, free_bytes: Callable[[Path], int] | None = None) -> Path:
    """Download the release into `dest`; returns the directory to `malt prepare`."""
    dest = Path(dest)
    root, files = plan(hub.files())
    todo = [f for f in files if not _complete(dest / f.path, f.size)]
    needed = sum(f.size for f in todo) + int(CACHE_SHARE * sum(f.size for f in files))
    dest.mkdir(parents=True, exist_ok=True)
    free = (free_bytes or (lambda p: shutil.disk_usage(p).free))(dest)
    if free < needed:
        raise ConfigError(f"{dest} has {free / 1e9:.1f} GB free; the files still to fetch and "
                          f"the cache need about {needed / 1e9:.1f} GB")
    for i, f in enumerate(todo, 1):
        if progress is not None:
            progress(i, len(todo), f)
        got = hub.download(f.path, dest)
        if not _complete(got, f.size):
            raise ConfigError(f"{f.path}: downloaded {got.stat().st_size:,} bytes, the hub "
                              f"lists {f.size:,}; run the command again to resume")
    return dest / root if root else dest


def _complete(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size
