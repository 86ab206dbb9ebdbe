"""Names that become file names stay inside their directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from malt.errors import ConfigError
from malt.file_names import check_file_name, file_name_problem


@pytest.mark.parametrize("name, problem", [
    ("../../../pwned_vocab", "starts with '.'"), ("x/../../y", "contains '/'"),
    ("/etc/passwd", "contains '/'"),
    ("a\\b", "contains '\\'"), ("a..b", "contains '..'"), ("..", "starts with '.'"),
    (".hidden", "starts with '.'"), ("", "is empty"), ("a\0b", "contains a NUL character"),
    (3, "is not text (int)"),
])
def test_names_that_would_leave_their_directory_are_refused_naming_key_and_value(name, problem):
    with pytest.raises(ConfigError) as error:
        check_file_name(name, "schema 'x': fields")
    assert str(error.value) == (f"schema 'x': fields = {name!r} becomes part of a file name and "
                                f"{problem}; rename it (no '/', '\\', '..', NUL or leading '.')")


@pytest.mark.parametrize("name", ["last", "user_id", "ad-feat.0", "a.b", "ÄÖ 1", "x."])
def test_ordinary_names_pass(name):
    assert check_file_name(name, "key") == name


@given(st.one_of(st.text(max_size=12), st.text(alphabet="a./\\\0", max_size=8)))
def test_an_accepted_name_is_one_file_inside_its_directory(name):
    if file_name_problem(name) is not None:
        return
    directory = Path("/data/vocabs")
    path = directory / f"{name}.json"
    assert Path(os.path.normpath(path)).parent == directory
    assert path.parent == directory and path.name == f"{name}.json"


BAD = "../../x"


@pytest.mark.parametrize("entry", ["schema field", "schema user column", "schema campaign",
                                   "schema label", "task main", "task aux", "study targets",
                                   "study aux", "vocab file"])
def test_every_entry_of_a_name_that_becomes_a_file_name_checks_it(entry, tmp_path):
    from malt.data.layout import vocab_file
    from malt.data.schema import Schema
    from malt.experiments.engine import StudyOptions
    from malt.runs.config import RunConfig

    schema = {"user_column": "u", "fields": {"ad": ["a"]}, "labels": ["last"]}
    make, key = {
        "schema field": (lambda: Schema.from_dict({**schema, "fields": {"ad": ["a", BAD]}}),
                         "fields"),
        "schema user column": (lambda: Schema.from_dict({**schema, "user_column": BAD}),
                               "user_column"),
        "schema campaign": (lambda: Schema.from_dict({**schema, "campaign_column": BAD}),
                            "campaign_column"),
        "schema label": (lambda: Schema.from_dict({**schema, "labels": ["last", BAD]}),
                         "labels"),
        "task main": (lambda: RunConfig.from_dict({"task": {"main": BAD}}), "task.main"),
        "task aux": (lambda: RunConfig.from_dict({"task": {"aux": ["first", BAD]}}), "task.aux"),
        "study targets": (lambda: StudyOptions(names=("main",), targets=("last", BAD)),
                          "--targets"),
        "study aux": (lambda: StudyOptions(names=("main",), aux=(BAD,)), "--aux"),
        "vocab file": (lambda: vocab_file(tmp_path, BAD), "vocab column"),
    }[entry]
    with pytest.raises(ConfigError, match=f"{key} = '../../x' becomes part of a file name"):
        make()
