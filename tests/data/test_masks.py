"""Training masks: base, ADM (no look-ahead, contains base), reported, oracle; coverage; the
masked per-task BCE; config and flag plumbing."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.cli import main
from malt.data.cache import prepare
from malt.data.layout import day_path, write_day
from malt.data.masks import (
    AdmOptions,
    MaskPolicy,
    base_mask,
    campaign_counts,
    coverage,
    coverage_report,
    window_counts,
)
from malt.data.schema import MAC
from malt.data.task import Task
from malt.errors import ConfigError
from malt.losses.views import masked_binary_loss, view_losses
from malt.runs.config import RunConfig
from support.kaml_data import kaml_batch, kaml_schema, write_kaml_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_kaml_dataset(tmp_path_factory.mktemp("masks") / "d", days=6, rows=300)


def test_base_mask_is_the_target_one_hot_and_empty_for_other():
    mask = base_mask(torch.tensor([2, 0, -1, 1]), 3)
    assert mask.tolist() == [[0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 1, 0]]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), days=st.integers(1, 8), window=st.integers(1, 9))
def test_trailing_counts_equal_a_loop_over_earlier_days(seed, days, window):
    counts = np.random.default_rng(seed).integers(0, 5, (days, 3, 2))
    got = window_counts(counts, AdmOptions(window_days=window))
    for d in range(days):
        want = sum((counts[k] for k in range(max(0, d - window), d)), np.zeros((3, 2), int))
        np.testing.assert_array_equal(got[d], want)
    static = window_counts(counts, AdmOptions(window="static"))
    np.testing.assert_array_equal(static, np.broadcast_to(counts.sum(0), counts.shape))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), day=st.integers(0, 5))
def test_a_conversion_on_day_d_changes_no_count_before_or_on_day_d(seed, day):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 20, (6, 4, 3))
    later = counts.copy()
    later[day] += rng.integers(1, 50, (4, 3))
    options = AdmOptions(window_days=int(rng.integers(1, 8)))
    before, after = window_counts(counts, options), window_counts(later, options)
    np.testing.assert_array_equal(before[:day + 1], after[:day + 1])


def _policy_masks(root, **adm):
    schema = kaml_schema()
    dataset = prepare(root, schema)
    policy = MaskPolicy("adm", schema, dataset.train, AdmOptions(**adm))
    return [policy.day_masks(d, day) for d, day in enumerate(dataset.train)]


def test_adm_masks_of_earlier_days_ignore_a_later_day(data, tmp_path):
    """End to end: turn every label of training day 3 positive; masks of days 0..3 stay."""
    import shutil

    other = tmp_path / "later"
    shutil.copytree(data, other, ignore=shutil.ignore_patterns(".malt_cache"))
    table = pq.read_table(day_path(other, "train", 3))
    for label in kaml_schema().labels:
        ones = pa.array(np.ones(table.num_rows, dtype=np.float32))
        table = table.set_column(table.schema.get_field_index(label), label, ones)
    write_day(day_path(other, "train", 3), table)
    original = _policy_masks(data, alpha=3.0, window_days=2)
    changed = _policy_masks(other, alpha=3.0, window_days=2)
    for d in range(4):
        np.testing.assert_array_equal(original[d], changed[d])
    assert any((o != c).any() for o, c in zip(original[4:], changed[4:]))


def test_adm_mask_equals_a_per_row_reference_and_contains_the_base_mask(data):
    schema = kaml_schema()
    dataset = prepare(data, schema)
    alpha = np.array([3.0, 5.0, 2.0])
    options = AdmOptions(alpha=3.0, alpha_per_action={"reg": 5.0, "pay": 2.0}, window_days=2)
    policy = MaskPolicy("adm", schema, dataset.train, options)
    arrays = [d.arrays() for d in dataset.train]
    for d, day in enumerate(dataset.train):
        got = policy.day_masks(d, day)
        a = arrays[d]
        for i in range(0, day.rows, 7):
            e = a["campaign"][i]
            for j in range(3):
                seen = sum(int(((arrays[k]["campaign"] == e) & (arrays[k]["weights"][:, j] > 0))
                               .sum()) for k in range(max(0, d - 2), d))
                want = a["target_action"][i] == j or seen >= alpha[j]
                assert got[i, j] == want
        target = a["target_action"]
        assert got[np.flatnonzero(target >= 0), target[target >= 0]].all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), day=st.integers(0, 4), alpha=st.floats(0, 30))
def test_adm_always_contains_the_base_mask(data, seed, day, alpha):
    schema = kaml_schema()
    dataset = prepare(data, schema)
    policy = MaskPolicy("adm", schema, dataset.train, AdmOptions(alpha=alpha, window_days=3))
    batch = kaml_batch(50, seed)
    adm = policy.mask(batch, day)
    base = base_mask(batch["target_action"], 3)
    assert torch.all(adm >= base)


def test_campaign_counts_count_observed_positives_per_day(data):
    dataset = prepare(data, kaml_schema())
    counts = campaign_counts(dataset.train, 3)
    for d, day in enumerate(dataset.train):
        a = day.arrays()
        for k, e in enumerate(counts.campaigns):
            rows = a["campaign"] == e
            np.testing.assert_array_equal(counts.counts[d, k], (a["weights"][rows] > 0).sum(0))


def test_oracle_swaps_in_the_truth_and_other_policies_drop_it():
    schema = kaml_schema()
    batch = kaml_batch(40)
    oracle = MaskPolicy("oracle", schema).apply(batch, 0)
    assert torch.equal(oracle["weights"], batch["true_weights"])
    assert torch.equal(oracle["labels"], (batch["true_weights"] > 0).float())
    assert "mask" not in oracle and "true_weights" not in oracle
    for name in ("none", "base", "reported"):
        out = MaskPolicy(name, schema).apply(batch, 0)
        assert "true_weights" not in out
        assert torch.equal(out["labels"], batch["labels"])
    reported = MaskPolicy("reported", schema).apply(batch, 0)["mask"]
    assert torch.equal(reported, torch.maximum(batch["reported"],
                                               base_mask(batch["target_action"], 3)))


def test_coverage_is_the_share_of_rows_with_mask_one(data):
    schema = kaml_schema()
    dataset = prepare(data, schema)
    policy = MaskPolicy("adm", schema, dataset.train, AdmOptions(alpha=2.0))
    report = coverage(policy, dataset.train, schema.labels)
    masks = np.concatenate([policy.day_masks(d, day) for d, day in enumerate(dataset.train)])
    target = np.concatenate([d.arrays()["target_action"] for d in dataset.train])
    np.testing.assert_allclose([report["adm"][v] for v in schema.labels], masks.mean(0))
    np.testing.assert_allclose([report["base"][v] for v in schema.labels],
                               [(target == j).mean() for j in range(3)])
    assert report["base"]["other"] == pytest.approx((target == -1).mean())
    assert all(report["adm"][v] >= report["base"][v] for v in schema.labels)


def test_a_coverage_report_shows_base_then_each_mask_as_coverage_does(data):
    schema = kaml_schema()
    days = prepare(data, schema).train
    adm = AdmOptions(alpha=2.0, alpha_per_action={"pay": 1.0})
    report = coverage_report(schema, days, adm)
    assert list(report) == ["base", "adm", "reported"]  # reported: the schema has its flags
    for name in ("adm", "reported"):
        single = coverage(MaskPolicy(name, schema, days, adm), days, schema.labels)
        assert report["base"] == single["base"] and report[name] == single[name]
    assert list(coverage_report(schema, days, adm, ["reported", "base"])) == ["base", "reported"]


def test_a_coverage_report_shows_the_reported_set_only_where_the_data_has_it(tmp_path):
    schema = kaml_schema(reported=False)
    days = prepare(write_kaml_dataset(tmp_path / "d", schema, days=3), schema).train
    assert list(coverage_report(schema, days, AdmOptions())) == ["base", "adm"]
    with pytest.raises(ConfigError, match="reported"):
        coverage_report(schema, days, AdmOptions(), ["adm", "reported"])


def test_adm_options_describe_themselves_in_one_line():
    assert AdmOptions().describe() == "trailing window of 7 days, α = 10"
    assert AdmOptions(window="static", alpha=2.5, alpha_per_action={"pay": 1.0}).describe() \
        == "static window, α = 2.5, α[pay] = 1"


def test_masked_loss_is_the_per_task_mean_over_trusted_rows():
    z, y = torch.randn(30), (torch.rand(30) < 0.3).float()
    m = (torch.rand(30) < 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
    torch.testing.assert_close(masked_binary_loss(z, y, m), (bce * m).sum() / m.sum())
    assert masked_binary_loss(z, y, torch.zeros(30)) == 0
    batch = {"labels": torch.stack([y, 1 - y], 1), "mask": torch.stack([m, torch.ones(30)], 1)}
    losses = view_losses({"a": z, "b": z}, batch, {"a": 0, "b": 1})
    torch.testing.assert_close(losses["a"], masked_binary_loss(z, y, m))
    torch.testing.assert_close(losses["b"], torch.nn.functional.binary_cross_entropy_with_logits(
        z, 1 - y))


def test_mask_errors_name_what_is_missing():
    with pytest.raises(ConfigError, match="campaign_column"):
        Task("last", mask="adm").validate(MAC)
    with pytest.raises(ConfigError, match="cat"):
        Task("act", ("cat",), mask="base")
    with pytest.raises(ConfigError, match="mask"):
        RunConfig.from_dict({"task": {"mask": "adn"}})
    with pytest.raises(ConfigError, match="not labels"):
        AdmOptions(alpha_per_action={"nope": 1.0}).thresholds(("a", "b"))


def test_mask_flags_reach_the_config(monkeypatch):
    import argparse

    from malt.commands._options import add_run_options, resolve_config

    parser = argparse.ArgumentParser()
    add_run_options(parser)
    args = parser.parse_args(["--mask", "adm", "--adm-window", "static", "--adm-alpha", "4",
                              "--adm-alpha-for", "reg=2", "--adm-alpha-for", "pay=7.5"])
    task = resolve_config(args).task
    assert (task.mask, task.adm_window, task.adm_alpha) == ("adm", "static", 4.0)
    assert task.adm_alpha_per_action == {"reg": 2.0, "pay": 7.5}
    with pytest.raises(ConfigError, match="--adm-alpha-for expects KEY=VALUE"):
        resolve_config(parser.parse_args(["--adm-alpha-for", "reg"]))
    with pytest.raises(ConfigError, match="--adm-alpha-for reg = 'x': expected a number"):
        resolve_config(parser.parse_args(["--adm-alpha-for", "reg=x"]))


def test_unknown_mask_flag_is_refused(capsys):
    assert main(["train", "--out", "x", "--mask", "everything"]) == 3
    assert "--mask = 'everything': expected one of 'none', 'base'" in capsys.readouterr().err
