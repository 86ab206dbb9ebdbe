"""The day cache: keyed by content, vocabs and schema; never trusted when half-written."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from malt import locks
from malt.data import MAC, Schema, prepare, reader
from malt.data import cache as cache_module
from malt.data.cache import Preparer, open_prepared
from malt.data.layout import day_path, write_day, write_vocab
from malt.errors import ConfigError, DataError
from malt.locks import lock_inside
from support.lock_holder import start_holder
from support.mac_data import random_day_table, write_random_dataset


@pytest.fixture
def data(tmp_path):
    return write_random_dataset(tmp_path / "d", days=3, rows=100, row_group_size=32)


@pytest.fixture
def conversions(monkeypatch):
    """Counts converted chunks per day file name."""
    counts: Counter[str] = Counter()
    convert = reader.DayConverter.convert

    def counting(self, chunk, offset, file, out, pool=None):
        counts[Path(file).stem] += 1
        return convert(self, chunk, offset, file, out, pool)

    monkeypatch.setattr(reader.DayConverter, "convert", counting)
    return counts


def day_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / ".malt_cache").iterdir() if p.is_dir())


def snapshot(dataset) -> dict[str, dict[str, np.ndarray]]:
    return {d.name: {k: np.array(v) for k, v in d.arrays().items()} for d in dataset.days}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for day in a:
        assert a[day].keys() == b[day].keys()
        for name in a[day]:
            np.testing.assert_array_equal(a[day][name], b[day][name])


def test_second_prepare_skips_all_work(data, conversions, monkeypatch):
    first = prepare(data)
    assert conversions == {"train-00": 4, "train-01": 4, "test": 4}  # 100 rows = 4 row groups
    assert all(d.built for d in first.days)
    conversions.clear()
    hashed = []
    compute = cache_module.ContentHashes.compute
    monkeypatch.setattr(cache_module.ContentHashes, "compute",
                        staticmethod(lambda f: hashed.append(f) or compute(f)))
    second = prepare(data)
    assert not conversions and not hashed  # unchanged files are not even read
    assert not any(d.built for d in second.days)
    assert [d.directory for d in second.days] == [d.directory for d in first.days]
    assert [d.stats for d in second.days] == [d.stats for d in first.days]
    assert second.vocab == first.vocab
    assert_same(snapshot(first), snapshot(second))


def test_changing_one_day_rebuilds_only_that_day(data, conversions):
    first = prepare(data)
    before = day_dirs(data)
    conversions.clear()
    new_table = random_day_table(MAC, 90, np.random.default_rng(9))
    write_day(day_path(data, "train", 1), new_table, row_group_size=32)
    second = prepare(data)
    assert conversions == {"train-01": 3}
    assert second.train[1].rows == 90 and second.train[1].built
    assert second.train[0].directory == first.train[0].directory
    assert second.train[1].directory != first.train[1].directory
    # The stale version of train-01 is gone; the others are untouched.
    after = day_dirs(data)
    assert len(after) == len(before) and first.train[1].directory.name not in after
    np.testing.assert_array_equal(second.train[1].arrays()["user"],
                                  new_table["user_id"].to_numpy())


def test_same_content_with_a_new_timestamp_is_not_rebuilt(data, conversions):
    prepare(data)
    conversions.clear()
    path = day_path(data, "test", 0)
    content = path.read_bytes()
    path.unlink()
    path.write_bytes(content)
    os.utime(path, ns=(1, 1))
    assert not any(d.built for d in prepare(data).days)
    assert not conversions


def test_changing_a_vocab_rebuilds_every_day(data, conversions):
    first = prepare(data)
    conversions.clear()
    write_vocab(data / "vocabs", "ad_feat4", [str(i) for i in range(60)])
    second = prepare(data)
    assert conversions == {"train-00": 4, "train-01": 4, "test": 4}
    assert second.vocab.sizes["ad_feat4"] == 61 and first.vocab.sizes["ad_feat4"] == 51
    assert len(day_dirs(data)) == 3


def test_schema_changes_rebuild_but_a_new_name_does_not(data, conversions):
    prepare(data)
    conversions.clear()
    renamed = Schema.from_dict({**MAC.to_dict(), "name": "my-mac"})
    assert renamed.fingerprint() == MAC.fingerprint()
    prepare(data, renamed)
    assert not conversions
    no_sequences = Schema.from_dict({"user_column": "user_id", "fields": list_fields(),
                                     "labels": ["last", "mta"],
                                     "ignore_columns": [*(s.name for s in MAC.id_sequences),
                                                        *(s.name for s in MAC.float_sequences),
                                                        "first", "linear"]})
    dataset = prepare(data, no_sequences)
    assert conversions == {"train-00": 4, "train-01": 4, "test": 4}
    assert set(dataset.test[0].arrays()) == {"sparse", "user", "weights"}
    # Each schema keeps its own cache: going back to MAC converts nothing.
    conversions.clear()
    prepare(data)
    assert not conversions


def list_fields():
    return [{"name": f.name, "group": f.group} for f in MAC.fields]


def test_rebuild_forces_conversion_and_keeps_open_maps_valid(data, conversions):
    first = prepare(data)
    held = first.train[0].arrays()["sparse"]
    expected = np.array(held)
    conversions.clear()
    second = prepare(data, rebuild=True)
    assert conversions == {"train-00": 4, "train-01": 4, "test": 4}
    assert all(d.built for d in second.days)
    np.testing.assert_array_equal(held, expected)
    assert_same(snapshot(first), snapshot(second))


def test_worker_count_does_not_change_the_arrays(data):
    one = snapshot(prepare(data, workers=1))
    four = snapshot(prepare(data, workers=4, rebuild=True))
    assert_same(one, four)


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_interrupted_conversion_leaves_no_cache(data, monkeypatch, error):
    convert = reader.DayConverter.convert
    calls = Counter()

    def failing(self, chunk, offset, file, out, pool=None):
        if Path(file).stem == "train-01":
            calls["train-01"] += 1
            if offset >= 64:
                raise error("interrupted")
        return convert(self, chunk, offset, file, out, pool)

    monkeypatch.setattr(reader.DayConverter, "convert", failing)
    with pytest.raises(error):
        prepare(data, workers=2)
    assert calls["train-01"] >= 1
    cache = data / ".malt_cache"
    names = [p.name for p in cache.iterdir() if p.is_dir()]
    # No directory of train-01 (final or temporary) survives; an earlier day may be complete.
    assert not [n for n in names if "train-01" in n]
    assert all(json.loads((cache / n / "meta.json").read_text()) for n in names)

    monkeypatch.setattr(reader.DayConverter, "convert", convert)
    dataset = prepare(data)
    assert dataset.train[1].built
    table = pq.read_table(dataset.train[1].source)
    np.testing.assert_array_equal(dataset.train[1].arrays()["user"], table["user_id"].to_numpy())


def test_a_full_disk_leaves_no_day_in_part_even_when_the_hashes_cannot_be_saved(
        data, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    def cannot_save(self):
        raise ConfigError(f"cannot write {self.path}: no space left on the device")

    monkeypatch.setattr(cache_module._Job, "write", full)
    monkeypatch.setattr(cache_module.ContentHashes, "save", cannot_save)
    with pytest.raises(ConfigError, match="no space left"):
        prepare(data, workers=2)
    assert [p.name for p in (data / ".malt_cache").iterdir() if p.is_dir()] == []


@pytest.mark.parametrize("damage", [b"garbage", b"[1]", b'{"format": 2}', b'{"x": 5}', b""])
@pytest.mark.parametrize("pattern", ["vocab-*.json", "train-train-00-*/meta.json",
                                     "content-hashes.json"])
def test_a_damaged_cache_file_is_made_again(data, pattern, damage):
    first = prepare(data)
    for path in (data / ".malt_cache").glob(pattern):
        path.write_bytes(damage)
    again = prepare(data)
    assert again.vocab == first.vocab
    assert again.train[0].built == (pattern.endswith("meta.json"))
    np.testing.assert_array_equal(again.train[0].arrays()["sparse"],
                                  first.train[0].arrays()["sparse"])


@pytest.mark.parametrize("record", [5, "text", "stamp only"])
def test_a_damaged_content_hash_record_hashes_the_file_again(data, record):
    prepare(data)
    hashes = data / ".malt_cache" / "content-hashes.json"
    known = json.loads(hashes.read_text())
    hashes.write_text(json.dumps({key: value[:3] if record == "stamp only" else record
                                  for key, value in known.items()}))
    assert not prepare(data).train[0].built
    assert json.loads(hashes.read_text()) == known


def test_reading_only_a_cache_with_damaged_vocab_information_is_a_data_error(data):
    prepare(data)
    for path in (data / ".malt_cache").glob("vocab-*.json"):
        path.write_text("[1]")
    with pytest.raises(DataError, match="holds no prepared data set for these vocabs"):
        open_prepared(data)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_leftover_temporary_directory_is_never_used(data, conversions):
    first = prepare(data)
    final = first.train[0].directory
    for day in first.days:
        for p in day.directory.iterdir():
            p.unlink()
        day.directory.rmdir()
    # What a run killed half-way through train-00 leaves behind: a temporary directory with
    # complete-looking content. The next run must rebuild, not rename or read it.
    leftover = final.with_name(f".{final.name}.tmp-{dead_pid()}")
    leftover.mkdir()
    (leftover / "meta.json").write_text(json.dumps({"format": 2, "stats": {}}))
    (leftover / "sparse.npy").write_bytes(b"garbage")
    conversions.clear()
    dataset = prepare(data)
    assert conversions["train-00"] == 4 and dataset.train[0].built
    assert not leftover.exists()
    np.testing.assert_array_equal(dataset.train[0].arrays()["user"],
                                  pq.read_table(dataset.train[0].source)["user_id"].to_numpy())


def test_a_builder_removes_only_its_own_hosts_leftovers(data, monkeypatch):
    first = prepare(data)
    final = first.train[0].directory
    pid = dead_pid()
    mine = final.with_name(f".{final.name}.tmp-{socket.gethostname()}-{pid}")
    # A process of another machine sharing the cache may be alive though no local one has its id.
    theirs = final.with_name(f".{final.name}.tmp-other-host-{pid}")
    for leftover in (mine, theirs):
        leftover.mkdir()
    seen = []
    convert = reader.DayConverter.convert

    def looking(self, chunk, offset, file, out, pool=None):
        seen.extend(p.name for p in (data / ".malt_cache").iterdir() if f"-{os.getpid()}" in p.name)
        return convert(self, chunk, offset, file, out, pool)

    monkeypatch.setattr(reader.DayConverter, "convert", looking)
    prepare(data, rebuild=True)
    assert not mine.exists() and theirs.is_dir()
    # What this process converts into is named by its host and its pid.
    assert seen and all(f".tmp-{socket.gethostname()}-{os.getpid()}" in n for n in seen)


def test_the_same_files_under_another_path_get_their_own_copies(data, tmp_path):
    # What a node that mounts a shared data set elsewhere does with the shared cache.
    shared = tmp_path / "shared-cache"
    first = prepare(data, cache_dir=shared)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(data, elsewhere, ignore=shutil.ignore_patterns(".malt_cache"))
    second = prepare(elsewhere, cache_dir=shared)
    assert all(d.built for d in second.days)
    assert not {d.directory for d in first.days} & {d.directory for d in second.days}
    assert_same(snapshot(open_prepared(data, cache_dir=shared)), snapshot(first))
    assert_same(snapshot(open_prepared(elsewhere, cache_dir=shared)), snapshot(first))


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def test_open_prepared_converts_hashes_and_writes_nothing(data, conversions, monkeypatch):
    first = prepare(data)
    before = tree(data / ".malt_cache")
    conversions.clear()

    def no_hashing(file):
        raise AssertionError(f"hashed {file}")

    monkeypatch.setattr(cache_module.ContentHashes, "compute", staticmethod(no_hashing))
    opened = open_prepared(data)
    assert not conversions and not any(d.built for d in opened.days)
    assert tree(data / ".malt_cache") == before
    assert [d.directory for d in opened.days] == [d.directory for d in first.days]
    assert [d.stats for d in opened.days] == [d.stats for d in first.days]
    assert opened.vocab == first.vocab
    assert_same(snapshot(first), snapshot(opened))
    assert isinstance(opened.train[0].arrays()["user"], np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        Preparer(data, read_only=True).prepare()


def test_open_prepared_refuses_a_missing_or_outdated_cache(data, tmp_path):
    with pytest.raises(DataError, match="holds no record of this file"):
        open_prepared(data, cache_dir=tmp_path / "none")
    assert not (tmp_path / "none").exists()  # not even created
    first = prepare(data)
    (data / ".malt_cache" / f"vocab-{Preparer(data).vocab_key}.json").unlink()
    with pytest.raises(DataError, match="holds no prepared data set"):
        open_prepared(data)
    prepare(data)
    for p in first.test[0].directory.iterdir():
        p.unlink()
    with pytest.raises(DataError, match="holds no complete copy") as error:
        open_prepared(data)
    assert error.value.file == str(first.test[0].source)
    prepare(data)
    write_day(day_path(data, "train", 1), random_day_table(MAC, 90, np.random.default_rng(9)))
    with pytest.raises(DataError, match="changed after the cache was built") as error:
        open_prepared(data)
    assert error.value.file == str(day_path(data, "train", 1))


@pytest.mark.parametrize("damage", ["meta", "array", "format"])
def test_damaged_cache_directory_is_rebuilt(data, conversions, damage):
    first = prepare(data)
    directory = first.test[0].directory
    if damage == "meta":
        (directory / "meta.json").unlink()
    elif damage == "array":
        (directory / "seq.npy").write_bytes(b"")
    else:
        meta = json.loads((directory / "meta.json").read_text())
        (directory / "meta.json").write_text(json.dumps({**meta, "format": -1}))
    conversions.clear()
    dataset = prepare(data)
    assert conversions == {"test": 4} and dataset.test[0].built
    assert_same(snapshot(first), snapshot(dataset))


def test_explicit_cache_directory(data, tmp_path):
    dataset = prepare(data, cache_dir=tmp_path / "elsewhere")
    assert all(d.directory.parent == tmp_path / "elsewhere" for d in dataset.days)
    assert not (data / ".malt_cache").exists()


class _Waits(logging.Handler):
    """Sets `event` when a preparer starts waiting for another process."""

    def __init__(self, event: threading.Event):
        super().__init__()
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting until it ends" in record.getMessage():
            self.event.set()


def _prepare_in_a_thread(data: Path, cache: Path, results: list, done: threading.Event
                         ) -> threading.Thread:
    """`prepare(data)` in a thread: its data set (or error) lands in `results`; `done` is set
    when it ends."""
    def run() -> None:
        try:
            results.append(prepare(data, cache_dir=cache))
        except BaseException as error:  # reported to the test's thread
            results.append(error)
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("writable", [True, False])
def test_processes_sharing_a_cache_take_turns_writing_it(data, conversions, caplog, monkeypatch,
                                                         writable):
    """A second preparer waits for the one writing the cache, then finds its days; one that
    cannot write the cache (it is someone else's) only reads it, without waiting."""
    cache = data / ".malt_cache"
    prepare(data, cache_dir=cache)
    conversions.clear()
    if not writable:
        monkeypatch.setattr(cache_module.os, "access", lambda path, mode: False)
    event, results = threading.Event(), []
    waits = _Waits(event)
    locks.log.addHandler(waits)
    holder = start_holder(lock_inside(cache), cache)
    try:
        thread = _prepare_in_a_thread(data, cache, results, event)
        assert event.wait(timeout=120)  # it waits, or it is done
        # While the other process holds the lock, a writer cannot have gone on.
        assert (results == []) is writable
    finally:
        holder.stdin.close()
        holder.wait()
        thread.join()
        locks.log.removeHandler(waits)
    assert len(results) == 1 and not any(d.built for d in results[0].days)
    assert conversions == Counter()
    said = f"{cache} is being written by process {holder.pid}" in caplog.text
    assert said is writable
    assert not lock_inside(cache).exists()
