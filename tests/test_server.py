"""The team set-up: a real `mlflow server` on 127.0.0.1, written to and read back over HTTP."""

import contextlib
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from catdog import tracking, training
from catdog.report.build import build_report
from catdog.tuning import tune
from helpers import postgres_server, stop_server, tracking_server


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def server(request, tmp_path_factory):
    """The server over the project's default SQLite backend, or (slow suite) over a real
    PostgreSQL server, the team set-up."""
    root = tmp_path_factory.mktemp("server")
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(postgres_server()) if request.param == "postgresql" else None
        proc, uri = tracking_server(root, backend=backend)
        yield {"uri": uri, "root": root}
        stop_server(proc)


def test_runs_searches_and_reports_go_through_the_server(server, make_cfg, tmp_path):
    store = [f"paths.mlruns_dir={tmp_path}", f"tracking.uri={server['uri']}", "tracking.experiment=team"]
    run_id = training.train(make_cfg("cnn", store, "train.epochs=2")).run_id
    summary = tune(make_cfg("transfer", store, "search.retrain_seeds=0", config="tune"))

    client = MlflowClient(server["uri"])
    experiment = client.get_experiment_by_name("team")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied, not a path on this machine
    assert experiment.tags["mlflow.note.content"].startswith("catdog-study")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and len(client.get_metric_history(run_id, "val_accuracy")) == 2
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {
        f"cats_and_dogs-{s}" for s in ("train", "val", "test")
    }
    assert {d.dataset.digest for d in run.inputs.dataset_inputs} == {run.data.params["data_hash"]}
    table = client.load_table(experiment.experiment_id, "predictions/test.json", run_ids=[run_id])
    assert table["correct"].mean() == pytest.approx(run.data.metrics["test_accuracy"])
    assert not any(Path(tmp_path).rglob("predictions"))  # artifacts went to the server, not to a local folder
    assert list((server["root"] / "artifacts").rglob("test.json"))
    model = mlflow.keras.load_model(f"runs:/{run_id}/model")
    assert model.output_shape == (None, 2)

    trials = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{summary.parent_run_id}' and tags.{tracking.KIND_TAG} = 'trial'",
        output_format="list",
    )
    assert sorted(t.data.tags["trial_id"] for t in trials) == ["0", "1"]

    content = build_report("team", tmp_path / "report")
    html = (tmp_path / "report" / "report.html").read_text()
    assert f"{server['uri']}/#/experiments/{experiment.experiment_id}/runs/" in html
    assert f"{server['uri']}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning" in html
    assert client.get_run(content["report_run_id"]).data.tags[tracking.KIND_TAG] == "report"


def test_basic_auth_refuses_strangers_and_lets_users_log(make_cfg, tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    config = tmp_path / "basic_auth.ini"
    config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path}/basic_auth.db\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    proc, uri = tracking_server(
        tmp_path,
        "--app-name",
        "basic-auth",
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": "not-the-default-1",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key",
        },
    )
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
        assert refused.value.code == 401
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-default-1")
        store = [f"paths.mlruns_dir={tmp_path}", f"tracking.uri={uri}", "tracking.experiment=locked"]
        run_id = training.train(make_cfg("cnn", store, "train.log_model=false")).run_id
        assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"
    finally:
        stop_server(proc)
