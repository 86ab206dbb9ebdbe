"""Trees of tensors and plain values in a safetensors file: exact round trips, and every file
that is not one refused with a `ConfigError`."""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from malt.errors import ConfigError
from malt.runs.tensor_tree import FORMAT_KEY, TREE_KEY, read_tree, write_tree

KIND = "test tree"

tensors = st.builds(
    lambda values, dtype: torch.tensor(values, dtype=dtype),
    st.lists(st.floats(width=32, allow_nan=False), max_size=5),
    st.sampled_from([torch.float32, torch.float64]))
leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=8),
                   st.floats(), tensors)
trees = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.lists(inner, max_size=3).map(tuple),
    st.dictionaries(st.one_of(st.text(max_size=5), st.integers(-5, 5)), inner, max_size=3)),
    max_leaves=12)


def same(a, b) -> bool:
    """Equal in value and type, tensors bit for bit, NaN equal to NaN."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape \
            and bool((a.view(-1).view(torch.uint8) == b.view(-1).view(torch.uint8)).all())
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a.hex() == b.hex()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=60, deadline=None)
@given(tree=trees)
def test_a_tree_comes_back_exactly(tree, tmp_path_factory):
    path = tmp_path_factory.mktemp("tree") / "tree.safetensors"
    write_tree(path, tree, kind=KIND)
    assert same(read_tree(path, kind=KIND), tree)


def test_views_and_shared_storage_are_stored_as_their_own_values(tmp_path):
    base = torch.arange(12.0)
    tree = {"part": base[2:5], "whole": base, "transposed": base.view(3, 4).t(),
            "step": torch.tensor(3), "flags": torch.ByteTensor([1, 0, 1])}
    write_tree(tmp_path / "t", tree, kind=KIND)
    back = read_tree(tmp_path / "t", kind=KIND)
    assert same(back, {k: v.contiguous() for k, v in tree.items()})


def tied(tensor: torch.Tensor, times: int) -> dict[str, torch.Tensor]:
    return {f"name {i}": tensor for i in range(times)}


@pytest.mark.parametrize("tree", [
    tied(torch.ones(1), 2), tied(torch.ones(4), 3),
    {"transposed": torch.arange(6.0).view(2, 3).t()},  # not contiguous, its own storage
    {"empty": torch.zeros(0), "also empty": torch.zeros(0, 3)},
    {"pair": (torch.ones(2), 1.5), "nested": [(torch.zeros(1),)]},
], ids=["one element tied", "tied three times", "transposed", "empty", "in tuples"])
def test_tied_transposed_and_nested_tensors_come_back(tmp_path, tree):
    # safetensors refuses tensors sharing memory and non-contiguous ones: a tree holds both
    # (tied weights, optimiser state of the same parameter), so they must be stored anyway.
    write_tree(tmp_path / "t", tree, kind=KIND)
    assert same(read_tree(tmp_path / "t", kind=KIND),
                {k: v.contiguous() if torch.is_tensor(v) else v for k, v in tree.items()})


def test_non_finite_floats_come_back_and_the_skeleton_stays_strict_json(tmp_path):
    tree = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "-0": -0.0,
            "tiny": 5e-324, "list": [math.inf, 1.0]}
    write_tree(tmp_path / "t", tree, kind=KIND)
    assert same(read_tree(tmp_path / "t", kind=KIND), tree)
    with safe_open(str(tmp_path / "t"), framework="pt") as file:
        skeleton = file.metadata()[TREE_KEY]
    json.loads(skeleton, parse_constant=pytest.fail)  # no NaN/Infinity tokens other readers lack


def test_integer_and_string_keys_stay_apart(tmp_path):
    tree = {1: "one", "1": "text one", 0: {2: (3, 4.5)}}
    write_tree(tmp_path / "t", tree, kind=KIND)
    back = read_tree(tmp_path / "t", kind=KIND)
    assert back == tree and [type(k) for k in back] == [int, str, int]


@pytest.mark.parametrize("value, message", [
    (object(), "a tree holds no object (only tensors, containers and plain values)"),
    ({(1, 2): 3}, "a tree's dict keys are strings or integers, got (1, 2)"),
    ({True: 1}, "a tree's dict keys are strings or integers, got True"),
    (torch.eye(2).to_sparse(), "a tree holds dense tensors only")])
def test_what_a_tree_cannot_hold_is_refused_on_writing(tmp_path, value, message):
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        write_tree(tmp_path / "t", {"x": value}, kind=KIND)


def test_the_systems_refusal_to_write_is_an_os_error_naming_the_file(tmp_path):
    path = tmp_path / "missing" / "t"
    with pytest.raises(OSError) as caught:
        write_tree(path, {"w": torch.ones(3)}, kind=KIND)
    error = caught.value
    assert type(error) is FileNotFoundError
    assert (error.errno, error.strerror, error.filename) == \
        (errno.ENOENT, os.strerror(errno.ENOENT), str(path))


def test_a_missing_file_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=f"^cannot read {re.escape(str(tmp_path / 't'))}: "
                                          "no such file"):
        read_tree(tmp_path / "t", kind=KIND)


def test_a_file_of_another_kind_is_refused(tmp_path):
    write_tree(tmp_path / "t", {"x": 1}, kind="something else")
    with pytest.raises(ConfigError, match=re.escape(
            f"{tmp_path / 't'} is not a malt test tree (its header says 'something else')")):
        read_tree(tmp_path / "t", kind=KIND)


def test_a_pickle_is_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "t"
    path.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ConfigError, match="damaged or not a malt test tree"):
        read_tree(path, kind=KIND)
    assert not marker.exists()


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_file_is_refused(tmp_path, damage):
    path = tmp_path / "t"
    write_tree(path, {"w": torch.ones(100)}, kind=KIND)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[:len(data) // 2], "garbage": b"\x93NUMPY" * 50,
                      "empty": b""}[damage])
    with pytest.raises(ConfigError, match=r"damaged or not a malt test tree \(.*\); it cannot "
                                          r"be loaded$"):
        read_tree(path, kind=KIND)


LONG = "0123456789" * 10


@pytest.mark.parametrize("skeleton, reason", [
    ({"$tensor": "missing"}, "'missing'"), ({"$float": "1e999"}, "'1e999'"),
    ({"$dict": [[1.5, 2]]}, "bad key 1.5"), ({"$dict": [[1]]}, "not enough values"),
    ({"$tuple": 3}, "expected a list, got 3"), ({"$unknown": 1}, "unknown marker '$unknown'"),
    ({"a": 1, "b": 2}, "unexpected node {'a': 1, 'b': 2}"), ({}, "unexpected node {}"),
    # A node's text is cut to 80 characters, so a huge damaged file gives a short message.
    ({"a": LONG, "b": 2}, f"unexpected node {str({'a': LONG})[:80]}"),
    ({"$tuple": LONG}, f"expected a list, got {LONG[:80]}"),
    ({"$tuple": [{"$tensor": "missing"}]}, "'missing'"),
    ("[" * 100_000 + "]" * 100_000, "maximum recursion depth")])
def test_a_malformed_skeleton_is_refused_saying_what_is_wrong(tmp_path, skeleton, reason):
    text = skeleton if isinstance(skeleton, str) else json.dumps(skeleton)
    save_file({"t0": torch.zeros(1)}, tmp_path / "t", metadata={FORMAT_KEY: KIND, TREE_KEY: text})
    with pytest.raises(ConfigError) as caught:
        read_tree(tmp_path / "t", kind=KIND)
    message = str(caught.value)
    parsed = not isinstance(skeleton, str)  # the last one is too deep for the JSON parser
    assert message.startswith(f"{tmp_path / 't'} is damaged or not a malt test tree "
                              f"({'bad structure: ' if parsed else ''}")
    assert reason in message
    if LONG in text:
        assert message.endswith(f"{reason})")
