"""`malt predict` and `Run.predict`: unlabelled rows in, one probability per view out."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import malt
from malt.cli import main
from malt.data.schema import MAC
from malt.deploy.predict import (
    Scorer,
    file_sources,
    predict_file,
    table_source,
    written_by_malt,
)
from malt.errors import ConfigError, DataError
from malt.eval.predictions import Predictions
from malt.jobs.train import train_run
from malt.locks import lock_beside, output_lock
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.load import load_run
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS

VIEWS = ("last", "first", "linear")
COLUMNS = ["p_last", "p_first", "p_linear", MAC.user_column]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_random_dataset(tmp_path_factory.mktemp("predict") / "data", days=3, rows=301,
                                row_group_size=100)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A finished MoAE run on `data` (main last, auxiliary first, linear and cat)."""
    out = tmp_path_factory.mktemp("predict") / "run"
    config = RunConfig.from_dict({
        "seed": 3, "data": {"path": str(data)},
        "task": {"main": "last", "aux": ["first", "linear", "cat"]},
        "train": {"batch_size": 64}, "model": {"name": "moae", **SMALL_BLOCKS}})
    train_run(config, out)
    return out


@pytest.fixture
def unlabelled(data, tmp_path):
    """The test day without its label columns."""
    table = pq.read_table(data / "test" / "test.parquet").drop_columns(list(MAC.labels))
    path = tmp_path / "unlabelled.parquet"
    pq.write_table(table, path, row_group_size=100)
    return path


def saved_predictions(run) -> Predictions:
    return Predictions.load(RunDir(run).predictions_file)


def test_a_file_without_labels_gets_the_documented_columns_and_the_runs_scores(
        run, unlabelled, tmp_path):
    out = tmp_path / "preds.parquet"
    report = predict_file(Scorer(load_run(run), keep=("ad_feat0",)),
                          file_sources(unlabelled), out)
    table = pq.read_table(out)
    assert table.column_names == [*COLUMNS, "ad_feat0"]
    assert table.schema.field("p_last").type == pa.float32()
    source = pq.read_table(unlabelled)
    assert table[MAC.user_column].equals(source[MAC.user_column])
    assert table["ad_feat0"].equals(source["ad_feat0"])
    saved = saved_predictions(run)
    for j, view in enumerate(VIEWS):
        np.testing.assert_allclose(table[f"p_{view}"].to_numpy(), saved.probs[:, j], atol=1e-6)
    assert report.rows == source.num_rows == 301
    assert report.metrics is None


def test_rows_stream_one_chunk_at_a_time(run, unlabelled):
    scorer = Scorer(load_run(run))
    sizes = [b.num_rows for b in scorer.batches(file_sources(unlabelled))]
    assert sizes == [100, 100, 100, 1]


def test_labels_are_ignored_unless_evaluating(run, data, unlabelled, tmp_path):
    trained = load_run(run)
    with_labels = tmp_path / "with.parquet"
    predict_file(Scorer(trained), file_sources(data / "test" / "test.parquet"), with_labels)
    without = tmp_path / "without.parquet"
    predict_file(Scorer(trained), file_sources(unlabelled), without)
    assert pq.read_table(with_labels).equals(pq.read_table(without))
    with pytest.raises(DataError, match="missing columns"):
        predict_file(Scorer(trained, evaluate=True), file_sources(unlabelled),
                     tmp_path / "eval.parquet")
    assert not (tmp_path / "eval.parquet").exists()


def test_evaluation_reproduces_the_runs_metrics(run, data, tmp_path):
    report = predict_file(Scorer(load_run(run), evaluate=True), file_sources(data),
                          tmp_path / "preds.parquet")
    saved = RunDir(run).load_metrics()
    assert set(report.metrics) == set(VIEWS)
    for view in VIEWS:
        assert report.metrics[view].auc == pytest.approx(saved.views[view].auc, abs=1e-6)
        assert report.metrics[view].gauc == pytest.approx(saved.views[view].gauc, abs=1e-6)


def test_unknown_ids_are_counted_and_scored_on_the_oov_row(run, unlabelled, tmp_path):
    table = pq.read_table(unlabelled)
    ids = table["ad_feat1"].to_numpy().copy()
    ids[:7] = 10_000
    changed = tmp_path / "changed.parquet"
    pq.write_table(table.set_column(table.column_names.index("ad_feat1"), "ad_feat1",
                                    pa.array(ids)), changed)
    trained = load_run(run)
    oov_row = trained.lookups["ad_feat1"].oov_index
    ids[:7] = oov_row  # the dense test vocabs map raw id i to row i
    as_oov = tmp_path / "as_oov.parquet"
    pq.write_table(table.set_column(table.column_names.index("ad_feat1"), "ad_feat1",
                                    pa.array(ids)), as_oov)
    report = predict_file(Scorer(trained), file_sources(changed), tmp_path / "a.parquet")
    assert report.oov["ad_feat1"] == 7 and report.oov["ad_feat0"] == 0
    predict_file(Scorer(trained), file_sources(as_oov), tmp_path / "b.parquet")
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))


def test_the_onnx_engine_scores_as_the_eager_model(run, unlabelled, tmp_path):
    trained = load_run(run)
    predict_file(Scorer(trained), file_sources(unlabelled), tmp_path / "torch.parquet")
    predict_file(Scorer(trained, engine="onnx"), file_sources(unlabelled),
                 tmp_path / "onnx.parquet")
    a, b = pq.read_table(tmp_path / "torch.parquet"), pq.read_table(tmp_path / "onnx.parquet")
    for view in VIEWS:
        assert np.abs(a[f"p_{view}"].to_numpy() - b[f"p_{view}"].to_numpy()).max() <= 1e-5


def test_small_model_batches_give_the_same_scores(run, unlabelled, tmp_path):
    trained = load_run(run)
    predict_file(Scorer(trained), file_sources(unlabelled), tmp_path / "big.parquet")
    predict_file(Scorer(trained, batch_size=7), file_sources(unlabelled),
                 tmp_path / "small.parquet")
    a, b = pq.read_table(tmp_path / "big.parquet"), pq.read_table(tmp_path / "small.parquet")
    np.testing.assert_allclose(a["p_last"].to_numpy(), b["p_last"].to_numpy(), atol=1e-6)


def test_a_mac_layout_directory_scores_its_test_days(run, data, tmp_path):
    assert [s.path for s in file_sources(data)] == [data / "test" / "test.parquet"]
    report = predict_file(Scorer(load_run(run)), file_sources(data), tmp_path / "p.parquet")
    assert report.rows == 301


def test_a_directory_of_files_is_scored_in_name_order(run, unlabelled, tmp_path):
    folder = tmp_path / "days"
    folder.mkdir()
    table = pq.read_table(unlabelled)
    pq.write_table(table.slice(0, 50), folder / "day-10.parquet")
    pq.write_table(table.slice(50), folder / "day-2.parquet")
    out = predict_file(Scorer(load_run(run)), file_sources(folder), tmp_path / "p.parquet")
    users = pq.read_table(tmp_path / "p.parquet")[MAC.user_column].to_numpy()
    expected = np.concatenate([table[MAC.user_column].to_numpy()[50:],
                               table[MAC.user_column].to_numpy()[:50]])
    np.testing.assert_array_equal(users, expected)
    assert out.sources == 2


def test_nothing_is_written_when_a_check_fails_or_scoring_breaks(run, unlabelled, tmp_path,
                                                                  monkeypatch):
    trained = load_run(run)
    out = tmp_path / "p.parquet"
    with pytest.raises(DataError, match="missing column") as err:
        predict_file(Scorer(trained, keep=("price",)), file_sources(unlabelled), out)
    assert err.value.column == "price"
    with pytest.raises(ConfigError, match="collide"):
        Scorer(trained, keep=("p_last",))
    scorer = Scorer(trained)
    calls = []

    def failing(inputs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("out of memory")
        return np.zeros((len(inputs["sparse"]), 3), dtype=np.float32)

    monkeypatch.setattr(scorer, "engine", failing)
    with pytest.raises(RuntimeError):
        predict_file(scorer, file_sources(unlabelled), out)
    assert list(tmp_path.iterdir()) == [unlabelled]


def test_an_existing_output_is_replaced_only_when_asked_and_only_when_malt_wrote_it(
        run, unlabelled, tmp_path):
    out = tmp_path / "p.parquet"
    predict_file(Scorer(load_run(run)), file_sources(unlabelled), out)
    assert written_by_malt(out)
    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        predict_file(Scorer(load_run(run)), file_sources(unlabelled), out)
    predict_file(Scorer(load_run(run)), file_sources(unlabelled), out, overwrite=True)
    assert pq.read_table(out).num_rows == 301
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.parquet", "unlabelled.parquet"]


@pytest.mark.parametrize("theirs", ["text", "parquet"])
def test_overwrite_never_replaces_a_file_malt_did_not_write(run, unlabelled, tmp_path, theirs):
    out = tmp_path / "notes.parquet"
    if theirs == "text":
        out.write_text("mine")
    else:
        pq.write_table(pa.table({"p_last": [0.5]}), out)
    before = out.read_bytes()
    with pytest.raises(ConfigError, match="notes.parquet was not written by malt"):
        predict_file(Scorer(load_run(run)), file_sources(unlabelled), out, overwrite=True)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.parquet", "unlabelled.parquet"]


def test_a_second_writer_of_a_prediction_file_is_refused(run, unlabelled, tmp_path):
    out = tmp_path / "p.parquet"
    with output_lock(lock_beside(out), out):
        with pytest.raises(ConfigError, match=f"p.parquet is being written by process "
                                              f"{os.getpid()}"):
            predict_file(Scorer(load_run(run)), file_sources(unlabelled), out)
    assert not out.exists()


def test_an_unfinished_run_or_missing_vocabs_are_refused(run, data, tmp_path):
    with pytest.raises(ConfigError, match="no malt run|not a run directory"):
        load_run(tmp_path)
    with pytest.raises(DataError, match="vocab file is missing"):
        load_run(run, vocabs=tmp_path)


def test_the_command_line_predicts_and_reports(run, unlabelled, tmp_path, capsys):
    out = tmp_path / "p.parquet"
    assert main(["predict", "--run", str(run), "--data", str(unlabelled), "--out", str(out),
                 "--keep", "ad_feat0"]) == 0
    text = capsys.readouterr().out
    assert "wrote 301 rows" in text and "p_last, p_first, p_linear, user_id, ad_feat0" in text
    assert "out-of-vocabulary ids: none" in text
    assert main(["predict", "--run", str(run), "--data", str(unlabelled), "--out",
                 str(out)]) == 3
    assert "exists" in capsys.readouterr().err


def test_the_command_line_exports(run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "inputs:  sparse int64 ['batch', 16]" in text and "p_linear float32" in text
    assert out.is_file() and (tmp_path / "m.onnx.json").is_file()


def test_the_python_api_scores_a_data_frame_as_the_file(run, unlabelled):
    loaded = malt.load_run(run)
    assert loaded.metrics.main == "last"
    frame = pq.read_table(unlabelled).to_pandas()
    scores = loaded.predict(frame, keep=("ad_feat0",))
    assert list(scores.columns) == [*COLUMNS, "ad_feat0"]
    saved = saved_predictions(run)
    np.testing.assert_allclose(scores["p_first"].to_numpy(), saved.probs[:, 1], atol=1e-6)
    from_file = loaded.predict(unlabelled)
    np.testing.assert_array_equal(from_file["p_last"].to_numpy(), scores["p_last"].to_numpy())


def test_an_in_memory_table_is_checked_as_a_file_is(run):
    table = pa.table({"uid": [1, 2]})
    with pytest.raises(DataError, match="missing columns"):
        list(Scorer(load_run(run)).batches([table_source(table)]))


@pytest.mark.cuda
def test_scores_on_a_gpu_are_the_scores_on_the_cpu(run, unlabelled, tmp_path):
    tables = {}
    for device in ("cpu", "cuda"):
        predict_file(Scorer(load_run(run), device=device), file_sources(unlabelled),
                     tmp_path / f"{device}.parquet")
        tables[device] = pq.read_table(tmp_path / f"{device}.parquet")
    assert tables["cuda"].column_names == COLUMNS
    for column in COLUMNS[:-1]:
        np.testing.assert_allclose(tables["cuda"][column].to_numpy(),
                                   tables["cpu"][column].to_numpy(), atol=1e-5)


def test_auto_device_picks_cuda_for_onnx_only_with_its_cuda_provider(monkeypatch):
    import onnxruntime
    import torch

    from malt.deploy.engines import scoring_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert scoring_device("onnx", "auto").type == "cpu"
    assert scoring_device("onnx", "cpu").type == "cpu"
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert scoring_device("onnx", "auto").type == "cuda"


CONVERSIONS = [dict(convert_threads=1, ahead=False), dict(convert_threads=1, ahead=True),
               dict(convert_threads=2, ahead=False), dict(convert_threads=3, ahead=True)]


def conversion_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("malt-convert",
                                                                        "malt-ahead"))]


@pytest.mark.parametrize("evaluate", [False, True])
def test_the_scores_do_not_depend_on_how_chunks_are_converted(run, data, tmp_path, evaluate):
    trained = load_run(run)
    day = data / "test" / "test.parquet"
    tables, reports = [], []
    for i, how in enumerate(CONVERSIONS):
        out = tmp_path / f"p{i}.parquet"
        reports.append(predict_file(Scorer(trained, evaluate=evaluate, **how),
                                    file_sources(day), out))
        tables.append(pq.read_table(out))
    for table, report in zip(tables[1:], reports[1:], strict=True):
        assert table.equals(tables[0])
        for view in VIEWS:  # bit for bit
            np.testing.assert_array_equal(table[f"p_{view}"].to_numpy().view(np.uint32),
                                          tables[0][f"p_{view}"].to_numpy().view(np.uint32))
        assert report.oov == reports[0].oov
        assert report.metrics == reports[0].metrics
    assert not conversion_threads()


def test_a_bad_chunk_is_reported_with_its_file_and_row_and_nothing_is_written(
        run, unlabelled, tmp_path):
    table = pq.read_table(unlabelled)
    sims = table["mm_feat0_seq"].combine_chunks()
    values = sims.flatten().to_numpy().copy()
    values[150 * MAC.float_sequences[0].length] = np.inf  # row 150: the second chunk
    table = table.set_column(table.schema.get_field_index("mm_feat0_seq"), "mm_feat0_seq",
                             pa.ListArray.from_arrays(sims.offsets, pa.array(values)))
    bad = tmp_path / "bad.parquet"
    pq.write_table(table, bad, row_group_size=100)
    for i, how in enumerate(CONVERSIONS):
        out = tmp_path / f"p{i}.parquet"
        with pytest.raises(DataError) as err:
            predict_file(Scorer(load_run(run), **how), file_sources(bad), out)
        assert (err.value.file, err.value.column, err.value.row) == \
            (str(bad), "mm_feat0_seq", 150)
        assert not out.exists()
    assert sorted(tmp_path.iterdir()) == sorted([bad, unlabelled])
    assert not conversion_threads()


@pytest.mark.parametrize("ahead", [False, True])
def test_conversion_runs_at_most_one_chunk_ahead_of_scoring(run, unlabelled, monkeypatch,
                                                            ahead):
    scorer = Scorer(load_run(run), convert_threads=2, ahead=ahead)
    converted, ahead_at_scoring = [], []
    convert, engine = scorer._convert, scorer.engine

    def counting_convert(*args):
        chunk = convert(*args)
        converted.append(chunk)
        return chunk

    def counting_engine(inputs):
        time.sleep(0.2)  # a slow model: a free-running producer would convert everything
        ahead_at_scoring.append(len(converted) - len(ahead_at_scoring) - 1)
        return engine(inputs)

    monkeypatch.setattr(scorer, "_convert", counting_convert)
    monkeypatch.setattr(scorer, "engine", counting_engine)
    assert sum(b.num_rows for b in scorer.batches(file_sources(unlabelled))) == 301
    assert len(ahead_at_scoring) == 4  # one model call per chunk of 100 rows
    assert max(ahead_at_scoring) == (1 if ahead else 0)
    assert ahead_at_scoring[-1] == 0  # nothing is left to convert at the last chunk


@pytest.mark.parametrize("ahead", [False, True])
def test_an_interrupted_prediction_stops_its_threads_and_writes_nothing(
        run, unlabelled, tmp_path, monkeypatch, ahead):
    scorer = Scorer(load_run(run), convert_threads=2, ahead=ahead)
    calls = []

    def interrupted(inputs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return np.zeros((len(inputs["sparse"]), 3), dtype=np.float32)

    monkeypatch.setattr(scorer, "engine", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict_file(scorer, file_sources(unlabelled), tmp_path / "p.parquet")
    assert list(tmp_path.iterdir()) == [unlabelled]
    assert not conversion_threads()
