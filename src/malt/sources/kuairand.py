"""KuaiRand-Pure as incomplete multi-label data: the KAML paper's simulation recipe (§4.2.2).

Four of KuaiRand's feedbacks play conversion actions, A..D = `is_like`, `is_follow`,
`is_comment`, `is_forward`; a video plays a campaign. Steps (resolved where the paper is
silent; see the project's methods notes):

1. read the standard logs (`log_standard_4_08_to_4_21_pure.csv`,
   `log_standard_4_22_to_5_08_pure.csv`; optionally the random log);
2. keep every row with a positive feedback and each all-zero row with probability r (`auto`:
   the r that leaves about `target_rows` rows), before the split unless `sample_test=False`;
3. draw each video's target action uniformly, and the actions it "reports": the target plus two
   of the other three, per video (or per row);
4. observed labels = true labels ⊙ reported (unreported conversions are hidden, not only
   masked); the true labels are kept as `true_<action>`, the reported flags as
   `reported_<action>`;
5. keep categorical features only: user and video ids, `tab`, the user features' categorical
   columns and the basic video features' categorical columns (`tag` reduced to its first tag);
6. sort by time; the first 80 % of rows (cut at the 80th percentile of `time_ms`, ties to
   train) are training days (one file per `date`), the rest the test day.

Output: the MAC layout plus `schema.toml`. Nothing is downloaded: the files must be given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from malt.data.layout import day_path, write_day, write_vocab
from malt.errors import DataError
from malt.outputs import DATA_KIND, OutputDir, atomic_write_text, staged_output
from malt.sources.kuairand_options import KuaiRandOptions

ACTIONS = ("is_like", "is_follow", "is_comment", "is_forward")
STANDARD_LOGS = ("log_standard_4_08_to_4_21_pure.csv", "log_standard_4_22_to_5_08_pure.csv")
RANDOM_LOG = "log_random_4_22_to_5_08_pure.csv"
USER_FILE = "user_features_pure.csv"
VIDEO_FILE = "video_features_basic_pure.csv"
LOG_COLUMNS = ("user_id", "video_id", "date", "time_ms", "tab", *ACTIONS)
USER_FEATURES = ("user_active_degree", "is_lowactive_period", "is_live_streamer",
                 "is_video_author", "follow_user_num_range", "fans_user_num_range",
                 "friend_user_num_range", "register_days_range",
                 *(f"onehot_feat{i}" for i in range(18)))
VIDEO_FEATURES = ("author_id", "video_type", "upload_type", "visible_status", "music_id",
                  "music_type", "tag")
USER_FIELD = "uid"
"""The user id as a feature (the `user_id` column is the grouping column)."""
MISSING = "NA"

@dataclass
class KuaiRandReport:
    rows_read: int
    rows_kept: int
    neg_keep_rate: float
    train_rows: int
    test_rows: int
    train_days: int
    positives: dict[str, float]

    def format(self) -> str:
        rates = "  ".join(f"{a} {100 * r:.2f}%" for a, r in self.positives.items())
        return (f"read {self.rows_read:,} rows, kept {self.rows_kept:,} (all-zero rows kept "
                f"with r = {self.neg_keep_rate:.4f}); train {self.train_rows:,} rows over "
                f"{self.train_days} day(s), test {self.test_rows:,}\n"
                f"true positive rate  {rates}")


def _find(raw: Path, name: str, required: bool = True) -> Path | None:
    for candidate in (raw / name, raw / "data" / name):
        if candidate.is_file():
            return candidate
    if required:
        raise DataError(f"KuaiRand file {name} not found (looked in {raw} and {raw / 'data'})",
                        file=str(raw / name))
    return None


def _read_csv(path: Path, columns) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, usecols=lambda c: c in set(columns))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable KuaiRand CSV: {exc}", file=str(path)) from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"missing columns {missing}", file=str(path), column=missing[0])
    return frame


def _categorical(values: pd.Series) -> np.ndarray:
    """A feature column as int64 ids (numbers) or strings (anything else); missing -> NA/-1."""
    if pd.api.types.is_numeric_dtype(values):
        return values.fillna(-1).astype(np.int64).to_numpy()
    return values.fillna(MISSING).astype(str).to_numpy()


def _first_tag(tags: pd.Series) -> pd.Series:
    return tags.fillna(MISSING).astype(str).str.split(",").str[0].str.strip()


def _keep_rate(n_positive: int, n_zero: int, options: KuaiRandOptions) -> float:
    if options.neg_keep_rate != "auto":
        return options.neg_keep_rate
    if n_zero == 0:
        return 1.0
    return float(np.clip((options.target_rows - n_positive) / n_zero, 0.0, 1.0))


def _reported(group: np.ndarray, n_groups: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per group a uniform target and the target plus two of the other three actions."""
    target = rng.integers(0, len(ACTIONS), n_groups)
    # Two of the three other actions: drop one of them uniformly.
    dropped = (target + 1 + rng.integers(0, len(ACTIONS) - 1, n_groups)) % len(ACTIONS)
    reported = np.ones((n_groups, len(ACTIONS)), dtype=bool)
    reported[np.arange(n_groups), dropped] = False
    return target[group], reported[group]


def build_kuairand(raw: str | Path, out: str | Path, options: KuaiRandOptions = KuaiRandOptions(),
                   *, overwrite: bool = False, progress: Callable[[str], None] | None = None
                   ) -> KuaiRandReport:
    """Apply the recipe to the KuaiRand-Pure files in `raw`, writing the data set to `out`
    (staged, see `malt.outputs.staged_output`: an existing data set there is replaced only with
    `overwrite`)."""
    say = progress or (lambda _: None)
    raw, out = Path(raw), Path(out)
    OutputDir(out, DATA_KIND).check_writable(overwrite=overwrite)
    logs = [_find(raw, name) for name in STANDARD_LOGS]
    if options.random_log:
        logs.append(_find(raw, RANDOM_LOG))
    frame = pd.concat([_read_csv(p, LOG_COLUMNS) for p in logs], ignore_index=True)
    say(f"  read {len(frame):,} log rows from {len(logs)} file(s)")
    users = _read_csv(_find(raw, USER_FILE), ("user_id", *USER_FEATURES))
    videos = _read_csv(_find(raw, VIDEO_FILE), ("video_id", *VIDEO_FEATURES))
    videos["tag"] = _first_tag(videos["tag"])
    rng = np.random.default_rng(options.seed)

    frame = frame.sort_values("time_ms", kind="stable").reset_index(drop=True)
    truth = frame[list(ACTIONS)].fillna(0).to_numpy() > 0
    cut = np.quantile(frame["time_ms"].to_numpy(), options.train_share, method="higher")
    is_train = frame["time_ms"].to_numpy() <= cut
    any_positive = truth.any(1)
    sampled = is_train | options.sample_test
    rate = _keep_rate(int((any_positive & sampled).sum()),
                      int((~any_positive & sampled).sum()), options)
    keep = any_positive | ~sampled | (rng.random(len(frame)) < rate)
    frame, truth, is_train = frame[keep].reset_index(drop=True), truth[keep], is_train[keep]

    if options.reported_per == "video":
        codes, videos_seen = pd.factorize(frame["video_id"])
        target, reported = _reported(codes, len(videos_seen), rng)
    else:
        target, reported = _reported(np.arange(len(frame)), len(frame), rng)
    observed = truth & reported

    frame = frame.merge(users, on="user_id", how="left").merge(videos, on="video_id", how="left")
    table = _table(frame, target, truth, observed, reported)
    with staged_output(out, DATA_KIND, overwrite=overwrite) as stage:
        _write(stage, table, frame["date"].to_numpy(), is_train, say)
    return KuaiRandReport(rows_read=int(len(keep)), rows_kept=int(len(frame)),
                          neg_keep_rate=rate, train_rows=int(is_train.sum()),
                          test_rows=int((~is_train).sum()),
                          train_days=len(np.unique(frame["date"].to_numpy()[is_train])),
                          positives=dict(zip(ACTIONS, truth.mean(0).tolist())))


def feature_columns() -> dict[str, list[str]]:
    """Field names per group, as written."""
    return {"user": [USER_FIELD, *USER_FEATURES],
            "ad": ["video_id", *VIDEO_FEATURES],
            "context": ["tab"]}


def _table(frame: pd.DataFrame, target: np.ndarray, truth: np.ndarray, observed: np.ndarray,
           reported: np.ndarray) -> pa.Table:
    columns: dict[str, pa.Array] = {"user_id": pa.array(frame["user_id"].to_numpy(np.int64)),
                                    USER_FIELD: pa.array(frame["user_id"].to_numpy(np.int64))}
    for group in feature_columns().values():
        for name in group:
            if name != USER_FIELD:
                columns[name] = pa.array(_categorical(frame[name]))
    columns["target_action"] = pa.array(np.array(ACTIONS)[target])
    for j, action in enumerate(ACTIONS):
        columns[action] = pa.array(observed[:, j].astype(np.float32))
    for j, action in enumerate(ACTIONS):
        columns[f"true_{action}"] = pa.array(truth[:, j].astype(np.float32))
    for j, action in enumerate(ACTIONS):
        columns[f"reported_{action}"] = pa.array(reported[:, j].astype(np.float32))
    return pa.table(columns)


def schema_toml() -> str:
    def strings(values) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    lines = ["# Written by `malt data kuairand-sim` (KAML paper's KuaiRand-Pure recipe).",
             'name = "kuairand-sim"', 'user_column = "user_id"',
             f"labels = {strings(ACTIONS)}", 'campaign_column = "video_id"',
             'target_action_column = "target_action"',
             f"true_labels = {strings(f'true_{a}' for a in ACTIONS)}",
             f"reported_labels = {strings(f'reported_{a}' for a in ACTIONS)}", "", "[fields]"]
    lines += [f"{group} = {strings(names)}" for group, names in feature_columns().items()]
    return "\n".join(lines) + "\n"


def _write(out: Path, table: pa.Table, date: np.ndarray, is_train: np.ndarray,
           say: Callable[[str], None]) -> None:
    train_dates = np.unique(date[is_train])
    test = np.flatnonzero(~is_train)
    if len(test) == 0 or len(train_dates) == 0:
        raise DataError("the time split leaves no training or no test rows; the logs are too "
                        "short", file=str(out))
    for index, day in enumerate(train_dates):
        rows = np.flatnonzero(is_train & (date == day))
        write_day(day_path(out, "train", index), table.take(pa.array(rows)))
        say(f"  train day {index} ({day}): {len(rows):,} rows")
    write_day(day_path(out, "test", 0), table.take(pa.array(test)))
    say(f"  test: {len(test):,} rows")
    vocab_columns = ["user_id", *(c for group in feature_columns().values() for c in group)]
    for column in vocab_columns:
        ids = pd.unique(table[column].to_numpy(zero_copy_only=False))
        write_vocab(out / "vocabs", column, [str(v) for v in sorted(ids, key=str)])
    atomic_write_text(out / "schema.toml", schema_toml())
