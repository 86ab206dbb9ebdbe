"""The `labels` study (Tables 2 and 8) against a direct computation from the parquet files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from malt.data.cache import prepare
from malt.data.schema import MAC
from malt.experiments.label_stats import label_statistics
from malt.experiments.mac import MAC_STUDIES as STUDIES
from malt.experiments.presets import PRESETS
from malt.experiments.study import Study
from malt.outputs import OutputDir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from malt.sources.simulate import simulate, size_config

    root = tmp_path_factory.mktemp("tiny")
    simulate(size_config("tiny", seed=3, users=400), root, overwrite=True)
    return root


def direct_weights(root: Path) -> np.ndarray:
    """Every row's label weights [N, 4] read straight from the day files."""
    files = sorted((root / "train").glob("*.parquet")) + [root / "test" / "test.parquet"]
    return np.concatenate([np.stack([pq.read_table(f, columns=[label])[label].to_numpy()
                                     for label in MAC.labels], 1) for f in files])


def test_labels_study_matches_numpy(tiny, tmp_path):
    w = direct_weights(tiny)
    ctx = Study(preset="smoke", setup=PRESETS["smoke"].mac, data=tiny,
                output=OutputDir(tmp_path, "study"), labels=MAC.labels, seeds=(1,),
                dataset=prepare(tiny, MAC), say=lambda line: None)
    tables = dict(STUDIES["labels"][0](ctx).tables)
    ratio, mml = tables[""], tables["mml"]
    assert ratio.rows == ["Positive ratio", "Positives", "Mean weight of positives"]
    for j, label in enumerate(MAC.labels):
        positive = w[:, j] > 0
        assert ratio.stats("Positive ratio", label)[0] == pytest.approx(positive.mean())
        assert ratio.stats("Positives", label)[0] == positive.sum()
        assert ratio.stats("Mean weight of positives", label)[0] == \
            pytest.approx(w[positive, j].mean(), rel=1e-6)
    dda, linear = w[:, MAC.labels.index("mta")], w[:, MAC.labels.index("linear")]
    assert [c.key for c in mml.columns] == ["last", "first"]
    for label in ("last", "first"):
        positive = w[:, MAC.labels.index(label)] > 0
        assert mml.stats("MML", label)[0] == \
            pytest.approx((dda[positive] - linear[positive]).mean(), rel=1e-6, abs=1e-9)
    assert (ratio.stats("Positive ratio", "last")[0]
            < ratio.stats("Positive ratio", "linear")[0])
    assert ratio.notes[0].startswith(f"Data `{tiny}`: ")


def test_the_labels_table_names_the_data_as_every_table_does(tiny, tmp_path):
    """Not where the author's data lay: the study's own note (a path relative to the working
    directory), as the other tables show it."""
    ctx = Study(preset="smoke", setup=PRESETS["smoke"].mac, data=tiny,
                output=OutputDir(tmp_path, "study"), labels=MAC.labels, seeds=(1,),
                dataset=prepare(tiny, MAC), data_note="`small-data`", say=lambda line: None)
    ratio = dict(STUDIES["labels"][0](ctx).tables)[""]
    assert ratio.notes[0].startswith("Data `small-data`: ") and str(tiny) not in ratio.notes[0]


def test_statistics_without_dda_have_no_mml():
    w = np.array([[1.0, 0.0], [0.0, 0.5], [0.0, 0.0]])
    stats = label_statistics([w, w], ("last", "linear"))
    assert not stats.has_mml and np.isnan(stats.mml("last"))
    assert stats.rows == 6 and stats.positives.tolist() == [2, 2]
    assert stats.ratio("linear") == pytest.approx(1 / 3)
    assert stats.mean_positive_weight("linear") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="weights"):
        label_statistics([np.zeros((3, 3))], ("last", "linear"))
