"""The scoring service, as a client meets it: the rows of a test day sent to it give the
numbers `malt predict` writes for the same file (calibrated and not, both engines); malformed
requests get a 4xx naming the field; metadata, health and metrics say what is served."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

import malt  # noqa: E402
from malt.cli import main  # noqa: E402
from malt.data.schema import MAC  # noqa: E402
from malt.deploy.predict import Scorer, file_sources  # noqa: E402
from malt.runs.load import load_run  # noqa: E402
from malt.serve.app import create_app  # noqa: E402
from malt.serve.model import ModelSource, ServedModel  # noqa: E402
from malt.serve.requests import ARROW_STREAM  # noqa: E402

OUTPUTS = ("p_last", "p_first")
PARITY = 1e-6


@pytest.fixture(scope="module")
def unlabelled(test_rows, tmp_path_factory) -> Path:
    import pyarrow as pa

    path = tmp_path_factory.mktemp("serve") / "day.parquet"
    pq.write_table(pa.Table.from_pylist(test_rows), path, row_group_size=64)
    return path


def client_for(run: Path, *, engine: str = "torch", **options) -> TestClient:
    settings = {"max_rows": 1000, "batch_rows": 4096, "batch_wait_ms": 0.0, **options}
    model = ServedModel.load(ModelSource("run", str(run)), engine=engine)
    return TestClient(create_app(model, load=ServedModel.load, **settings))


@pytest.fixture(scope="module")
def service(run):
    with client_for(run) as client:
        yield client


def predicted(run: Path, day: Path, out: Path, *flags: str) -> np.ndarray:
    assert main(["predict", "--run", str(run), "--data", str(day), "--out", str(out),
                 *flags]) == 0
    return pq.read_table(out).select(list(OUTPUTS)).to_pandas().to_numpy()


def served(client: TestClient, rows: list[dict], **body) -> dict:
    response = client.post("/predict", json={"rows": rows, **body})
    assert response.status_code == 200, response.text
    return response.json()


def as_array(answer: dict) -> np.ndarray:
    return np.stack([answer["predictions"][name] for name in OUTPUTS], 1)


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_the_service_gives_the_scores_of_malt_predict(engine, run, test_rows, unlabelled,
                                                      tmp_path):
    if engine == "onnx":
        pytest.importorskip("onnxruntime")
    offline = predicted(run, unlabelled, tmp_path / "cal.parquet", "--engine", engine)
    raw = predicted(run, unlabelled, tmp_path / "raw.parquet", "--engine", engine,
                    "--uncalibrated")
    assert not np.allclose(offline, raw)  # the calibrators change the numbers
    with client_for(run, engine=engine) as client:
        # in several requests of several sizes, as a service is called
        bounds = (0, 1, 50, 100, len(test_rows))
        answers = [served(client, test_rows[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]
        online = np.concatenate([as_array(a) for a in answers])
        assert all(a["calibrated"] for a in answers)
        assert np.abs(online - offline).max() <= PARITY
        uncalibrated = served(client, test_rows, calibrated=False)
        assert not uncalibrated["calibrated"]
        assert np.abs(as_array(uncalibrated) - raw).max() <= PARITY


def test_out_of_vocabulary_ids_are_counted_as_malt_predict_counts_them(run, test_rows,
                                                                       unlabelled):
    scorer = Scorer(load_run(run))
    for _ in scorer.batches(file_sources(unlabelled)):
        pass
    with client_for(run) as client:
        answer = served(client, test_rows)
        assert answer["oov"] == scorer.report.oov
        assert answer["oov"][MAC.fields[0].name] == len(test_rows[::5])
        text = client.get("/metrics").text
    column = MAC.fields[0].name
    assert f'malt_oov_ids_total{{column="{column}"}} {len(test_rows[::5])}' in text
    assert f"malt_rows_scored_total {len(test_rows)}" in text
    rate = float(text.split(f'malt_oov_rate{{column="{column}"}} ')[1].split()[0])
    assert rate == pytest.approx(len(test_rows[::5]) / len(test_rows))


def test_concurrent_requests_get_the_answers_of_single_ones(run, test_rows):
    """(That they share model calls: tests/serve/test_batching.py.)"""
    with client_for(run) as client:
        singles = [served(client, test_rows[i * 3:i * 3 + 3]) for i in range(16)]
    with client_for(run, batch_wait_ms=20.0) as client:
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda i: served(client, test_rows[i * 3:i * 3 + 3]),
                                     range(16)))
    # One model call over several requests may round a score differently in its last bit.
    for single, shared in zip(singles, together, strict=True):
        assert np.abs(as_array(shared) - as_array(single)).max() <= PARITY
        assert {**shared, "predictions": None} == {**single, "predictions": None}


@pytest.mark.parametrize("body, status, field", [
    (b"not json", 400, None),
    (b"[1, 2]", 422, None),
    (b'{"rows": {}}', 422, "rows"),
    (b'{"rows": []}', 422, "rows"),
    (b'{"rows": [1]}', 422, "rows[0]"),
    (b'{"rows": [], "calibrate": true}', 422, "calibrate"),
    (b'{"rows": [{"a": 1}], "calibrated": "yes"}', 422, "calibrated"),
])
def test_a_malformed_body_is_refused_naming_the_field(body, status, field, run):
    with client_for(run) as client:
        response = client.post("/predict", content=body)
    assert response.status_code == status
    assert response.json()["field"] == field
    assert "Traceback" not in response.text


def test_rows_that_break_the_schema_are_refused_naming_the_column(run, test_rows):
    field = MAC.fields[1].name
    sequence = MAC.id_sequences[0].name
    without = [{k: v for k, v in row.items() if k != field} for row in test_rows[:3]]
    mixed = [dict(row) for row in test_rows[:3]]
    mixed[1][field] = "an id"
    mixed[2][field] = [1]
    ragged = [dict(row) for row in test_rows[:3]]
    ragged[2][sequence] = ragged[2][sequence][:-1]
    floats = [dict(row, **{field: 1.5}) for row in test_rows[:3]]
    with client_for(run, max_rows=5) as client:
        for rows in (without, mixed, ragged, floats):
            response = client.post("/predict", json={"rows": rows})
            assert response.status_code == 422, response.text
            wrong = field if rows is not ragged else sequence
            assert response.json()["field"] == wrong, response.text
        error = client.post("/predict", json={"rows": ragged}).json()["error"]
        assert error.startswith(f"column '{sequence}', row 2: sequence has length")
        too_many = client.post("/predict", json={"rows": test_rows[:6]})
        assert too_many.status_code == 413 and too_many.json()["field"] == "rows"
        # the service goes on answering
        assert served(client, test_rows[:5])["rows"] == 5
        text = client.get("/metrics").text
    assert 'malt_requests_total{path="/predict",status="422"} 5' in text
    assert 'malt_requests_total{path="/predict",status="413"} 1' in text
    assert 'malt_request_seconds_bucket{path="/predict",le="+Inf"} 7' in text


def test_health_and_metadata_say_what_is_served(run):
    with client_for(run) as client:
        health = client.get("/health").json()
        metadata = client.get("/metadata").json()
    assert health["status"] == "ok"
    assert health["version"] == metadata["version"]
    assert metadata["version"].startswith("run-")
    assert metadata["parent"] is None
    assert metadata["views"] == ["last", "first"]
    assert metadata["outputs"] == list(OUTPUTS)
    assert metadata["calibration"]["method"] == "platt"
    assert metadata["calibration"]["days"] == ["train-02"]
    assert metadata["schema"]["fields"] == [f.name for f in MAC.fields]
    assert metadata["schema"]["id_sequences"] == {s.name: s.length for s in MAC.id_sequences}
    assert metadata["schema"]["ragged_sequences"] is False
    assert json.loads(json.dumps(metadata)) == metadata


def test_reload_swaps_in_a_recalibrated_run_as_a_new_version(run, test_rows, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    malt.load_run(copy).calibrate("isotonic")
    with client_for(run) as client:
        before = served(client, test_rows[:20])
        swapped = client.post("/admin/reload", json={"run": str(copy)})
        assert swapped.status_code == 200, swapped.text
        after = served(client, test_rows[:20])
        missing = client.post("/admin/reload", json={"run": str(tmp_path / "none")})
        assert missing.status_code == 422 and missing.json()["field"] == "run"
        assert served(client, test_rows[:20]) == after  # still the swapped-in model
    assert swapped.json() == {"previous": before["version"], "version": after["version"]}
    assert before["version"] != after["version"]
    assert not np.allclose(as_array(before), as_array(after))


def arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_an_arrow_body_is_scored_as_its_rows_in_json(run, test_rows, unlabelled):
    table = pq.read_table(unlabelled)
    headers = {"content-type": ARROW_STREAM}
    with client_for(run) as client:
        as_json = served(client, test_rows)
        response = client.post("/predict", content=arrow_body(table), headers=headers)
        raw = client.post("/predict?calibrated=false", content=arrow_body(table),
                          headers=headers)
        garbage = client.post("/predict", content=b"not arrow", headers=headers)
        empty = client.post("/predict", content=arrow_body(table.slice(0, 0)),
                            headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == as_json
    assert not raw.json()["calibrated"]
    assert garbage.status_code == 400 and "Arrow" in garbage.json()["error"]
    assert empty.status_code == 422 and empty.json()["field"] == "rows"


JSON_VALUES = st.recursive(
    # JSON has no NaN or infinity: a client's encoder refuses them (a raw body is tested apart)
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=21) | st.dictionaries(st.text(max_size=2), inner,
                                                                 max_size=2), max_leaves=25)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from([MAC.user_column, MAC.fields[0].name, MAC.id_sequences[0].name,
                               MAC.float_sequences[0].name]),
       value=JSON_VALUES, row=st.integers(0, 2))
def test_any_json_value_is_scored_or_refused_naming_its_column(column, value, row, run,
                                                               test_rows, service):
    rows = [dict(r) for r in test_rows[:3]]
    rows[row][column] = value
    response = service.post("/predict", json={"rows": rows})
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["field"] == column


def test_requests_during_a_reload_are_all_answered(run, test_rows):
    with client_for(run) as client:
        first = served(client, test_rows[:2])["version"]
        with ThreadPoolExecutor(4) as pool:
            answers = pool.map(lambda i: client.post(
                "/predict", json={"rows": test_rows[i % 50:i % 50 + 2]}), range(40))
            reloads = [client.post("/admin/reload") for _ in range(3)]
            statuses = [a.status_code for a in answers]
    assert statuses == [200] * 40
    assert [r.status_code for r in reloads] == [200] * 3
    # the same run read again: the same version
    assert {r.json()["version"] for r in reloads} == {first}


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_tokens_in_a_raw_body_are_scored_or_refused_naming_the_column(
        token, test_rows, service):
    rows = [dict(r) for r in test_rows[:2]]
    rows[1][MAC.user_column] = "__TOKEN__"
    body = json.dumps({"rows": rows}).replace('"__TOKEN__"', token)
    response = service.post("/predict", content=body,
                            headers={"content-type": "application/json"})
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["field"] == MAC.user_column
