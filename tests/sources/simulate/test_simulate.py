"""The simulator: MAC layout and round trip, determinism, label invariants, calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.cli import main
from malt.data import MAC, prepare
from malt.errors import ConfigError
from malt.sources.simulate import MAC_RATIOS, SimConfig, simulate, size_config
from malt.sources.simulate.catalog import build_catalog
from malt.sources.simulate.config import DAY, Params
from malt.sources.simulate.features import PurchaseHistory
from malt.sources.simulate.journeys import simulate_chunk
from malt.sources.simulate.labels import LABELS, attribute, window_journeys
from malt.sources.simulate.population import build_population


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sim") / "tiny"
    return out, simulate(size_config("tiny", seed=3), out)


def _vocab(root: Path, column: str) -> dict[str, int]:
    return json.loads((root / "vocabs" / f"{column}.json").read_text())


def test_tiny_writes_the_mac_layout(tiny):
    root, stats = tiny
    assert sorted(p.name for p in (root / "train").iterdir()) == [
        f"train-{d:02d}.parquet" for d in range(5)]
    assert [p.name for p in (root / "test").iterdir()] == ["test.parquet"]
    assert sorted(p.stem for p in (root / "vocabs").iterdir()) == sorted(MAC.vocab_columns)
    assert not list(root.glob(".simulate-*"))
    total = 0
    for path in [*sorted((root / "train").iterdir()), root / "test" / "test.parquet"]:
        table = pq.read_table(path)
        assert tuple(table.column_names) == (*MAC.columns, *MAC.truth_columns,
                                             *MAC.known_at_columns, MAC.click_time)
        total += table.num_rows
    assert total == stats.clicks
    assert 35_000 < stats.clicks < 70_000


def test_tiny_round_trips_every_column_through_prepare(tiny):
    root, _ = tiny
    dataset = prepare(root)
    inverse = {c: _inverse(_vocab(root, c)) for c in MAC.vocab_columns}
    for pad_field in ("ad_feat0", "ad_feat1", "ad_feat2"):
        assert "0" in _vocab(root, pad_field)
    for day in dataset.days:
        assert sum(day.stats.oov.values()) == 0
        table = pq.read_table(day.source)
        arrays = day.arrays()
        np.testing.assert_array_equal(inverse["user_id"][arrays["user"]],
                                      table["user_id"].to_numpy())
        for j, f in enumerate(MAC.fields):
            np.testing.assert_array_equal(inverse[f.name][arrays["sparse"][:, j]],
                                          table[f.name].to_numpy())
        for j, s in enumerate(MAC.id_sequences):
            raw = np.stack(table[s.name].to_numpy(zero_copy_only=False))
            np.testing.assert_array_equal(inverse[s.shares][arrays["seq"][:, j, :]], raw)
            pad_row = dataset.vocab.sequence_pad[s.name]
            np.testing.assert_array_equal(arrays["seq"][:, j, :] == pad_row, raw == 0)
        for j, s in enumerate(MAC.float_sequences):
            np.testing.assert_array_equal(arrays["dense_seq"][:, j, :],
                                          np.stack(table[s.name].to_numpy(zero_copy_only=False)))
        for j, label in enumerate(MAC.labels):
            np.testing.assert_allclose(arrays["weights"][:, j], table[label].to_numpy(),
                                       rtol=1e-6)


def _inverse(vocab: dict[str, int]) -> np.ndarray:
    out = np.zeros(max(vocab.values()) + 1, dtype=np.int64)
    out[list(vocab.values())] = [int(k) for k in vocab]
    return out


def test_sequences_are_padded_at_the_tail_with_zero_scores(tiny):
    root, _ = tiny
    table = pq.read_table(root / "test" / "test.parquet")
    items = np.stack(table["ad_feat0_seq"].to_numpy(zero_copy_only=False))
    pad = items == 0
    # Most recent purchase first: once padding starts it runs to the end.
    assert np.all(np.diff(pad.astype(int), axis=1) >= 0)
    assert 0 < pad.mean() < 1
    for name in ("ad_feat1_seq", "ad_feat2_seq"):
        np.testing.assert_array_equal(
            np.stack(table[name].to_numpy(zero_copy_only=False)) == 0, pad)
    for name in ("mm_feat0_seq", "mm_feat1_seq"):
        sims = np.stack(table[name].to_numpy(zero_copy_only=False))
        assert np.all(sims[pad] == 0.0)
        assert sims.min() >= -1.0 and sims.max() <= 1.0
        assert sims[~pad].std() > 0.1
    # The two encoders see the same items with different noise: correlated, not equal.
    a, b = (np.stack(table[n].to_numpy(zero_copy_only=False))[~pad]
            for n in ("mm_feat0_seq", "mm_feat1_seq"))
    assert 0.5 < np.corrcoef(a, b)[0, 1] < 0.999


def test_tiny_labels_and_ratios(tiny):
    root, stats = tiny
    table = pq.read_table([*sorted((root / "train").iterdir())][0])
    w = np.stack([table[c].to_numpy() for c in LABELS], axis=1)
    assert np.all(w >= 0)
    linear = w[:, LABELS.index("linear")] > 0
    for label in ("last", "first", "mta"):
        assert np.all(linear[w[:, LABELS.index(label)] > 0])
    for label, ratio in stats.ratios().items():
        assert abs(ratio / MAC_RATIOS[label] - 1) < 0.3, (label, ratio)
    text = stats.format()
    assert "positive ratio" in text and "clicks per user" in text and ">10:" in text


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    config = SimConfig(users=300, days=3, seed=7, chunk_users=120)
    simulate(config, tmp_path / "a")
    simulate(config, tmp_path / "b")
    simulate(SimConfig(users=300, days=3, seed=8, chunk_users=120), tmp_path / "c")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    assert len(files) == 3 + len(MAC.vocab_columns) + 1  # days, vocabs, the manifest
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert ((tmp_path / "a" / "test" / "test.parquet").read_bytes()
            != (tmp_path / "c" / "test" / "test.parquet").read_bytes())


def test_chunks_cover_every_user_once(tmp_path):
    stats = simulate(SimConfig(users=500, days=3, seed=1, chunk_users=150), tmp_path)
    users = np.concatenate([pq.read_table(p, columns=["user_id"])["user_id"].to_numpy()
                            for p in sorted(tmp_path.rglob("*.parquet"))])
    assert len(users) == stats.clicks == sum(stats.rows_per_day)
    assert len(np.unique(users)) == sum(len(c) for c in stats.clicks_per_user)
    assert set(np.unique(users).astype(str)) == set(_vocab(tmp_path, "user_id"))


def _chunk(users: int = 400, days: int = 6, seed: int = 0):
    params = Params()
    rng = np.random.default_rng(seed)
    catalog = build_catalog(users * 12, params, rng)
    population = build_population(users, params, rng)
    events = simulate_chunk(catalog, population, np.arange(users), days, params, rng,
                            np.random.default_rng(seed + 1), truth_replicas=4)
    return catalog, events, attribute(events, catalog.items, int(params.window_days * DAY),
                                      params.dda_noise, rng)


def test_every_rule_credits_each_purchase_once():
    _, events, labels = _chunk()
    credited = int(np.count_nonzero(labels.journey_size))
    assert credited > 50
    np.testing.assert_allclose(labels.weights.sum(0), credited, rtol=1e-9)
    assert np.all(labels.weights >= 0)
    linear = labels.weights[:, LABELS.index("linear")] > 0
    for label in ("last", "first", "mta"):
        assert np.all(linear[labels.weights[:, LABELS.index(label)] > 0])
    # A click's weight never exceeds the number of purchases it can share in.
    key = events.user * 10**7 + events.item
    purchases = np.unique(events.conv_user * 10**7 + events.conv_item, return_counts=True)
    limit = np.zeros(len(key))
    found = np.isin(key, purchases[0])
    limit[found] = purchases[1][np.searchsorted(purchases[0], key[found])]
    assert np.all(labels.weights <= limit[:, None] + 1e-9)
    # One-off clicks carry no causal contribution, so DDA never credits them alone.
    assert np.all(events.contribution[events.journey < 0] == 0)


def test_last_click_is_the_latest_click_in_the_window():
    _, events, labels = _chunk(users=200, seed=4)
    last = labels.weights[:, LABELS.index("last")]
    first = labels.weights[:, LABELS.index("first")]
    for p in np.flatnonzero(labels.journey_size > 0)[:40]:
        same = np.flatnonzero((events.user == events.conv_user[p])
                              & (events.item == events.conv_item[p])
                              & (events.time < events.conv_time[p])
                              & (events.time >= events.conv_time[p] - 7 * DAY))
        assert len(same) == labels.journey_size[p]
        assert last[same[np.argmax(events.time[same])]] >= 1
        assert first[same[np.argmin(events.time[same])]] >= 1


def test_popular_sampling_is_the_exact_inverse_cdf():
    catalog = build_catalog(5_000, Params(), np.random.default_rng(0))
    got = catalog.sample_popular(np.random.default_rng(1), (300, 7))
    target = np.random.default_rng(1).random((300, 7)) * catalog.popularity_cdf[-1]
    np.testing.assert_array_equal(got, np.searchsorted(catalog.popularity_cdf, target, "right"))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_window_journeys_match_a_loop(data):
    n = data.draw(st.integers(0, 30))
    p = data.draw(st.integers(0, 10))
    keys = st.integers(0, 3)
    times = st.integers(-50, 50)
    click_key = np.array(data.draw(st.lists(keys, min_size=n, max_size=n)), dtype=np.int64)
    click_time = np.array(data.draw(st.lists(times, min_size=n, max_size=n)), dtype=np.int64)
    conv_key = np.array(data.draw(st.lists(keys, min_size=p, max_size=p)), dtype=np.int64)
    conv_time = np.array(data.draw(st.lists(times, min_size=p, max_size=p)), dtype=np.int64)
    window = data.draw(st.integers(0, 40))
    purchase, click = window_journeys(click_key, click_time, conv_key, conv_time, window)
    got = sorted(zip(purchase.tolist(), click.tolist()))
    want = sorted((j, i) for j in range(p) for i in range(n)
                  if click_key[i] == conv_key[j]
                  and conv_time[j] - window <= click_time[i] < conv_time[j])
    assert got == want


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_purchase_history_matches_a_loop(data):
    m = data.draw(st.integers(0, 25))
    user = np.array(data.draw(st.lists(st.integers(0, 3), min_size=m, max_size=m)), np.int64)
    time = np.array(data.draw(st.lists(st.integers(-20, 20), min_size=m, max_size=m)), np.int64)
    item = np.arange(m, dtype=np.int64)
    q_user = np.array(data.draw(st.lists(st.integers(0, 4), min_size=5, max_size=5)), np.int64)
    q_time = np.array(data.draw(st.lists(st.integers(-30, 30), min_size=5, max_size=5)),
                      np.int64)
    got = PurchaseHistory(user, item, time).before(q_user, q_time, length=4)
    for row, (u, t) in enumerate(zip(q_user, q_time)):
        mine = [i for i in range(m) if user[i] == u and time[i] < t]
        mine.sort(key=lambda i: (time[i], i), reverse=True)
        want = (mine[:4] + [-1] * 4)[:4]
        assert got[row].tolist() == want


def test_cli_writes_and_refuses_to_mix_data_sets(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", "--size", "tiny", "--users", "200", "--days", "3", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "positive ratio" in printed and "last" in printed
    assert (out / "test" / "test.parquet").is_file()
    assert main(args) == 3
    assert "--overwrite" in capsys.readouterr().err
    assert main(["prepare", "--data", str(out)]) == 0  # its cache is malt's too
    assert main([*args, "--days", "2", "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "train").iterdir()) == ["train-00.parquet"]
    (out / "train" / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main([*args, "--overwrite"]) == 3
    assert "notes.txt" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim"]  # no staging left behind


def test_cli_refuses_a_directory_malt_did_not_write(tmp_path, capsys):
    (tmp_path / "report.pdf").write_text("x")
    args = ["simulate", "--size", "tiny", "--users", "200", "--days", "3", "--out",
            str(tmp_path)]
    assert main([*args, "--overwrite"]) == 3
    assert "not a malt output" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["report.pdf"]


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError):
        size_config("huge")
    with pytest.raises(ConfigError):
        size_config("tiny", days=1)
    with pytest.raises(ConfigError):
        size_config("tiny", users=0)


@pytest.mark.slow
def test_small_ratios_are_within_the_band(tmp_path):
    stats = simulate(size_config("small", seed=11), tmp_path)
    assert 0.8e6 < stats.clicks < 1.3e6
    for label, ratio in stats.ratios().items():
        assert abs(ratio / MAC_RATIOS[label] - 1) < 0.3, (label, ratio)
