"""Slow: the MLflow UI as users meet it, in a real headless Chromium against a real server."""

import subprocess

import mlflow
import pytest

from catdog import training
from helpers import chromium, stop_server, store_overrides, tracking_server


@pytest.mark.slow
def test_printed_links_open_the_runs_view_with_datasets(make_cfg, tmp_path):
    flags = [*chromium(tmp_path), "--virtual-time-budget=20000", "--window-size=1500,900"]
    store = [*store_overrides(tmp_path), "tracking.experiment=ui", "train.log_model=false"]
    training.train(make_cfg("cnn", store, "seed=7"))
    experiment_id = mlflow.get_experiment_by_name("ui").experiment_id
    server, uri = tracking_server(tmp_path, artifacts=False)
    try:
        url = f"{uri}/#/experiments/{experiment_id}?workflowType=machine_learning"
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        assert "cnn-seed7" in dom, "the runs table did not show the run"
        assert "cats_and_dogs-train" in dom, "the Dataset column did not show the logged inputs"
        shot = tmp_path / "ui.png"
        subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
        assert shot.stat().st_size > 30_000
    finally:
        stop_server(server)
