"""`malt data kuairand-sim` on small files of the KuaiRand-Pure layout; `malt data coverage`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from malt.cli import main
from malt.data.cache import prepare
from malt.data.schema import Schema
from malt.sources.kuairand import (
    ACTIONS,
    RANDOM_LOG,
    STANDARD_LOGS,
    USER_FEATURES,
    VIDEO_FEATURES,
    KuaiRandOptions,
    build_kuairand,
)

DAY_MS = 86_400_000


def write_raw(root: Path, rows: int = 3000, users: int = 60, videos: int = 40, seed: int = 0
              ) -> Path:
    """Fake KuaiRand-Pure files: the real file names and columns, random values."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    start = 1649376000000                                    # 2022-04-08 00:00 UTC
    for k, name in enumerate((*STANDARD_LOGS, RANDOM_LOG)):
        n = rows // 2 if k < 2 else rows // 10
        day = rng.integers(0, 10, n) + (10 * k if k < 2 else 10)
        frame = pd.DataFrame({
            "user_id": rng.integers(0, users, n), "video_id": rng.integers(0, videos, n),
            "date": [int(pd.Timestamp(start + d * DAY_MS, unit="ms").strftime("%Y%m%d"))
                     for d in day],
            "hourmin": rng.integers(0, 2400, n),
            "time_ms": start + day * DAY_MS + rng.integers(0, DAY_MS, n),
            "is_click": rng.integers(0, 2, n),
            **{a: (rng.random(n) < p).astype(int) for a, p in zip(ACTIONS, (0.1, 0.03, 0.05,
                                                                            0.02))},
            "is_hate": 0, "long_view": rng.integers(0, 2, n), "play_time_ms": rng.integers(
                0, 9999, n), "duration_ms": 5000, "profile_stay_time": 0,
            "comment_stay_time": 0, "is_profile_enter": 0, "is_rand": int(k == 2),
            "tab": rng.integers(0, 15, n)})
        frame.to_csv(root / name, index=False)
    user = pd.DataFrame({"user_id": np.arange(users),
                         **{c: rng.integers(0, 5, users) for c in USER_FEATURES},
                         "follow_user_num": rng.integers(0, 500, users),
                         "register_days": rng.integers(0, 3000, users)})
    user["user_active_degree"] = rng.choice(["high_active", "full_active", "UNKNOWN"], users)
    user["fans_user_num_range"] = rng.choice(["0", "[1,10)", "[10,100)"], users)
    user.loc[3, "fans_user_num_range"] = None
    user.to_csv(root / "user_features_pure.csv", index=False)
    video = pd.DataFrame({"video_id": np.arange(videos),
                          **{c: rng.integers(0, 7, videos) for c in VIDEO_FEATURES},
                          "video_duration": rng.integers(1000, 60000, videos),
                          "server_width": 720, "server_height": 1280})
    video["video_type"] = rng.choice(["NORMAL", "AD"], videos)
    video["tag"] = rng.choice(["12,65", "3", "7,1,2", None], videos)
    video.to_csv(root / "video_features_basic_pure.csv", index=False)
    return root


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_raw(tmp_path_factory.mktemp("kuairand") / "raw")


def _frame(out: Path) -> pd.DataFrame:
    parts = [pq.read_table(p).to_pandas().assign(split=p.parent.name, file=p.name)
             for p in sorted(out.glob("*/*.parquet"))]
    return pd.concat(parts, ignore_index=True)


def test_recipe_writes_the_kaml_layout(raw, tmp_path):
    out = tmp_path / "out"
    report = build_kuairand(raw, out, KuaiRandOptions(seed=1, target_rows=1200))
    schema = Schema.load(out / "schema.toml")
    dataset = prepare(out, schema)
    assert len(dataset.test) == 1 and len(dataset.train) == report.train_days >= 5
    frame = _frame(out)
    assert len(frame) == report.rows_kept == report.train_rows + report.test_rows
    truth = frame[[f"true_{a}" for a in ACTIONS]].to_numpy()
    observed = frame[list(ACTIONS)].to_numpy()
    reported = frame[[f"reported_{a}" for a in ACTIONS]].to_numpy()
    np.testing.assert_array_equal(observed, truth * reported)
    assert (reported.sum(1) == 3).all()
    target = frame["target_action"].map(ACTIONS.index).to_numpy()
    assert (reported[np.arange(len(frame)), target] == 1).all()
    per_video = frame.groupby("video_id")
    assert (per_video["target_action"].nunique() == 1).all()
    for a in ACTIONS:
        assert (per_video[f"reported_{a}"].nunique() == 1).all()
    # Time split: every training row is no later than every test row; one file per date.
    train, test = frame[frame.split == "train"], frame[frame.split == "test"]
    assert len(test) and len(train)
    assert train.groupby("file")["user_id"].size().size == report.train_days
    # Every all-zero row is sampled with the same rate, positives are all kept.
    assert report.rows_kept < report.rows_read
    assert not {"play_time_ms", "duration_ms", "video_duration", "follow_user_num"} & \
        set(frame.columns)
    assert set(frame["tag"].astype(str)) <= {"12", "3", "7", "NA"}


def test_time_split_and_sampling_follow_the_log(raw, tmp_path):
    out = tmp_path / "out"
    report = build_kuairand(raw, out, KuaiRandOptions(seed=2, neg_keep_rate=0.5))
    logs = pd.concat([pd.read_csv(raw / name) for name in STANDARD_LOGS], ignore_index=True)
    positive = (logs[list(ACTIONS)] > 0).any(axis=1)
    assert report.rows_read == len(logs)
    kept_zero = report.rows_kept - int(positive.sum())
    assert kept_zero == pytest.approx(0.5 * (~positive).sum(), rel=0.15)
    cut = np.quantile(logs["time_ms"], 0.8, method="higher")
    frame = _frame(out)
    train_positive = (frame[frame.split == "train"][[f"true_{a}" for a in ACTIONS]] > 0).any(
        axis=1)
    assert int(train_positive.sum()) == int(positive[logs["time_ms"] <= cut].sum())
    assert report.train_rows == pytest.approx(0.8 * report.rows_kept, rel=0.1)
    again = build_kuairand(raw, tmp_path / "again", KuaiRandOptions(seed=2, neg_keep_rate=0.5))
    assert again == report
    pd.testing.assert_frame_equal(frame, _frame(tmp_path / "again"))


def test_unsampled_test_period_and_per_row_reporting(raw, tmp_path):
    out = tmp_path / "out"
    report = build_kuairand(raw, out, KuaiRandOptions(seed=3, neg_keep_rate=0.2,
                                                      sample_test=False, reported_per="row",
                                                      random_log=True))
    frame = _frame(out)
    assert report.rows_read > 3000                      # the random log was read too
    test = frame[frame.split == "test"]
    logs = pd.concat([pd.read_csv(raw / n) for n in (*STANDARD_LOGS, RANDOM_LOG)])
    cut = np.quantile(logs["time_ms"], 0.8, method="higher")
    assert len(test) == int((logs["time_ms"] > cut).sum())
    assert frame.groupby("video_id")["target_action"].nunique().max() > 1


def test_command_and_missing_files(raw, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["data", "kuairand-sim", "--raw", str(raw), "--out", str(out), "--seed", "4",
                 "--target-rows", "1500"]) == 0
    assert "kept" in capsys.readouterr().out
    assert main(["data", "kuairand-sim", "--raw", str(raw), "--out", str(out)]) == 3
    assert "--overwrite" in capsys.readouterr().err
    assert main(["data", "kuairand-sim", "--raw", str(tmp_path), "--out",
                 str(tmp_path / "x")]) == 3
    assert "log_standard_4_08_to_4_21_pure.csv" in capsys.readouterr().err
    assert main(["data", "coverage", "--data", str(out), "--adm-alpha", "1",
                 "--adm-alpha-for", "is_like=2"]) == 0
    printed = capsys.readouterr().out
    assert "reported" in printed and "adm" in printed and "α[is_like] = 2" in printed
