"""`malt serve` as a process: it listens, scores, on SIGHUP swaps in the model read again
without failing a request, and on SIGTERM answers the request in flight before it exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def in_flight(base: str) -> int:
    """Requests the service holds, less the one asking."""
    text = httpx.get(f"{base}/metrics").text
    return int(text.split("\nmalt_requests_in_flight ")[1].split()[0]) - 1


def wait_until_up(service: subprocess.Popen, base: str) -> None:
    while service.poll() is None:
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return
        except httpx.TransportError:
            threading.Event().wait(0.1)
    raise AssertionError(f"malt serve ended: {service.communicate()}")


def test_the_service_finishes_the_request_in_flight_on_sigterm(run, test_rows):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    # A long batching wait holds the request in the service while it is told to stop.
    service = subprocess.Popen(
        [sys.executable, "-m", "malt", "serve", "--run", str(run), "--port", str(port),
         "--batch-wait-ms", "1500"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        wait_until_up(service, base)
        answers: list[httpx.Response] = []
        client = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{base}/predict", json={"rows": test_rows[:7]}, timeout=60)))
        client.start()
        while in_flight(base) < 1:
            threading.Event().wait(0.01)
        service.send_signal(signal.SIGTERM)
        client.join()
        out, err = service.communicate(timeout=60)
    finally:
        if service.poll() is None:
            service.kill()
    assert service.returncode == 0, err
    assert answers[0].status_code == 200
    assert answers[0].json()["rows"] == 7
    assert f"on http://127.0.0.1:{port}" in out and "stopped" in out
    assert "Traceback" not in err


def test_a_sighup_while_the_model_loads_leaves_the_service_to_start(run, test_rows):
    faults = Path(__file__).resolve().parents[1] / "support" / "faults.py"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = subprocess.Popen(
        [sys.executable, str(faults), "serve-load", "1", "hangup", "--", "serve", "--run",
         str(run), "--port", str(port)], env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until_up(service, base)
        answer = httpx.post(f"{base}/predict", json={"rows": test_rows[:3]}, timeout=60)
        service.send_signal(signal.SIGTERM)
        _, err = service.communicate(timeout=60)
    finally:
        if service.poll() is None:
            service.kill()
    assert answer.status_code == 200 and answer.json()["rows"] == 3
    assert service.returncode == 0, err


def test_sighup_swaps_in_the_reexported_file_without_failing_a_request(run, test_rows,
                                                                       tmp_path):
    pytest.importorskip("onnxruntime")
    import shutil

    import malt
    from malt.deploy.export import export
    from malt.runs.load import load_run

    served, sidecar = tmp_path / "model.onnx", tmp_path / "model.onnx.json"
    export(load_run(run), served)
    recalibrated = tmp_path / "run"
    shutil.copytree(run, recalibrated)
    malt.load_run(recalibrated).calibrate("isotonic")
    export(load_run(recalibrated), tmp_path / "next.onnx")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "service.log"
    with log.open("w") as err:
        service = subprocess.Popen(
            [sys.executable, "-m", "malt", "serve", "--export", str(served), "--port",
             str(port)], env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.PIPE,
            stderr=err, text=True)
    try:
        wait_until_up(service, base)
        first = httpx.get(f"{base}/health").json()["version"]
        answers: list[httpx.Response] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=60) as http:
                while not stop.is_set():
                    answers.append(http.post(f"{base}/predict",
                                             json={"rows": test_rows[:20]}))

        thread = threading.Thread(target=client)
        thread.start()
        while len(answers) < 3:
            threading.Event().wait(0.01)
        # the new version, file and sidecar, replaced before the service is told
        (tmp_path / "next.onnx").replace(served)
        (tmp_path / "next.onnx.json").replace(sidecar)
        service.send_signal(signal.SIGHUP)
        while httpx.get(f"{base}/health").json()["version"] == first:
            threading.Event().wait(0.05)
        seen = len(answers)
        while len(answers) < seen + 3:  # scored by the new model
            threading.Event().wait(0.01)
        # a file that cannot be loaded leaves the model served in place
        served.write_bytes(b"not a model")
        service.send_signal(signal.SIGHUP)
        while "SIGHUP: reloading" not in log.read_text():
            threading.Event().wait(0.05)
        stop.set()
        thread.join()
        after = httpx.post(f"{base}/predict", json={"rows": test_rows[:20]})
        service.send_signal(signal.SIGTERM)
        service.communicate(timeout=60)
    finally:
        stop.set()
        if service.poll() is None:
            service.kill()
    assert service.returncode == 0, log.read_text()
    assert [a.status_code for a in answers] == [200] * len(answers)
    versions = [a.json()["version"] for a in answers]
    second = versions[-1]
    assert second != first and after.json()["version"] == second
    # one swap, between two answers: the old model's answers, then the new one's
    assert versions == [first] * versions.count(first) + [second] * versions.count(second)
    old, new = answers[0].json()["predictions"], answers[-1].json()["predictions"]
    assert not np.allclose(old["p_last"], new["p_last"])
    assert f"still serving {second}" in log.read_text()
    assert "Traceback" not in log.read_text()
