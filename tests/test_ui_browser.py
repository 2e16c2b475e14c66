"""Slow: the MLflow UI as users meet it, in a real headless Chromium against a real server."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from catdog import training
from conftest import free_port, start_server, store_overrides


@pytest.mark.slow
def test_printed_links_open_the_runs_view_with_datasets(make_cfg, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("needs chromium (`make test-full` installs it)")
    store = [*store_overrides(tmp_path), "tracking.experiment=ui", "train.log_model=false"]
    training.train(make_cfg("cnn", store, "seed=7"))
    experiment_id = mlflow.get_experiment_by_name("ui").experiment_id
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = start_server(command, f"http://127.0.0.1:{port}/health", env, timeout=90)
    try:
        url = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}?workflowType=machine_learning"
        flags = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path}/profile",
            "--virtual-time-budget=20000",
            "--window-size=1500,900",
        ]
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        assert "cnn-seed7" in dom, "the runs table did not show the run"
        assert "cats_and_dogs-train" in dom, "the Dataset column did not show the logged inputs"
        shot = tmp_path / "ui.png"
        subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
        assert shot.stat().st_size > 30_000
    finally:
        server.terminate()
        server.wait(timeout=30)
