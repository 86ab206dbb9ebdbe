"""A small calibrated run and its test day's rows, shared by the service's tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import malt
from malt.data.schema import MAC
from support.deploy_models import held_out_moae_run
from support.mac_data import write_random_dataset


@pytest.fixture(scope="package")
def data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("serve") / "data", days=4, rows=200)


@pytest.fixture(scope="package")
def run(data, tmp_path_factory) -> Path:
    """A finished MoAE run with platt calibrators fitted on its held-out last training day."""
    out = held_out_moae_run(data, tmp_path_factory.mktemp("serve") / "run")
    malt.load_run(out).calibrate("platt")
    return out


@pytest.fixture(scope="package")
def test_rows(data) -> list[dict]:
    """The test day's feature columns, row by row, as a client would send them (with one id
    of each row's first field replaced by an unseen one, every fifth row)."""
    table = pq.read_table(data / "test" / "test.parquet").drop_columns(list(MAC.labels))
    rows = table.to_pylist()
    field = MAC.fields[0].name
    for row in rows[::5]:
        row[field] = 10_000 + row[field]
    return rows


