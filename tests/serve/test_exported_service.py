"""The service scoring an ONNX file of `malt export` (`malt serve --export FILE`): the rows of a
test day sent to it give the numbers `malt predict` writes for the same file, calibrated when
the export holds the calibrators and not when it was exported without them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("onnxruntime")

from fastapi.testclient import TestClient  # noqa: E402

from malt.cli import main  # noqa: E402
from malt.data.schema import MAC  # noqa: E402
from malt.deploy.export import export  # noqa: E402
from malt.runs.load import load_run  # noqa: E402
from malt.serve.app import create_app  # noqa: E402
from malt.serve.model import ModelSource, ServedModel  # noqa: E402

OUTPUTS = ("p_last", "p_first")
PARITY = 1e-5
"""ONNX Runtime against the eager model of `malt predict`."""


def client_for(path: Path) -> TestClient:
    model = ServedModel.load(ModelSource("export", str(path)))
    return TestClient(create_app(model, load=ServedModel.load, max_rows=1000, batch_rows=4096,
                                 batch_wait_ms=0.0))


def predicted(run: Path, day: Path, out: Path, *flags: str) -> np.ndarray:
    assert main(["predict", "--run", str(run), "--data", str(day), "--out", str(out),
                 *flags]) == 0
    return pq.read_table(out).select(list(OUTPUTS)).to_pandas().to_numpy()


def scores(client: TestClient, rows: list[dict], **body) -> tuple[np.ndarray, dict]:
    response = client.post("/predict", json={"rows": rows, **body})
    assert response.status_code == 200, response.text
    answer = response.json()
    return np.stack([answer["predictions"][name] for name in OUTPUTS], 1), answer


@pytest.fixture(scope="module")
def day(test_rows, tmp_path_factory) -> Path:
    import pyarrow as pa

    path = tmp_path_factory.mktemp("exported") / "day.parquet"
    pq.write_table(pa.Table.from_pylist(test_rows), path)
    return path


@pytest.mark.parametrize("calibrated", [True, False])
def test_an_exported_file_gives_the_scores_of_malt_predict(calibrated, run, day, test_rows,
                                                           tmp_path):
    path = tmp_path / "model.onnx"
    export(load_run(run), path, calibrated=calibrated)
    offline = predicted(run, day, tmp_path / "p.parquet",
                        *(() if calibrated else ("--uncalibrated",)))
    with client_for(path) as client:
        bounds = (0, 1, 70, len(test_rows))
        answers = [scores(client, test_rows[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]
        metadata = client.get("/metadata").json()
        raw = client.post("/predict", json={"rows": test_rows[:3], "calibrated": False})
    online = np.concatenate([probs for probs, _ in answers])
    assert np.abs(online - offline).max() <= PARITY
    assert [a["calibrated"] for _, a in answers] == [calibrated] * 3
    assert sum(a["oov"][MAC.fields[0].name] for _, a in answers) == len(test_rows[::5])
    assert metadata["export"] == str(path) and metadata["engine"] == "onnx"
    assert metadata["run"] == str(run)
    assert (metadata["calibration"] or {}).get("method") == ("platt" if calibrated else None)
    if calibrated:  # the graph holds the calibrators: it has no raw scores to give
        assert raw.status_code == 422 and raw.json()["field"] == "calibrated"
    else:
        assert raw.status_code == 200 and not raw.json()["calibrated"]


def test_an_exported_file_refuses_malformed_rows_naming_the_field(run, test_rows, tmp_path):
    path = tmp_path / "model.onnx"
    export(load_run(run), path)
    field = MAC.fields[1].name
    with client_for(path) as client:
        missing = client.post("/predict", json={"rows": [
            {k: v for k, v in row.items() if k != field} for row in test_rows[:2]]})
        mistyped = client.post("/predict", json={"rows": [dict(test_rows[0], **{field: 0.5})]})
        reload = client.post("/admin/reload", json={"export": str(tmp_path / "none.onnx")})
        still = scores(client, test_rows[:2])[1]
    assert missing.status_code == 422 and missing.json()["field"] == field
    assert mistyped.status_code == 422 and mistyped.json()["field"] == field
    assert reload.status_code == 422 and reload.json()["field"] == "export"
    assert still["version"].startswith("model-")
