"""Prepare a data set once: validate every day file and cache it as memory-mapped arrays.

Each day is cached in its own directory named by a hash of the source file, the vocab files and
the schema, so a second run (or a run with an unchanged subset of days) skips the work. A day is
converted into a temporary directory that is renamed into place only when complete: a crash or
Ctrl-C never leaves a half-written cache that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from malt.data.layout import Layout, atomic_write_text, find_layout
from malt.data.reader import DayConverter, DayStats, array_shapes, check_columns, open_parquet
from malt.data.schema import MAC, Schema
from malt.data.vocab import VocabInfo, VocabLookup
from malt.errors import DataError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
_PROBE_BYTES = 1 << 16


@dataclass
class Day:
    """One cached day: its arrays (opened memory-mapped on first use) and its statistics."""

    name: str
    split: str
    source: Path
    directory: Path
    stats: DayStats

    @property
    def rows(self) -> int:
        return self.stats.rows

    def arrays(self) -> dict[str, np.ndarray]:
        """Name -> read-only memory-mapped array (see `malt.data.reader`)."""
        return {p.stem: np.load(p, mmap_mode="r") for p in sorted(self.directory.glob("*.npy"))}


@dataclass
class Dataset:
    """A prepared data set: schema, vocab information and cached days in time order."""

    root: Path
    schema: Schema
    vocab: VocabInfo
    train: list[Day]
    test: list[Day]

    @property
    def days(self) -> list[Day]:
        return self.train + self.test


def _file_identity(path: Path) -> str:
    """Cheap content identity: name, size, and the bytes at both ends (parquet footer included)."""
    size = path.stat().st_size
    h = hashlib.sha256(f"{path.name}:{size}".encode())
    with path.open("rb") as f:
        h.update(f.read(_PROBE_BYTES))
        if size > _PROBE_BYTES:
            f.seek(max(size - _PROBE_BYTES, _PROBE_BYTES))
            h.update(f.read())
    return h.hexdigest()


def default_cache_dir(root: Path) -> Path:
    """`<root>/.malt_cache`, or a per-data-set folder under ~/.cache/malt if root is read-only."""
    if os.access(root, os.W_OK):
        return root / ".malt_cache"
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "malt" / digest


class Preparer:
    """Builds (or finds) the cache of every day of one data set."""

    def __init__(self, root: str | Path, schema: Schema = MAC, cache_dir: str | Path | None = None,
                 *, rebuild: bool = False):
        self.layout: Layout = find_layout(root)
        self.schema = schema
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.layout.root)
        self.rebuild = rebuild
        self._lookups: dict[str, VocabLookup] | None = None
        vocab_files = [self._vocab_path(c) for c in self._vocab_columns()]
        for path in vocab_files:
            if not path.is_file():
                raise DataError("vocab file is missing", file=str(path))
        identity = hashlib.sha256(f"{CACHE_FORMAT}:{schema.fingerprint()}".encode())
        for path in vocab_files:
            identity.update(_file_identity(path).encode())
        self.vocab_key = identity.hexdigest()[:16]

    def _vocab_columns(self) -> list[str]:
        columns = list(self.schema.vocab_columns)
        campaign = self.schema.campaign_column
        if campaign and self._vocab_path(campaign).is_file():
            columns.append(campaign)
        return columns

    def _vocab_path(self, column: str) -> Path:
        return self.layout.vocab_dir / f"{column}.json"

    @property
    def lookups(self) -> dict[str, VocabLookup]:
        if self._lookups is None:
            self._lookups = {c: VocabLookup.load(self._vocab_path(c)) for c in self._vocab_columns()}
        return self._lookups

    def vocab_info(self) -> VocabInfo:
        path = self.cache_dir / f"vocab-{self.vocab_key}.json"
        if path.is_file() and not self.rebuild:
            return VocabInfo.from_dict(json.loads(path.read_text()))
        lookups = self.lookups
        info = VocabInfo(
            sizes={f: lookups[f].size for f in self.schema.field_names},
            sequence_pad={s.name: lookups[s.shares].index_of(self.schema.sequence_pad)
                          for s in self.schema.id_sequences},
        )
        atomic_write_text(path, json.dumps(info.to_dict()))
        return info

    def day(self, source: Path, split: str) -> Day:
        key = hashlib.sha256(f"{self.vocab_key}:{_file_identity(source)}".encode()).hexdigest()
        directory = self.cache_dir / f"{split}-{source.stem}-{key[:16]}"
        meta = directory / "meta.json"
        if meta.is_file() and not self.rebuild:
            stats = DayStats.from_dict(json.loads(meta.read_text())["stats"])
        else:
            stats = self._convert(source, directory)
        return Day(name=source.stem, split=split, source=source, directory=directory, stats=stats)

    def _convert(self, source: Path, directory: Path) -> DayStats:
        pf = open_parquet(source)
        check_columns(self.schema, pf.schema_arrow, str(source))
        rows = pf.metadata.num_rows
        if rows == 0:
            raise DataError("empty day file (0 rows)", file=str(source))
        tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            out = {name: np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype,
                                                   shape=shape)
                   for name, (shape, dtype) in array_shapes(self.schema, rows).items()}
            stats = DayConverter(self.schema, self.lookups).convert(source, out)
            for array in out.values():
                array.flush()
            del out
            meta = {"format": CACHE_FORMAT, "source": str(source), "stats": stats.to_dict()}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        oov = {c: n for c, n in stats.oov.items() if n}
        if oov:
            log.warning("%s: out-of-vocabulary ids mapped to the reserved row: %s", source, oov)
        return stats

    def prepare(self, progress=None) -> Dataset:
        """Cache every day (skipping those already cached) and return the data set."""
        vocab = self.vocab_info()
        days = {"train": [], "test": []}
        for split, files in (("train", self.layout.train), ("test", self.layout.test)):
            for source in files:
                days[split].append(self.day(source, split))
                if progress is not None:
                    progress(days[split][-1])
        return Dataset(root=self.layout.root, schema=self.schema, vocab=vocab,
                       train=days["train"], test=days["test"])


def prepare(root: str | Path, schema: Schema = MAC, cache_dir: str | Path | None = None, *,
            rebuild: bool = False, progress=None) -> Dataset:
    """Validate and cache the data set at `root` (MAC layout); see `Preparer`."""
    return Preparer(root, schema, cache_dir, rebuild=rebuild).prepare(progress)
