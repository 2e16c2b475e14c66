"""Real one-epoch training runs on real images, read back from a real SQLite MLflow store."""

import json

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from catdog import CatdogError, tracking, training
from catdog.cli import main as catdog_main
from catdog.report import summarize

from conftest import compose

VARIANTS = ["cnn", "augmented", "preprocessed", "transfer"]
COMMON_ARTIFACTS = {
    "config.yaml", "model_summary.txt", "confusion_matrix.json",
    "plots/accuracy.png", "plots/samples.png", "plots/confusion_matrix.png",
}


def _overrides(variant, small_data, store, weights, *extra):
    out = [f"model={variant}", f"data.dir={small_data}", "train.epochs=1", "train.verbose=0", *store, *extra]
    if variant == "transfer":
        out.append(f"model.backbone.weights={weights}")
    return out


def _artifacts(client, run_id, path=None):
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


@pytest.fixture(scope="module")
def trained(small_data, shared_store, weights):
    """One logged run per variant, trained once for the tests of this module."""
    results = {}
    for variant in VARIANTS:
        cfg = compose(*_overrides(variant, small_data, shared_store, weights, "seed=3"))
        results[variant] = training.train(cfg)
    return results


@pytest.mark.parametrize("variant", VARIANTS)
def test_run_is_logged_completely(trained, variant, small_data):
    client = MlflowClient()
    run = client.get_run(trained[variant].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["variant"] == variant and run.data.tags["seed"] == "3"
    assert run.data.tags[tracking.KIND_TAG] == "train"
    assert run.data.tags.get("mlflow.source.git.commit") == tracking.git_commit()
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [0]
    metrics = run.data.metrics
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_loss"] > 0
    assert metrics["baseline_accuracy"] == 0.5
    assert metrics["lift_over_baseline"] == pytest.approx(metrics["test_accuracy"] - 0.5)
    params = run.data.params
    assert params["model.name"] == variant and params["data.dir"] == str(small_data)
    assert params["n_test_cats"] == "4" and len(params["data_hash"]) == 16
    expected = set(COMMON_ARTIFACTS)
    if variant != "cnn":
        expected |= {"plots/augmentation_flip.png", "plots/augmentation_rotation.png"}
    assert expected <= _artifacts(client, run.info.run_id)
    confusion = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/confusion_matrix.json"))
    assert np.asarray(confusion["matrix"]).sum() == 8


@pytest.mark.parametrize("variant", ["cnn", "transfer"])
def test_logged_model_loads_and_reproduces_test_accuracy(trained, variant, small_data):
    from catdog.data import load_study_data
    from catdog.evaluation import evaluate_split

    result = trained[variant]
    model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    data = load_study_data(compose(f"data.dir={small_data}").data)
    assert evaluate_split(model, data.test)["accuracy"] == pytest.approx(result.test_accuracy)
    signature = mlflow.models.get_model_info(f"runs:/{result.run_id}/model").signature
    assert list(signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 160, 160, 3]


def test_evaluate_an_unseen_folder(trained, small_data, tmp_path, capsys):
    from conftest import write_images

    folder = write_images(tmp_path / "never-seen", {"cats": 3, "dogs": 2}, size=(90, 120))
    run_id = trained["cnn"].run_id
    catdog_main(["--tracking-uri", mlflow.get_tracking_uri(), "evaluate", run_id, str(folder), "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 5 and 0.0 <= result["accuracy"] <= 1.0
    assert {k: v["n"] for k, v in result["per_class"].items()} == {"cats": 3, "dogs": 2}
    run = MlflowClient().get_run(run_id)
    assert run.data.metrics["eval_never-seen_accuracy"] == result["accuracy"]
    assert run.info.status == "FINISHED"


def test_evaluate_errors_are_one_line(trained, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        catdog_main(["--tracking-uri", mlflow.get_tracking_uri(), "evaluate", trained["cnn"].run_id, str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("catdog: error:") and "\n" not in err


def test_compare_groups_runs_by_variant(trained, capsys):
    experiment = "catdog-study"
    rows = summarize(experiment)
    assert [r["variant"] for r in rows] == VARIANTS
    assert all(r["runs"] == 1 and r["baseline_accuracy"] == 0.5 for r in rows)
    assert rows[-1]["best_run_id"] == trained["transfer"].run_id
    catdog_main(["--tracking-uri", mlflow.get_tracking_uri(), "compare", "--experiment", experiment, "--json"])
    assert [r["variant"] for r in json.loads(capsys.readouterr().out)] == VARIANTS


def test_failed_and_interrupted_runs_never_stay_running(store):
    tracking.configure(compose(*store).tracking)
    with pytest.raises(RuntimeError):
        with tracking.tracked_run(run_name="boom") as failed:
            raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt):
        with tracking.tracked_run(run_name="ctrl-c") as killed:
            raise KeyboardInterrupt
    client = MlflowClient()
    assert client.get_run(failed.info.run_id).info.status == "FAILED"
    assert client.get_run(killed.info.run_id).info.status == "KILLED"
    assert mlflow.active_run() is None


def test_bad_weights_path_fails_before_any_run(small_data, store, tmp_path):
    cfg = compose(*_overrides("transfer", small_data, store, None), f"model.backbone.weights={tmp_path}/none.h5")
    with pytest.raises(CatdogError, match="no such file"):
        training.train(cfg)
    assert not (tmp_path / "mlflow.db").exists()  # no store, experiment or run was touched
