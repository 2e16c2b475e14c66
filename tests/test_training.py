"""Real one-epoch training runs on real images, read back from a real SQLite MLflow store."""

import json

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from catdog import CatdogError, decision_rule, private_api, tracking, training
from catdog.cli import main as catdog_main
from catdog.report.runs import load_study
from catdog.report.summary import variant_rows
from helpers import compose

VARIANTS = ["cnn", "augmented", "preprocessed", "transfer"]
COMMON_ARTIFACTS = {
    "config.yaml",
    "model_summary.txt",
    "confusion_matrix.json",
    "predictions/test.json",
    "predictions/misclassified.npz",
    "plots/accuracy.png",
    "plots/samples.png",
    "plots/confusion_matrix.png",
}


def _artifacts(client, run_id, path=None):
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


@pytest.fixture(scope="module")
def trained(make_cfg, shared_store):
    """One logged run per variant (two seeds of cnn), trained once for this module."""
    results = {variant: training.train(make_cfg(variant, shared_store, "seed=3")) for variant in VARIANTS}
    results["cnn seed 4"] = training.train(make_cfg("cnn", shared_store, "seed=4", "train.log_model=false"))
    return results


@pytest.mark.parametrize("variant", VARIANTS)
def test_run_is_logged_completely(trained, variant, small_data):
    client = MlflowClient()
    run = client.get_run(trained[variant].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["variant"] == variant and run.data.tags["seed"] == "3"
    assert run.data.tags[tracking.KIND_TAG] == "train"
    commit = run.data.tags["mlflow.source.git.commit"]
    assert len(commit) == 40 and commit == tracking.git_commit()
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [0]
    metrics = run.data.metrics
    assert metrics["model_val_accuracy"] == metrics["val_accuracy"] and metrics["model_epoch"] == 0
    assert metrics["model_val_loss"] == metrics["val_loss"]
    # Cost: the fit's wall time, 48 training images over 1 epoch, and this process's peak RSS.
    assert metrics["train_images_per_s"] == pytest.approx(48 / metrics["fit_seconds"])
    assert 200 < metrics["peak_rss_mb"] < 16_000
    assert run.data.tags[tracking.DIRTY_TAG] == str(tracking.git_dirty()).lower()
    assert metrics["test_loss"] > 0 and metrics["baseline_accuracy"] == 0.5
    # The machine's load around the fit, and the run's own memory sampled by MLflow.
    assert metrics["load_avg_1m_start"] >= 0 and metrics["load_avg_1m_end"] > 0
    memory = client.get_metric_history(run.info.run_id, "system/system_memory_usage_megabytes")
    assert memory and all(m.value > 100 for m in memory)
    # What it ran on, and the rule a review of it will apply.
    tags = run.data.tags
    assert tags["env.tensorflow"].startswith("2.") and tags["env.keras"].startswith("3.")
    assert tags["env.python"].count(".") == 2 and int(tags["env.cores"]) >= 1 and tags["env.cpu"]
    assert {"avx2", "avx512f"} & set(tags["env.isa"].split(",")) or tags["env.isa"].startswith("none")
    assert tags["env.onednn"] == ("on" if private_api.onednn_enabled() else "off")
    assert tags[decision_rule.TAG] == decision_rule.VERSION
    # The per-image predictions are the test score, row by row.
    table = client.load_table(run.info.experiment_id, "predictions/test.json", run_ids=[run.info.run_id])
    assert len(table) == 8 and table["image"].is_unique
    assert set(table["label"]) == {"cats", "dogs"} and all(table["image"].str.startswith(("cats/", "dogs/")))
    assert table["correct"].mean() == pytest.approx(metrics["test_accuracy"])
    assert (table["correct"] == (table["label"] == table["predicted"])).all()
    assert np.allclose(table["p_cats"] + table["p_dogs"], 1.0, atol=1e-4)
    assert ((table["p_dogs"] > 0.5) == (table["predicted"] == "dogs")).all()
    assert metrics["test_correct"] == table["correct"].sum()
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
    # Validation image by image: the kept weights' scores, the same as the kept epoch's.
    val = client.load_table(run.info.experiment_id, "predictions/val.json", run_ids=[run.info.run_id])
    assert len(val) == 32 and val["image"].is_unique and set(val["image"]).isdisjoint(table["image"])
    assert val["correct"].mean() == pytest.approx(metrics["model_val_accuracy"])
    assert val["loss"].mean() == pytest.approx(metrics["model_val_loss"], rel=1e-4)
    p_true = np.where(val["label"] == "dogs", val["p_dogs"], val["p_cats"])
    assert ((val["loss"] < np.log(2)) == (p_true > 0.5)).all()


@pytest.mark.parametrize("variant", ["cnn", "transfer"])
def test_logged_model_loads_and_reproduces_test_accuracy(trained, variant, small_data):
    from catdog.data import load_study_data
    from catdog.training.evaluation import evaluate_split

    result = trained[variant]
    model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    data = load_study_data(compose(f"data.dir={small_data}").data)
    assert evaluate_split(model, data.test)["accuracy"] == pytest.approx(result.test_accuracy)
    signature = mlflow.models.get_model_info(f"runs:/{result.run_id}/model").signature
    assert list(signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 160, 160, 3]


def test_logged_requirements_are_what_mlflow_infers(trained):
    """A run gives MLflow the model's requirements instead of letting it infer them (a
    subprocess that loads the model again); they must be what inference records."""
    uri = f"runs:/{trained['transfer'].run_id}/model"
    scratch = MlflowClient().create_experiment("requirements")  # out of the study's way
    with mlflow.start_run(experiment_id=scratch):
        inferred = mlflow.keras.log_model(mlflow.keras.load_model(uri), name="inferred").model_uri

    def requirements(model_uri):
        with open(mlflow.pyfunc.get_model_dependencies(model_uri, format="pip")) as lines:
            return sorted(lines.read().split())

    assert requirements(uri) == requirements(inferred) == sorted(tracking.model_requirements())


def test_evaluate_an_unseen_folder(trained, small_data, tmp_path, capsys):
    from helpers import write_images

    folder = write_images(tmp_path / "never-seen", {"cats": 3, "dogs": 2}, size=(90, 120))
    run_id = trained["cnn"].run_id
    catdog_main(["--tracking-uri", mlflow.get_tracking_uri(), "evaluate", run_id, str(folder), "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    per_class = result["per_class"]
    assert result["n"] == 5 and {k: v["n"] for k, v in per_class.items()} == {"cats": 3, "dogs": 2}
    assert result["accuracy"] == pytest.approx((per_class["cats"]["correct"] + per_class["dogs"]["correct"]) / 5)
    run = MlflowClient().get_run(run_id)
    assert run.data.metrics["eval_never-seen_accuracy"] == result["accuracy"]
    assert run.info.status == "FINISHED"


@pytest.mark.parametrize("which", ["no such run", "run without a model"])
def test_evaluate_refuses_runs_without_a_model(trained, small_data, capsys, which):
    run_id = "0" * 32 if which == "no such run" else trained["cnn seed 4"].run_id  # logged without its model
    with pytest.raises(SystemExit) as exit_info:
        catdog_main(["--tracking-uri", mlflow.get_tracking_uri(), "evaluate", run_id, str(small_data / "validation")])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"catdog: error: no model at runs:/{run_id}/model")


def test_evaluate_errors_are_one_line(trained, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        catdog_main(["--tracking-uri", mlflow.get_tracking_uri(), "evaluate", trained["cnn"].run_id, str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("catdog: error:") and "\n" not in err


def test_compare_groups_runs_by_variant_and_picks_the_best_by_validation(trained, capsys):
    experiment = "catdog-study"
    rows = variant_rows(load_study(experiment))
    assert [r.variant for r in rows] == VARIANTS
    by_variant = {r.variant: r for r in rows}
    assert by_variant["cnn"].runs == 2 and by_variant["cnn"].seeds == ["3", "4"]
    cnn_runs = [MlflowClient().get_run(trained[k].run_id) for k in ("cnn", "cnn seed 4")]
    best = max(cnn_runs, key=lambda r: r.data.metrics["model_val_accuracy"])
    assert by_variant["cnn"].best_run_id == best.info.run_id
    assert by_variant["cnn"].test_accuracy_mean == pytest.approx(
        np.mean([r.data.metrics["test_accuracy"] for r in cnn_runs])
    )
    catdog_main(["--tracking-uri", mlflow.get_tracking_uri(), "compare", "--experiment", experiment, "--json"])
    assert [r["variant"] for r in json.loads(capsys.readouterr().out)] == VARIANTS


def test_early_stopping_reports_the_kept_epoch(make_cfg, store):
    """With restore_best_weights the logged model is the best epoch's: so are its scores."""
    cfg = make_cfg("transfer", store, "train.epochs=4", "train.early_stopping_patience=10", "train.log_model=false")
    result = training.train(cfg)
    run = MlflowClient().get_run(result.run_id)
    history = [m.value for m in MlflowClient().get_metric_history(result.run_id, "val_accuracy")]
    assert result.val_accuracy == max(history) == run.data.metrics["model_val_accuracy"]
    assert run.data.metrics["model_epoch"] == history.index(max(history))


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


def test_bad_weights_path_fails_before_any_run(make_cfg, store, tmp_path):
    cfg = make_cfg("transfer", store, f"model.backbone.weights={tmp_path}/none.h5")
    with pytest.raises(CatdogError, match="no such file"):
        training.train(cfg)
    assert not (tmp_path / "mlflow.db").exists()  # no store, experiment or run was touched
