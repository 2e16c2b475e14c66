"""The team server restarts while a run logs through it: the run rides the outage out and
ends FINISHED with every epoch's metrics once, its plots and its model."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from helpers import stop_server, tracking_server

BIN = Path(sys.executable).parent
EPOCHS = 8


def _train(small_data, uri: str, root) -> list[str]:
    """A plain-CNN run of EPOCHS epochs on the small real images, logging through URI."""
    return [
        str(BIN / "catdog-train"),
        "model=cnn",
        f"data.dir={small_data}",
        f"train.epochs={EPOCHS}",
        "train.verbose=0",
        f"tracking.uri={uri}",
        "tracking.experiment=restart",
        f"paths.mlruns_dir={root}",
        f"hydra.run.dir={root}/out",
    ]


@pytest.mark.parametrize("stop", [signal.SIGTERM, pytest.param(signal.SIGKILL, marks=pytest.mark.slow)])
def test_a_run_rides_out_a_server_restart(small_data, tmp_path, stop):
    server, uri = tracking_server(tmp_path)
    port = int(uri.rsplit(":", 1)[1])
    client = MlflowClient(uri)
    command = _train(small_data, uri, tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 300
        while not _epochs_logged(client) >= 2:  # stop it mid-training, between two epochs' logs
            assert run.poll() is None and time.monotonic() < deadline, run.stdout.read()[-3000:]
            time.sleep(0.2)
        stop_server(server, stop)
        time.sleep(5)  # the outage: the run's next epochs log into a server that is not there
        server, _ = tracking_server(tmp_path, port=port)
        out = run.communicate(timeout=600)[0]
        assert run.returncode == 0, out[-3000:]
        _check_complete(client, uri)
    finally:
        run.kill()
        stop_server(server)


def _check_complete(client: MlflowClient, uri: str) -> None:
    [finished] = client.search_runs([client.get_experiment_by_name("restart").experiment_id])
    assert finished.info.status == "FINISHED"
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        steps = [m.step for m in client.get_metric_history(finished.info.run_id, key)]
        assert sorted(steps) == list(range(EPOCHS)), (key, steps)  # every epoch, once
    artifacts = {a.path for a in client.list_artifacts(finished.info.run_id, "plots")}
    assert {"plots/accuracy.png", "plots/confusion_matrix.png"} <= artifacts
    mlflow.set_tracking_uri(uri)
    assert mlflow.models.get_model_info(f"runs:/{finished.info.run_id}/model").model_uri


def _epochs_logged(client: MlflowClient) -> int:
    experiment = client.get_experiment_by_name("restart")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return len(client.get_metric_history(runs[0].info.run_id, "val_accuracy")) if runs else 0


@pytest.mark.slow
def test_a_long_outage_keeps_the_results_on_disk_for_a_later_upload(small_data, tmp_path):
    server, uri = tracking_server(tmp_path)
    port = int(uri.rsplit(":", 1)[1])
    client = MlflowClient(uri)
    command = _train(small_data, uri, tmp_path)
    # MLflow's retries shortened, so that the outage outlasts them within the test.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
           "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}  # fmt: skip
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 300
        while not _epochs_logged(client) >= 2:
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        stop_server(server, signal.SIGKILL)
        _, err = run.communicate(timeout=600)
        assert run.returncode == 1, err[-3000:]
        line = err.strip().splitlines()[-1]
        assert line.startswith("catdog-train: error: tracking server") and "catdog upload " in line, line
        folder = Path(line.rsplit("catdog upload ", 1)[1])
        assert (folder / "model.keras").is_file() and (folder / "history.json").is_file()

        server, _ = tracking_server(tmp_path, port=port)
        upload = subprocess.run(
            [str(BIN / "catdog"), "--tracking-uri", uri, "upload", str(folder)], capture_output=True, text=True, env=env
        )
        assert upload.returncode == 0, upload.stderr[-3000:]
        [finished] = client.search_runs([client.get_experiment_by_name("restart").experiment_id])
        assert finished.info.status == "FINISHED" and "test_accuracy" in finished.data.metrics
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            steps = [m.step for m in client.get_metric_history(finished.info.run_id, key)]
            assert sorted(steps) == list(range(EPOCHS)), (key, steps)
        mlflow.set_tracking_uri(uri)
        assert mlflow.models.get_model_info(f"runs:/{finished.info.run_id}/model").model_uri
    finally:
        run.kill()
        stop_server(server)
