"""Batches: slices of the cached arrays, sharded, shuffled and resumable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.data import MAC, prepare
from malt.data.batches import DayBatches, day_order, rank_slice, step_count
from support.mac_data import write_random_dataset

ROWS = 257


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = write_random_dataset(tmp_path_factory.mktemp("batches") / "d", days=3, rows=ROWS,
                                row_group_size=100)
    return prepare(root)


@pytest.fixture(scope="module")
def day(dataset):
    return dataset.train[0]


def gathered(batches) -> dict[str, np.ndarray]:
    batches = list(batches)
    return {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]
            if k != "step_rows"}


def test_batch_keys_dtypes_and_shapes(day):
    batch = next(iter(DayBatches(day, 64)))
    F, S, C, V, L = len(MAC.fields), 3, 2, 4, 20
    expected = {"sparse": ((64, F), torch.int64), "seq": ((64, S, L), torch.int64),
                "dense_seq": ((64, C, L), torch.float32), "weights": ((64, V), torch.float32),
                "labels": ((64, V), torch.float32), "user": ((64,), torch.int64),
                "index": ((64,), torch.int64), "step_rows": ((), torch.int64)}
    assert {k: (tuple(v.shape), v.dtype) for k, v in batch.items()} == expected
    assert torch.equal(batch["labels"], (batch["weights"] > 0).float())
    assert batch["labels"].sum() > 0 and batch["step_rows"].item() == 64


def test_sequential_batches_are_the_arrays_in_order(day):
    batches = list(DayBatches(day, 100))
    assert len(batches) == step_count(ROWS, 100) == 3
    assert [len(b["index"]) for b in batches] == [100, 100, 57]
    assert [int(b["step_rows"]) for b in batches] == [100, 100, 57]
    got = gathered(batches)
    np.testing.assert_array_equal(got["index"], np.arange(ROWS))
    for name, array in day.arrays().items():
        np.testing.assert_array_equal(got[name], array)


def test_batches_do_not_alias_the_cache(day):
    batch = next(iter(DayBatches(day, 10)))
    before = np.array(day.arrays()["weights"][:10])
    batch["weights"].add_(5)
    np.testing.assert_array_equal(day.arrays()["weights"][:10], before)


@settings(max_examples=300, deadline=None)
@given(rows=st.integers(1, 500), batch_size=st.integers(1, 64), world_size=st.integers(1, 6))
def test_rank_slices_partition_every_step(rows, batch_size, world_size):
    steps = step_count(rows, batch_size)
    covered = []
    for step in range(steps):
        parts = [rank_slice(rows, step, batch_size, r, world_size) for r in range(world_size)]
        sizes = [hi - lo for lo, hi in parts]
        assert max(sizes) - min(sizes) <= 1
        assert all(parts[r][1] == parts[r + 1][0] for r in range(world_size - 1))
        assert parts[0][0] == step * batch_size
        assert parts[-1][1] == min(rows, (step + 1) * batch_size)
        covered += [i for lo, hi in parts for i in range(lo, hi)]
    assert covered == list(range(rows))


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("world_size", [1, 3, 4])
def test_sharding_covers_every_row_once_with_equal_steps(day, world_size, shuffle):
    shards = [list(DayBatches(day, 40, shuffle=shuffle, seed=5, rank=r, world_size=world_size))
              for r in range(world_size)]
    assert {len(s) for s in shards} == {step_count(ROWS, 40)}
    rows = np.concatenate([b["index"].numpy() for s in shards for b in s])
    assert sorted(rows.tolist()) == list(range(ROWS))
    for step in range(len(shards[0])):
        parts = [s[step] for s in shards]
        assert len({int(p["step_rows"]) for p in parts}) == 1
        assert sum(len(p["index"]) for p in parts) == int(parts[0]["step_rows"])
    arrays = day.arrays()
    for batch in shards[-1]:
        np.testing.assert_array_equal(batch["sparse"].numpy(), arrays["sparse"][batch["index"]])


def test_shuffle_is_deterministic_and_depends_on_seed_and_day(day):
    def order(**kw):
        return np.concatenate([b["index"].numpy() for b in DayBatches(day, 50, shuffle=True,
                                                                      **kw)])

    base = order(seed=1, day_index=0)
    np.testing.assert_array_equal(base, order(seed=1, day_index=0))
    assert sorted(base.tolist()) == list(range(ROWS))
    assert not np.array_equal(base, np.arange(ROWS))
    assert not np.array_equal(base, order(seed=2, day_index=0))
    assert not np.array_equal(base, order(seed=1, day_index=1))
    # Rows inside a batch are read in file order; the batch's rows follow the permutation.
    first = next(iter(DayBatches(day, 50, shuffle=True, seed=1)))["index"].numpy()
    assert np.all(np.diff(first) > 0)
    assert set(first.tolist()) == set(day_order(ROWS, True, 1, 0)[:50].tolist())


@pytest.mark.parametrize("shuffle", [False, True])
def test_from_step_resumes_exactly(day, shuffle):
    full = list(DayBatches(day, 30, shuffle=shuffle, seed=3, day_index=2, rank=1, world_size=2))
    for k in (0, 1, 4, len(full) - 1, len(full)):
        resumed = list(DayBatches(day, 30, shuffle=shuffle, seed=3, day_index=2, rank=1,
                                  world_size=2).from_step(k))
        assert len(resumed) == len(full) - k
        for a, b in zip(full[k:], resumed):
            assert a.keys() == b.keys()
            assert all(torch.equal(a[key], b[key]) for key in a)


def test_argument_checks(day):
    with pytest.raises(ValueError, match="^batch_size must be positive, got 0"):
        DayBatches(day, 0)
    with pytest.raises(ValueError, match="^rank 2 is outside world_size 2"):
        DayBatches(day, 10, rank=2, world_size=2)
    assert len(list(DayBatches(day, 1))) == ROWS  # one row a step is a valid batch


def test_defaults_are_batches_of_4096_rows_in_order_or_shuffled_with_seed_0(tmp_path):
    big = prepare(write_random_dataset(tmp_path / "big", days=2, rows=4100)).train[0]
    sizes = [len(b["labels"]) for b in DayBatches(big)]
    assert sizes == [4096, 4]
    order = day_order(4100, True, 0, 0)
    for k, b in enumerate(DayBatches(big, shuffle=True)):  # each batch: its rows, sorted
        np.testing.assert_array_equal(b["index"].numpy(), np.sort(order[4096 * k:4096 * (k + 1)]))


@pytest.mark.cuda
def test_cuda_batches_match_cpu_batches(day):
    cpu = list(DayBatches(day, 64, shuffle=True, seed=1))
    gpu = list(DayBatches(day, 64, shuffle=True, seed=1, device="cuda"))
    torch.cuda.synchronize()
    for a, b in zip(cpu, gpu):
        assert all(v.device.type == "cuda" for v in b.values())
        assert all(torch.equal(a[k], b[k].cpu()) for k in a)
