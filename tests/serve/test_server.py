"""`malt serve` as a process: it listens, scores, and on SIGTERM answers the request in flight
before it exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

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
