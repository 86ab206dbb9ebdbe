"""Prepare a data set once: validate every day file and cache it as memory-mapped arrays.

Each day is cached in its own directory named by a hash of the day file's content, of the vocab
files and of the schema, so a second run (or a run with an unchanged subset of days) skips the
work. Content hashes are remembered by file size and modification time, so an unchanged file is
not read again to be recognised.

Days are converted by a pool of threads, one parquet row group at a time (pyarrow and numpy
release the GIL), each worker writing its rows straight into the day's `.npy` files. A day is
written into a temporary directory that is renamed into place only when complete: an error, a
crash or Ctrl-C never leaves a half-written cache that a later run would trust.

Several processes may use one cache: `open_prepared` only reads what `prepare` left (the other
ranks of a distributed run), and builders on different machines sharing a cache directory keep
their temporaries apart (each is named by host and process id, and a builder removes only its
own host's leftovers of dead processes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from malt.data.layout import Layout, find_layout
from malt.data.lookups import Lookup, check_vocab_files, load_lookups, vocab_info
from malt.data.reader import (
    ChunkStats,
    DayConverter,
    DayStats,
    array_shapes,
    check_columns,
    holds_click_time,
    holds_known_at,
    open_parquet,
    read_chunks,
)
from malt.data.schema import MAC, Schema
from malt.data.vocab import VocabInfo
from malt.errors import DataError, os_errors_as
from malt.host import usable_cores
from malt.locks import lock_inside, output_lock
from malt.outputs import atomic_write_text, mark_whole, process_tag, tagged_process_ended

log = logging.getLogger(__name__)

CACHE_FORMAT = 3
"""3: a user the vocab does not hold has a group of its own in `user` (it shared the OOV row)."""
CACHE_NAME = ".malt_cache"
CACHE_KIND = "cache"
_TMP_MARK = ".tmp-"
_HASH_BLOCK = 1 << 24
_DAMAGED = (OSError, ValueError, KeyError, TypeError, AttributeError)
"""What reading a cache file that is missing, unreadable, truncated or not as malt wrote it
raises: the file is made again (or, reading only, the cache is incomplete)."""


@dataclass
class Day:
    """One cached day: its arrays (opened memory-mapped on first use) and its statistics."""

    name: str
    split: str
    source: Path
    directory: Path
    stats: DayStats
    built: bool = False
    """True when this run converted the day, False when it came from the cache."""

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


def default_cache_dir(root: Path) -> Path:
    """`<root>/.malt_cache`, or a per-data-set folder under ~/.cache/malt if root is read-only."""
    if os.access(root, os.W_OK):
        return root / CACHE_NAME
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "malt" / digest


def default_workers() -> int:
    """Conversion threads: the usable CPU cores, at most 4 (each holds one chunk in memory)."""
    return max(1, min(usable_cores(), 4))


class ContentHashes:
    """SHA-1 of file contents, remembered in a JSON file by (size, mtime, inode).

    The file is replaced atomically, so processes reading it while another saves it see the old
    or the new record, never a part. `read_only` ones never hash: a file not recorded as it is
    now is a `DataError`.
    """

    def __init__(self, path: Path, *, read_only: bool = False):
        self.path = path
        self.read_only = read_only
        self._changed = False
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        self._known: dict[str, list] = known if isinstance(known, dict) else {}

    def digest(self, file: Path) -> str:
        with os_errors_as(file, error=DataError):
            return self._digest(file)

    def _digest(self, file: Path) -> str:
        st = file.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        key = str(file.resolve())
        known = self._known.get(key)
        if isinstance(known, list) and len(known) == 4 and known[:3] == stamp:
            return known[3]
        if self.read_only:
            raise DataError(f"the cache in {self.path.parent} holds no record of this file as it "
                            "is now (it changed after the cache was built, or the cache was "
                            "built from another path)", file=str(file))
        digest = self.compute(file)
        self._known[key] = [*stamp, digest]
        self._changed = True
        return digest

    @staticmethod
    def compute(file: Path) -> str:
        """SHA-1 of the whole content of `file`."""
        h = hashlib.sha1(usedforsecurity=False)
        with file.open("rb") as f:
            while block := f.read(_HASH_BLOCK):
                h.update(block)
        return h.hexdigest()

    def save(self) -> None:
        if self._changed:
            atomic_write_text(self.path, json.dumps(self._known, allow_nan=False))
            self._changed = False


@dataclass
class _Job:
    """One day being converted into its temporary directory."""

    split: str
    source: Path
    directory: Path
    tmp: Path
    metadata: pq.FileMetaData
    offsets: dict[str, tuple[int, int]]  # array -> (data offset in its .npy, bytes per row)
    seen_users: np.ndarray
    """[vocab rows of the user column] whether a row of the day holds that user."""
    known_at: bool
    """The day file holds the labels' known-at columns."""
    click_time: bool
    """The day file holds the click-time column."""
    stats: ChunkStats = field(default_factory=lambda: ChunkStats({}, {}))
    futures: list[Future] = field(default_factory=list)
    unseen_users: list[np.ndarray] = field(default_factory=list)
    """The distinct groups of users the vocab does not hold, per converted chunk."""

    @property
    def rows(self) -> int:
        return self.metadata.num_rows

    def write(self, out: dict[str, np.ndarray], first_row: int) -> None:
        """Write the rows `first_row`.. held in `out` into the day's .npy files."""
        for name, array in out.items():
            data_offset, row_bytes = self.offsets[name]
            view = memoryview(np.ascontiguousarray(array)).cast("B")
            position = data_offset + first_row * row_bytes
            fd = os.open(self.tmp / f"{name}.npy", os.O_WRONLY)
            try:
                while view:
                    written = os.pwrite(fd, view, position)
                    view, position = view[written:], position + written
            finally:
                os.close(fd)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class Preparer:
    """Builds (or finds) the cache of every day of one data set; a `read_only` one only opens
    a finished cache (`open`) and writes nothing. The ids are looked up in the data set's
    vocabs, or in those of `vocab_dir` (a warm-started run's, see `malt.data.vocab_build`)."""

    def __init__(self, root: str | Path, schema: Schema = MAC, cache_dir: str | Path | None = None,
                 *, rebuild: bool = False, workers: int | None = None, read_only: bool = False,
                 vocab_dir: str | Path | None = None):
        self.layout: Layout = find_layout(root, vocabs=vocab_dir is None)
        self.vocab_dir = Path(vocab_dir) if vocab_dir is not None else self.layout.vocab_dir
        self.schema = schema
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.layout.root)
        self.rebuild = rebuild
        self.read_only = read_only
        self.workers = workers or default_workers()
        self._lookups: dict[str, Lookup] | None = None
        self._stop = threading.Event()
        self._local = threading.local()
        vocab_files = check_vocab_files(schema, self.vocab_dir)
        if not read_only:
            # A cache is malt's whole (a data set that holds it can be replaced with it): a
            # directory that holds anything else is refused, but for one named as malt names
            # its caches (those of earlier versions have no manifest).
            mark_whole(self.cache_dir, CACHE_KIND, adopt=self.cache_dir.name == CACHE_NAME)
        self.hashes = ContentHashes(self.cache_dir / "content-hashes.json", read_only=read_only)
        identity = hashlib.sha256(f"{CACHE_FORMAT}:{schema.fingerprint()}".encode())
        for path in vocab_files:
            identity.update(f"{path.name}:{self.hashes.digest(path)}".encode())
        self.vocab_key = identity.hexdigest()[:16]

    @property
    def lookups(self) -> dict[str, Lookup]:
        if self._lookups is None:
            self._lookups = load_lookups(self.schema, self.vocab_dir)
        return self._lookups

    @property
    def _vocab_file(self) -> Path:
        return self.cache_dir / f"vocab-{self.vocab_key}.json"

    def vocab_info(self) -> VocabInfo:
        path = self._vocab_file
        if path.is_file() and not self.rebuild:
            with contextlib.suppress(*_DAMAGED):  # else made again
                return VocabInfo.from_dict(json.loads(path.read_text()))
        info = vocab_info(self.schema, self.lookups)
        atomic_write_text(path, json.dumps(info.to_dict(), allow_nan=False))
        return info

    # --- cache directories -----------------------------------------------------------------
    def _directory(self, source: Path, split: str) -> Path:
        """`<split>-<stem>-<group>-<key>`: the group (source path + schema) names what a
        directory stands for, the key (contents + vocabs + schema) which version of it."""
        group = hashlib.sha256(f"{source.resolve()}:{self.schema.fingerprint()}".encode())
        key = hashlib.sha256(f"{self.vocab_key}:{self.hashes.digest(source)}".encode())
        return self.cache_dir / f"{split}-{source.stem}-{group.hexdigest()[:8]}-" \
                                f"{key.hexdigest()[:16]}"

    def _cached(self, directory: Path, source: Path, split: str) -> Day | None:
        """The day cached in `directory` when complete and of this format, else None."""
        try:
            meta = json.loads((directory / "meta.json").read_text())
            if meta.get("format") != CACHE_FORMAT:
                return None
            stats = DayStats.from_dict(meta["stats"])
        except _DAMAGED:
            return None
        if stats.click_time is None and holds_click_time(self.schema, open_parquet(source),
                                                         str(source)):
            return None  # cached before malt read click times: read the file again
        for name, (shape, dtype) in array_shapes(self.schema, stats.rows,
                                                 known_at=stats.known_at,
                                                 click_time=bool(stats.click_time)).items():
            path = directory / f"{name}.npy"
            if not path.is_file() or path.stat().st_size < np.dtype(dtype).itemsize \
                    * int(np.prod(shape)):
                return None
        return Day(name=source.stem, split=split, source=source, directory=directory,
                   stats=stats)

    def _remove_stale(self, keep: set[Path]) -> None:
        """Remove older versions of the kept days and temporary directories of dead runs."""
        groups = {d.name.rsplit("-", 1)[0] for d in keep}
        for entry in self.cache_dir.iterdir():
            if entry in keep:
                continue
            if _TMP_MARK in entry.name:
                if tagged_process_ended(entry.name.rsplit(_TMP_MARK, 1)[1]):
                    _remove(entry)
            elif entry.is_dir() and entry.name.rsplit("-", 1)[0] in groups:
                _remove(entry)

    # --- conversion -------------------------------------------------------------------------
    def _plan(self, source: Path, split: str, directory: Path) -> _Job:
        """Check the file's footer and columns, then lay out the empty arrays of the day."""
        pf = open_parquet(source)
        for column in check_columns(self.schema, pf, str(source)):
            self._unnamed.setdefault(column, []).append(source.name)
        known_at = holds_known_at(self.schema, pf, str(source))
        click_time = holds_click_time(self.schema, pf, str(source))
        rows = pf.metadata.num_rows
        if rows == 0:
            raise DataError("empty day file (0 rows)", file=str(source))
        tmp = directory.with_name(f".{directory.name}{_TMP_MARK}{process_tag()}")
        shutil.rmtree(tmp, ignore_errors=True)
        users = self.lookups[self.schema.user_column].size
        return _Job(split=split, source=source, directory=directory, tmp=tmp,
                    metadata=pf.metadata,
                    offsets=self._lay_out(tmp, rows, known_at, click_time),
                    seen_users=np.zeros(users, dtype=bool), known_at=known_at,
                    click_time=click_time)

    def _lay_out(self, tmp: Path, rows: int, known_at: bool, click_time: bool
                 ) -> dict[str, tuple[int, int]]:
        """Create the empty arrays of a day of `rows` rows in `tmp`; array -> (data offset in
        its .npy, bytes per row). Stopped half-way (a full disk, Ctrl-C), it leaves no `tmp`."""
        offsets = {}
        try:
            tmp.mkdir(parents=True)
            for name, (shape, dtype) in array_shapes(self.schema, rows, known_at=known_at,
                                                     click_time=click_time).items():
                array = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype,
                                                  shape=shape)
                offsets[name] = (array.offset, dtype.itemsize * int(np.prod(shape[1:])))
                del array
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return offsets

    def _convert_row_group(self, converter: DayConverter, job: _Job, row_group: int,
                           start: int) -> ChunkStats | None:
        """Convert one row group of `job` (its first row is `start`); runs in a worker."""
        if self._stop.is_set():
            return None
        pf = open_parquet(job.source, job.metadata)
        stats = ChunkStats({}, {})
        columns = converter.columns + (list(self.schema.known_at_columns) if job.known_at
                                       else []) + ([self.schema.click_time] if job.click_time
                                                   else [])
        for offset, chunk in read_chunks(pf, job.source, row_group, start, columns,
                                         partial(open_parquet, job.source, job.metadata)):
            if self._stop.is_set():
                return None
            out = self._buffers(chunk.num_rows, job.known_at, job.click_time)
            stats.add(converter.convert(chunk, offset, str(job.source), out, self._columns))
            job.write(out, offset)
            users = out["user"]
            known = users < len(job.seen_users)
            job.seen_users[users[known]] = True
            job.unseen_users.append(np.unique(users[~known]))
        return stats

    def _buffers(self, rows: int, known_at: bool, click_time: bool) -> dict[str, np.ndarray]:
        """Per-thread output arrays for a chunk of `rows` rows (reused between chunks)."""
        buffers = self._local.__dict__.setdefault("buffers", {})
        out = {}
        for name, (shape, dtype) in array_shapes(self.schema, rows, known_at=known_at,
                                                 click_time=click_time).items():
            buf = buffers.get(name)
            if buf is None or len(buf) < rows:
                buf = buffers[name] = np.empty(shape, dtype=dtype)
            out[name] = buf[:rows]
        return out

    def _finish(self, job: _Job) -> Day:
        """Collect the results of `job`'s row groups and move its directory into place."""
        for future in job.futures:
            job.stats.add(future.result())
        stats = DayStats(rows=job.rows, users=int(np.count_nonzero(job.seen_users)) + len(
                             np.unique(np.concatenate([np.zeros(0, np.int64),
                                                       *job.unseen_users]))),
                         positives={c: job.stats.positives.get(c, 0) for c in self.schema.labels},
                         oov={c: n for c, n in job.stats.oov.items()},
                         same_binary=sorted(job.stats.same_binary or ()),
                         numeric=dict(job.stats.numeric), above_one=dict(job.stats.above_one),
                         known_at=job.known_at, click_time=job.click_time,
                         truncated=dict(job.stats.truncated))
        meta = {"format": CACHE_FORMAT, "source": str(job.source), "stats": stats.to_dict()}
        (job.tmp / "meta.json").write_text(json.dumps(meta, indent=1, allow_nan=False))
        _move_into_place(job.tmp, job.directory)
        oov = {c: n for c, n in stats.oov.items() if n}
        if oov:
            log.warning("%s: out-of-vocabulary ids mapped to the reserved row: %s", job.source,
                        ", ".join(f"{c} {n:,}" for c, n in oov.items()))
        truncated = {b: n for b, n in stats.truncated.items() if n}
        if truncated:
            log.warning("%s: rows with more items than their bag's max_length or their "
                        "sequence's length (the first items are kept): %s", job.source,
                        ", ".join(f"{c} {n:,}" for c, n in truncated.items()))
        return Day(name=job.source.stem, split=job.split, source=job.source,
                   directory=job.directory, stats=stats, built=True)

    def _sources(self) -> list[tuple[str, Path]]:
        """(split, day file) of every day in time order, training days first."""
        return [(split, source) for split, files in (("train", self.layout.train),
                                                     ("test", self.layout.test))
                for source in files]

    def open(self) -> Dataset:
        """The data set as a finished cache holds it, reading only: nothing is converted, hashed
        or written. Raises `DataError` when the cache lacks a day or the vocab information."""
        try:
            vocab = VocabInfo.from_dict(json.loads(self._vocab_file.read_text()))
        except _DAMAGED as error:
            raise DataError(f"the cache in {self.cache_dir} holds no prepared data set for "
                            f"these vocabs ({error})") from None
        days = []
        for split, source in self._sources():
            day = self._cached(self._directory(source, split), source, split)
            if day is None:
                raise DataError(f"the cache in {self.cache_dir} holds no complete copy of this "
                                "day", file=str(source))
            days.append(day)
        return Dataset(root=self.layout.root, schema=self.schema, vocab=vocab,
                       train=[d for d in days if d.split == "train"],
                       test=[d for d in days if d.split == "test"])

    def prepare(self, progress: Callable[[Day], None] | None = None) -> Dataset:
        """Cache every day (skipping those already cached) and return the data set."""
        if self.read_only:
            raise ValueError("a read-only Preparer only opens a finished cache")
        # Processes share a cache (the runs of a study, several trainings of one data set):
        # they take turns writing it. One that cannot write there only reads a finished cache.
        writable = os.access(self.cache_dir, os.W_OK)
        with output_lock(lock_inside(self.cache_dir), self.cache_dir, wait=True) if writable \
                else nullcontext():
            return self._prepare(progress)

    def _prepare(self, progress: Callable[[Day], None] | None) -> Dataset:
        sources = self._sources()
        jobs: list[_Job] = []
        self._unnamed: dict[str, list[str]] = {}
        """Column -> the converted files that hold it though the schema does not name it."""
        self._stop.clear()
        # The columns of a row group are converted side by side by the second pool, so that
        # the last row groups of the data set keep every core busy too (the workers wait on
        # it); left last, it ends after the workers.
        columns = ThreadPoolExecutor(self.workers, thread_name_prefix="malt-columns") \
            if self.workers > 1 else nullcontext()
        with columns as self._columns, \
                ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="malt-prepare") \
                as pool:
            try:
                # The vocabs are parsed (holding the GIL) while the day files are hashed (not
                # holding it); the hashes decide which days need converting.
                vocab_info = pool.submit(self.vocab_info)
                directories = list(pool.map(lambda s: self._directory(s[1], s[0]), sources))
                vocab = vocab_info.result()
                planned: list[Day | _Job] = []
                for (split, source), directory in zip(sources, directories):
                    day = None if self.rebuild else self._cached(directory, source, split)
                    if day is None:
                        day = self._plan(source, split, directory)
                        jobs.append(day)
                    planned.append(day)
                days = self._run(pool, planned, jobs, progress)
            except BaseException:
                # Stop the workers early: whatever they produce is thrown away.
                self._stop.set()
                for job in jobs:
                    for future in job.futures:
                        future.cancel()
                raise
            finally:
                if self._stop.is_set():
                    pool.shutdown(wait=True)
                    for job in jobs:
                        job.discard()
                # Last: on a full disk this write fails too, and the clean-up is done.
                self.hashes.save()
        self._remove_stale({d.directory for d in days})
        if self._unnamed:
            log.warning("%s: columns the schema does not name are not read: %s (declare them, "
                        "list them under ignore_columns, or set strict_columns = true to refuse "
                        "such files)", self.layout.root,
                        ", ".join(f"{c} (in {len(files)} of {len(sources)} files)"
                                  for c, files in self._unnamed.items()))
        train = [d for d in days if d.split == "train"]
        if train and all(d.stats.same_binary is not None for d in train):
            same = set.intersection(*(set(d.stats.same_binary) for d in train))
            if same:
                log.warning("%s: labels equal once binarised on every training row (as "
                            "auxiliary tasks of each other they add nothing): %s",
                            self.layout.root, ", ".join(f"{a} = {b}" for a, b in sorted(same)))
        if any(d.built for d in days):
            _warn_weights_above_one(self.layout.root, self.schema.labels, days)
        if not self.layout.test:
            log.warning("%s has no test day (test/*.parquet): train on it with the validation "
                        "protocol (--eval-split validation) or add the day to evaluate on",
                        self.layout.root)
        return Dataset(root=self.layout.root, schema=self.schema, vocab=vocab,
                       train=[d for d in days if d.split == "train"],
                       test=[d for d in days if d.split == "test"])

    def _run(self, pool: ThreadPoolExecutor, planned: list[Day | _Job], jobs: list[_Job],
             progress: Callable[[Day], None] | None) -> list[Day]:
        """Convert the row groups of all `jobs` in parallel; finish the days in order."""
        converter = DayConverter(self.schema, self.lookups) if jobs else None
        for job in jobs:
            start = 0
            for row_group in range(job.metadata.num_row_groups):
                job.futures.append(pool.submit(self._convert_row_group, converter, job,
                                               row_group, start))
                start += job.metadata.row_group(row_group).num_rows
        days = []
        for item in planned:
            day = self._finish(item) if isinstance(item, _Job) else item
            days.append(day)
            if progress is not None:
                progress(day)
        return days


def _warn_weights_above_one(root: Path, labels: tuple[str, ...], days: list[Day]) -> None:
    """One warning naming every label with weights above 1: their count over `days` and the
    first day file and row that holds one."""
    found: dict[str, tuple[int, Path, int]] = {}
    for day in days:
        for column, (n, row) in day.stats.above_one.items():
            total, source, first = found.get(column, (0, day.source, row))
            found[column] = (total + n, source, first)
    if found:
        log.warning("%s: label weights above 1 (binary training uses weight > 0 and weighted "
                    "training clips at 1, so such a row counts as one conversion; fine for a "
                    "click credited by several conversions, not for a column of counts or "
                    "amounts): %s", root, ", ".join(
                        f"{c} {found[c][0]:,} rows (first: file {found[c][1]}, row "
                        f"{found[c][2]})" for c in labels if c in found))


def _move_into_place(tmp: Path, directory: Path) -> None:
    """Rename the finished `tmp` to `directory`, replacing an older copy if there is one."""
    try:
        os.replace(tmp, directory)
        return
    except OSError:
        if not directory.exists():
            raise
    # Move the old copy aside first: open memory maps of it stay valid until closed.
    old = directory.with_name(f".{directory.name}.old{_TMP_MARK}{process_tag()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def prepare(root: str | Path, schema: Schema = MAC, cache_dir: str | Path | None = None, *,
            rebuild: bool = False, workers: int | None = None,
            progress: Callable[[Day], None] | None = None,
            vocab_dir: str | Path | None = None) -> Dataset:
    """Validate and cache the data set at `root` (MAC layout); see `Preparer`.

    `workers` conversion threads (default: the CPU cores, at most 4); `progress(day)` is called
    for each day in time order once it is ready; `vocab_dir` replaces the data set's vocabs.
    """
    return Preparer(root, schema, cache_dir, rebuild=rebuild, workers=workers,
                    vocab_dir=vocab_dir).prepare(progress)


def open_prepared(root: str | Path, schema: Schema = MAC, cache_dir: str | Path | None = None,
                  *, vocab_dir: str | Path | None = None) -> Dataset:
    """The data set at `root` as `prepare` cached it, without converting, hashing or writing
    anything (memory-mapped like any prepared day); `DataError` when the cache is not complete.
    """
    return Preparer(root, schema, cache_dir, read_only=True, vocab_dir=vocab_dir).open()
