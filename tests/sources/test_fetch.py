"""`malt fetch mac`: the layout is checked, disk space too, files are fetched once; a fake hub
stands in for the network."""

from __future__ import annotations

from pathlib import Path

import pytest

import malt.sources.fetch as fetch
from malt.cli import main
from malt.errors import ConfigError
from malt.sources.fetch import HubFile, expected_files, fetch_mac


class FakeHub:
    def __init__(self, prefix="data/", drop=(), short=()):
        self.listing = [HubFile(prefix + p, 10 + i) for i, p in enumerate(expected_files())
                        if p not in drop]
        self.listing.append(HubFile("README.md", 5))
        self.short, self.fetched = set(short), []

    def files(self):
        return self.listing

    def download(self, path, local_dir):
        size = next(f.size for f in self.listing if f.path == path)
        target = Path(local_dir) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x" * (size - (path in self.short)))
        self.fetched.append(path)
        return target


def test_the_release_is_fetched_into_the_mac_layout_once(tmp_path):
    hub, seen = FakeHub(), []
    root = fetch_mac(tmp_path / "mac", hub, progress=lambda i, n, f: seen.append((i, n)),
                     free_bytes=lambda p: 10**12)
    assert root == tmp_path / "mac" / "data" and len(hub.fetched) == 38 == len(seen)
    assert (root / "train" / "train-19.parquet").is_file()
    assert (root / "vocabs" / "context_feat3.json").is_file()
    assert "README.md" not in hub.fetched
    (root / "test" / "test.parquet").write_bytes(b"x")  # a partial file is fetched again
    again = FakeHub()
    fetch_mac(tmp_path / "mac", again, free_bytes=lambda p: 10**12)
    assert again.fetched == ["data/test/test.parquet"]


def test_a_repository_without_the_layout_is_refused_before_any_download(tmp_path):
    hub = FakeHub(drop=("vocabs/user_id.json", "train/train-07.parquet"))
    with pytest.raises(ConfigError, match="lacks 2 file.*train/train-07.parquet, "
                                          "vocabs/user_id.json"):
        fetch_mac(tmp_path / "mac", hub, free_bytes=lambda p: 10**12)
    with pytest.raises(ConfigError, match="does not hold one MAC layout"):
        fetch_mac(tmp_path / "mac", FakeHub(drop=("train/train-00.parquet",)))
    assert hub.fetched == []


def test_too_little_disk_is_refused_before_any_download(tmp_path):
    hub = FakeHub()
    total = sum(f.size for f in hub.files() if f.path != "README.md")
    needed = total + int(0.65 * total)
    with pytest.raises(ConfigError, match="GB free; the files still to fetch and the cache"):
        fetch_mac(tmp_path / "mac", hub, free_bytes=lambda p: needed - 1)
    assert hub.fetched == []
    fetch_mac(tmp_path / "mac", hub, free_bytes=lambda p: needed)


def test_a_short_download_is_an_error_that_a_rerun_resumes(tmp_path):
    with pytest.raises(ConfigError, match="train-03.parquet: downloaded 12 bytes, the hub "
                                          "lists 13; run the command again"):
        fetch_mac(tmp_path / "mac", FakeHub(short=("data/train/train-03.parquet",)),
                  free_bytes=lambda p: 10**12)


def test_the_command_prints_progress_and_the_prepare_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fetch, "HuggingFaceHub", lambda repo, revision: FakeHub(prefix=""))
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda p: type("U", (), {"free": 10**12}))
    assert main(["fetch", "mac", str(tmp_path / "mac")]) == 0
    out = capsys.readouterr().out
    assert "[1/38] train/train-00.parquet" in out
    assert out.rstrip().endswith(f"malt prepare --data {tmp_path / 'mac'}")


def test_the_hub_wrapper_lists_files_and_downloads_through_huggingface_hub(tmp_path,
                                                                           monkeypatch):
    import sys
    import types

    calls = []

    class Entry:
        def __init__(self, path, size=None):
            self.path = path
            if size is not None:
                self.size = size

    class HfApi:
        def list_repo_tree(self, repo, *, repo_type, revision, recursive):
            calls.append(("tree", repo, repo_type, revision, recursive))
            return [Entry("data"), Entry("data/test/test.parquet", 7)]  # a folder, a file

    def hf_hub_download(repo, path, *, repo_type, revision, local_dir):
        calls.append(("get", repo, path, repo_type, revision, local_dir))
        return str(local_dir / path)

    module = types.SimpleNamespace(HfApi=HfApi, hf_hub_download=hf_hub_download)
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    hub = fetch.HuggingFaceHub("org/MAC", "v1")
    assert hub.files() == [HubFile("data/test/test.parquet", 7)]
    assert hub.download("data/test/test.parquet", tmp_path) == tmp_path / "data/test/test.parquet"
    assert calls == [("tree", "org/MAC", "dataset", "v1", True),
                     ("get", "org/MAC", "data/test/test.parquet", "dataset", "v1", tmp_path)]
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(ConfigError, match=r"pip install 'malt\[fetch\]'"):
        fetch.HuggingFaceHub()
