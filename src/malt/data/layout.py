"""The MAC release layout on disk, for reading and for writing.

    <root>/train/train-00.parquet ... train-NN.parquet   one file per day, in time order
    <root>/test/test.parquet                             the day after the last training day
    <root>/vocabs/<column>.json                          {raw id: index} per categorical column
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from malt.errors import DataError, os_errors_as
from malt.file_names import check_file_name
from malt.outputs import atomic_write, atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """The day files and vocab directory of one data set, days in time order."""

    root: Path
    train: tuple[Path, ...]
    test: tuple[Path, ...]

    @property
    def vocab_dir(self) -> Path:
        return self.root / "vocabs"

    def vocab_file(self, column: str) -> Path:
        """`vocabs/<column>.json`."""
        return vocab_file(self.vocab_dir, column)

    @property
    def days(self) -> tuple[Path, ...]:
        return self.train + self.test


def natural_key(path: Path) -> list:
    """Sort key of file names with numbers in numeric order (day-2 before day-10)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def find_layout(root: str | Path, *, vocabs: bool = True) -> Layout:
    """Locate the day files under `root`; raises `DataError` when the layout is not there
    (`vocabs`: including the vocabs/ directory)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("data directory does not exist", file=str(root))
    train, test = _day_files(root / "train"), _day_files(root / "test")
    if not train and not test:
        raise DataError("no day files: expected train/*.parquet and test/*.parquet "
                        "(the MAC release layout)", file=str(root))
    if vocabs and not (root / "vocabs").is_dir():
        raise DataError("vocabs/ directory is missing (`malt prepare --build-vocabs` writes it "
                        "from the training days)", file=str(root))
    return Layout(root=root, train=train, test=test)


def _day_files(directory: Path) -> tuple[Path, ...]:
    """The day files (`*.parquet`) of `directory` in natural order (none when it is absent).
    Anything else there is not read and is named in a warning, except hidden files and `_`
    markers (Spark's `_SUCCESS`); a directory that cannot be listed, or a day that is not a
    file, is a `DataError`."""
    if not directory.is_dir():
        return ()
    # glob would pass over a directory it cannot read as an empty one.
    with os_errors_as(directory, action="list the day files", error=DataError):
        names = os.listdir(directory)
    days = tuple(sorted(directory.glob("*.parquet"), key=natural_key))
    for path in days:
        if path.is_dir():
            raise DataError("a directory where a day file should be", file=str(path))
        if path.is_symlink() and not path.exists():
            raise DataError(f"a symbolic link to nothing ({os.readlink(path)}) where a day file "
                            "should be", file=str(path))
        if not path.is_file():
            raise DataError("not a regular file where a day file should be", file=str(path))
    others = sorted(n for n in names
                    if Path(n).suffix != ".parquet" and not n.startswith((".", "_")))
    if others:
        log.warning("%s: not read, only *.parquet files are days: %s (convert a day saved in "
                    "another format to parquet; move other files out of the folder to silence "
                    "this)", directory, ", ".join(others))
    return days


def day_path(root: Path, split: str, index: int) -> Path:
    """Path of day `index` of `split` ('train' or 'test') in the MAC naming."""
    return root / "train" / f"train-{index:02d}.parquet" if split == "train" \
        else root / "test" / "test.parquet"


def write_day(path: Path, table: pa.Table, *, row_group_size: int = 1 << 18) -> None:
    """Write one day file atomically (temporary name, then rename), with page checksums so
    that a corrupted file is detected when read.

    Only string columns are dictionary-encoded: on numeric ids and id lists zstd alone gives
    files of about the same size that decode faster (BENCHMARKS.md "figures once quoted in the
    source")."""
    strings = [f.name for f in table.schema if _holds_strings(f.type)]
    atomic_write(path, lambda tmp: pq.write_table(
        table, tmp, row_group_size=row_group_size, compression="zstd", use_dictionary=strings,
        write_page_checksum=True))


def _holds_strings(dtype: pa.DataType) -> bool:
    while pa.types.is_list(dtype) or pa.types.is_large_list(dtype) \
            or pa.types.is_fixed_size_list(dtype):
        dtype = dtype.value_type
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)


def vocab_file(vocab_dir: Path, column: str) -> Path:
    """The vocab file of `column` in `vocab_dir`. A column whose file would lie anywhere else
    (`../x`, `/x`) is a `ConfigError`: schemas refuse such names already, and this guards every
    read and write of a vocab whatever named the column."""
    return vocab_dir / f"{check_file_name(column, 'vocab column')}.json"


def write_vocab(vocab_dir: Path, column: str, raw_ids: list[str]) -> None:
    """Write `vocabs/<column>.json` mapping the i-th raw id to index i."""
    write_vocab_mapping(vocab_file(vocab_dir, column), {str(r): i for i, r in enumerate(raw_ids)})


def write_vocab_mapping(path: Path, mapping: dict[str, int]) -> None:
    """Write the vocab file `path`: `{raw id: index}`, in the order of `mapping`."""
    atomic_write_text(path, json.dumps(mapping, allow_nan=False))


