"""Numeric columns: declared in the schema, checked and cached raw, standardised with the
moments of the training days only, and fed to every model."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from malt.data import Schema, prepare
from malt.data.layout import day_path, write_day, write_vocab
from malt.data.numeric import MAX_MAGNITUDE, Moments, standardisation
from malt.errors import ConfigError, DataError
from malt.training.builder import numeric_standardisation

SCHEMA = """
user_column = "uid"
labels = ["y"]
numeric = {price = "standardise", clicks = "log1p", hour = "none"}
[fields]
ad = ["item"]
"""


def schema_file(tmp_path, text=SCHEMA, name="s.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def write_numeric_data(root, prices, *, clicks=None, seed=0):
    """One day file per entry of `prices` (the last is the test day)."""
    rng = np.random.default_rng(seed)
    for d, price in enumerate(prices):
        n = len(price)
        table = pa.table({
            "uid": pa.array(rng.integers(0, 5, n)), "item": pa.array(rng.integers(0, 3, n)),
            "price": pa.array(price), "hour": pa.array(rng.integers(0, 24, n)),
            "clicks": pa.array(clicks[d] if clicks else rng.integers(0, 100, n)),
            "y": pa.array(rng.random(n) < 0.5).cast(pa.float32())})
        last = d == len(prices) - 1
        write_day(day_path(root, "test" if last else "train", d), table)
    write_vocab(root / "vocabs", "uid", [str(i) for i in range(5)])
    write_vocab(root / "vocabs", "item", [str(i) for i in range(3)])
    return root


@given(st.lists(st.lists(st.floats(-1e6, 1e6), max_size=30), min_size=1, max_size=5))
def test_merged_moments_are_the_moments_of_all_values(parts):
    merged = Moments()
    for part in parts:
        merged = merged.merge(Moments.of(np.array(part, dtype=np.float64)))
    values = np.array([v for part in parts for v in part], dtype=np.float64)
    assert merged.count == len(values)
    if len(values):
        assert merged.mean == pytest.approx(values.mean(), rel=1e-9, abs=1e-6)
        assert merged.std == pytest.approx(values.std(), rel=1e-6, abs=1e-3)


def test_the_schema_declares_numeric_columns_and_their_transforms(tmp_path):
    schema = Schema.load(schema_file(tmp_path))
    assert [(f.name, f.transform) for f in schema.numeric] == [
        ("price", "standardise"), ("clicks", "log1p"), ("hour", "none")]
    listed = Schema.load(schema_file(tmp_path, SCHEMA.replace(
        'numeric = {price = "standardise", clicks = "log1p", hour = "none"}',
        'numeric = ["price"]\nnumeric_fill = 0')))
    assert [(f.name, f.transform) for f in listed.numeric] == [("price", "standardise")]
    assert listed.numeric_fill == 0.0 and "price" in listed.columns
    for line, message in (('numeric = {price = "log"}', "numeric = {'price': 'log'}: "
                           "expected a list of strings or a table of values from "
                           "'standardise', 'log1p', 'none'"),
                          ('numeric = ["price"]\nnumeric_fill = "zero"',
                           "numeric_fill = 'zero': expected a finite number or nothing"),
                          ('numeric = ["item"]', "columns declared twice: ['item']")):
        text = SCHEMA.replace('numeric = {price = "standardise", clicks = "log1p", '
                              'hour = "none"}', line)
        with pytest.raises(ConfigError, match=re.escape(message)):
            Schema.load(schema_file(tmp_path, text))


def test_a_schema_without_numeric_columns_keeps_its_fingerprint(tmp_path):
    from malt.data import MAC

    # the value before numeric columns existed: caches of MAC data are not rebuilt
    assert MAC.numeric == () and MAC.fingerprint() == "167b0d97204c2f41"


def test_statistics_come_from_the_training_days_only(tmp_path):
    rng = np.random.default_rng(1)
    prices = [rng.normal(500, 100, 400), rng.normal(520, 90, 300), rng.normal(5000, 1, 200)]
    root = write_numeric_data(tmp_path / "d", prices)
    dataset = prepare(root, Schema.load(schema_file(tmp_path)))
    train = np.concatenate(prices[:2])
    shift, scale = numeric_standardisation(dataset.schema, dataset.train)["price"]
    assert shift == pytest.approx(train.mean()) and scale == pytest.approx(train.std())
    assert numeric_standardisation(dataset.schema, dataset.train)["clicks"] == (0.0, 1.0)
    np.testing.assert_array_equal(dataset.test[0].arrays()["numeric"][:, 0],
                                  prices[2].astype(np.float32))  # the cache keeps raw values
    assert standardisation("standardise", Moments(3, 2.0, 0.0)) == (2.0, 1.0)  # constant


def test_non_finite_numbers_are_errors_unless_filled(tmp_path):
    prices = [np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0])]
    root = write_numeric_data(tmp_path / "d", prices)
    with pytest.raises(DataError) as err:
        prepare(root, Schema.load(schema_file(tmp_path)))
    assert (err.value.column, err.value.row) == ("price", 1)
    assert str(err.value).endswith("NaN value (numeric_fill in the schema replaces such values)")
    filled = Schema.load(schema_file(tmp_path, 'numeric_fill = -7.5\n' + SCHEMA))
    dataset = prepare(root, filled)
    assert dataset.train[0].arrays()["numeric"][:, 0].tolist() == [1.0, -7.5, 3.0]


@pytest.mark.parametrize("fill", [None, -7.5])
def test_values_beyond_the_largest_magnitude_are_refused_even_with_a_fill(tmp_path, fill):
    prices = [np.array([1.0, -MAX_MAGNITUDE, MAX_MAGNITUDE]),
              np.array([MAX_MAGNITUDE, 1e300, np.nan])]
    root = write_numeric_data(tmp_path / "d", prices)
    text = SCHEMA if fill is None else f"numeric_fill = {fill}\n{SCHEMA}"
    schema = Schema.load(schema_file(tmp_path, text))
    with pytest.raises(DataError) as err:
        prepare(root, schema)
    assert (err.value.file, err.value.column, err.value.row) == (
        str(day_path(root, "test", 1)), "price", 1)
    assert str(err.value).endswith("value 1e+300 is beyond +-1e+18, the largest magnitude "
                                   "malt reads (float32 overflows on it or on its square); "
                                   "correct it in the day file")
    write_numeric_data(tmp_path / "d", [prices[0], [1.0, None, np.inf]])
    if fill is None:
        with pytest.raises(DataError) as err:
            prepare(root, schema)
        assert str(err.value).endswith("row 1: null value (numeric_fill in the schema replaces "
                                       "such values)")
        return
    dataset = prepare(root, schema)  # the limit itself is read, null and inf are filled
    np.testing.assert_array_equal(dataset.train[0].arrays()["numeric"][:, 0],
                                  np.float32([1.0, -1e18, 1e18]))
    assert dataset.test[0].arrays()["numeric"][:, 0].tolist() == [1.0, -7.5, -7.5]
    shift, scale = numeric_standardisation(dataset.schema, dataset.train)["price"]
    assert np.isfinite(shift) and np.isfinite(scale)


def test_log1p_needs_values_above_minus_one(tmp_path):
    prices = [np.ones(3), np.ones(2)]
    root = write_numeric_data(tmp_path / "d", prices, clicks=[[4, -1, 0], [1, 2]])
    with pytest.raises(DataError) as err:
        prepare(root, Schema.load(schema_file(tmp_path)))
    assert (err.value.column, err.value.row) == ("clicks", 1)
    assert "log1p needs values above -1" in str(err.value)


def test_a_schema_built_in_python_checks_its_transforms_too():
    import dataclasses

    from malt.data import MAC
    from malt.data.schema import NumericField

    with pytest.raises(ConfigError, match="transform = 'log': expected one of 'standardise', "
                                          "'log1p', 'none'; did you mean 'log1p'"):
        dataclasses.replace(MAC, numeric=(NumericField("price", "log"),))
