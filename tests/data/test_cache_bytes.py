"""The bytes `prepare` writes (the cache's arrays and statistics, and the vocabs it builds) are
pinned: a change to the conversion that is meant to be only faster must leave them alone."""

from __future__ import annotations

import hashlib
import json
import shutil

from malt.data import prepare
from malt.data.schema import MAC
from malt.data.vocab_build import build_vocabs
from support.mac_data import add_click_time, add_known_at, write_random_dataset

CACHE = "7b1d42451c801603f6771cccb46fa251a4e72a5b98d20c5bb3e1b68de86a67e7"
VOCABS = "0c32344f71a6893e4a5c5a2fb43164a4e78a967c3351b88bc2fe1119ddf12146"


def digest(files) -> str:
    """sha256 over (name, bytes) of `files`, a sorted list of (name, bytes)."""
    total = hashlib.sha256()
    for name, data in files:
        total.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return total.hexdigest()


def cache_files(cache):
    """(day/array, bytes) of every file of the cache's days; meta.json without its source
    path (which, like the directory names, depends on where the data set lies)."""
    for day in sorted(p for p in cache.iterdir() if p.is_dir()):
        name = "-".join(day.name.split("-")[:-2])
        for path in sorted(day.iterdir()):
            data = path.read_bytes()
            if path.name == "meta.json":
                source = json.dumps(json.loads(data)["source"]).encode()
                assert data.count(source) == 1
                data = data.replace(source, b'"<source>"')
            yield f"{name}/{path.name}", data


def test_the_cache_and_the_vocabs_keep_their_bytes(tmp_path):
    root = write_random_dataset(tmp_path / "data", days=4, rows=700, seed=11,
                                row_group_size=256, vocab_size=90)
    add_known_at(root)
    add_click_time(root)
    shutil.rmtree(root / "vocabs")  # built from the training days instead (some ids OOV)
    build_vocabs(root, MAC, min_count=2)
    vocabs = [(p.name, p.read_bytes()) for p in sorted((root / "vocabs").iterdir())]
    prepare(root, cache_dir=tmp_path / "cache", workers=2)
    assert digest(vocabs) == VOCABS
    files = list(cache_files(tmp_path / "cache"))
    assert len(files) == 4 * 8  # 4 days: 7 arrays and meta.json each
    assert digest(files) == CACHE
