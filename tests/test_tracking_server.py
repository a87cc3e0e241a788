"""A real `mlflow server` (PostgreSQL backend when the CI provides one) that dies mid-stage."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


@pytest.mark.slow
def test_stage_fails_fast_when_the_tracking_server_dies(tmp_path, monkeypatch):
    import mlflow

    from superionic.config import compose
    from superionic.tracking import log_metrics, stage_run

    from conftest import fresh_postgres_database

    backend = fresh_postgres_database() or f"sqlite:///{tmp_path / 'backend.db'}"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    server = subprocess.Popen(
        [mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", backend, "--default-artifact-root", str(tmp_path / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    try:
        assert _wait_healthy(url, 90), "mlflow server did not start"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
            monkeypatch.delenv(key, raising=False)
        cfg = compose()
        with pytest.raises(Exception) as info:
            with stage_run("funnel", cfg, sections=["screen"]):
                log_metrics({"before": 1.0})  # the server is alive: this lands
                os.killpg(server.pid, 9)  # ... and dies mid-stage
                server.wait(30)
                start = time.perf_counter()
                log_metrics({"after": 2.0})
        elapsed = time.perf_counter() - start
        print(f"stage failed {elapsed:.1f} s after the tracking server died")
        assert elapsed < 60, elapsed
        assert f"127.0.0.1:{port}" in str(info.value)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 9)
        mlflow.end_run()
