"""`catdog reproduce`: a logged run trained again from its logged config, checked metric by
metric against the original, with what differs named when it does not reproduce, and each
run's logged counts checked against its own rates and per-image tables."""

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from catdog import training
from catdog.cli import main as catdog_main
from catdog.tracking.record import MODEL_VAL_ACCURACY, TEST_ACCURACY, TEST_CORRECT, VAL_PREDICTIONS
from catdog.training.reproduce import CHECKS, NOT_CHECKED, NOT_CHECKED_PREFIX, RUNS, TAG
from helpers import store_overrides, write_images

CONSISTENCY = {
    "test images against the test images by class",
    "test images right against test accuracy",
    "test images right against the per-image test table",
    "validation accuracy against the per-image validation table",
}


def _reproduce(uri, run_id, capsys, *overrides) -> tuple[dict, int]:
    code = 0
    try:
        catdog_main(["--tracking-uri", uri, "reproduce", run_id, *overrides, "--json"])
    except SystemExit as exc:
        code = exc.code
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1]), code


def test_a_run_reproduces_and_a_changed_one_says_what_differs(make_cfg, tmp_path, capsys):
    store = [*store_overrides(tmp_path), "tracking.experiment=repro", "train.log_model=false"]
    original = training.train(make_cfg("cnn", store, "seed=2"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"

    same, code = _reproduce(uri, original.run_id, capsys)
    assert code == 0 and same["reproduced"]
    checks = {c["name"]: c for c in same["checks"]}
    first = ["validation images right", "test images right", "initial weights digest", "validation loss"]
    assert list(checks)[:4] == first  # the names users' scripts read
    assert set(checks) == {label for label, _, _ in CHECKS}
    assert {"validation accuracy", "test accuracy", "test loss", "baseline accuracy"} <= set(checks)
    assert all(c["same"] for c in checks.values())
    # Logged by every run but a plain CNN's one stage.
    assert [name for name, c in checks.items() if c["logged"] is None] == ["fine-tuning start epoch"]
    assert all(c["same"] for c in same["context"])  # same code, data, libraries and CPU
    assert {(c["name"], c["run"]) for c in same["consistency"]} == {(n, r) for n in CONSISTENCY for r in RUNS}
    assert all(c["same"] and c["expected"] == c["found"] for c in same["consistency"])
    # Every metric a run logs is checked, or named as one that varies by nature.
    logged = MlflowClient().get_run(original.run_id).data.metrics
    checked = {key for _, where, key in CHECKS if where in ("metric", "history")}
    assert {k for k in logged if not k.startswith(NOT_CHECKED_PREFIX)} - checked - set(NOT_CHECKED) == set()
    again = MlflowClient().get_run(same["new_run_id"])
    assert again.data.tags[TAG] == original.run_id and again.info.status == "FINISHED"

    # The same config on other images: the data digest is named, and the exit code says so.
    other = tmp_path / "other"
    write_images(other / "train", {"cats": 24, "dogs": 24}, size=(60, 60), seed=1)
    write_images(other / "validation", {"cats": 20, "dogs": 20}, size=(60, 60), seed=2)
    changed, code = _reproduce(uri, original.run_id, capsys, f"data.dir={other}")
    assert code == 1 and not changed["reproduced"]
    assert {c["name"] for c in changed["context"] if not c["same"]} == {"data digest"}
    assert not {c["name"]: c for c in changed["checks"]}["validation loss"]["same"]
    assert all(c["same"] for c in changed["consistency"])  # other data, but each run agrees with itself


def test_a_run_whose_headline_disagrees_with_its_counts_does_not_reproduce(make_cfg, tmp_path, capsys):
    store = [*store_overrides(tmp_path), "tracking.experiment=repro", "train.log_model=false"]
    original = training.train(make_cfg("cnn", store, "seed=2"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient()
    run = client.get_run(original.run_id)
    accuracy, correct, n_test = (run.data.metrics[k] for k in (TEST_ACCURACY, TEST_CORRECT, "n_test"))

    # A test accuracy logged again, one image off its own count: the latest value is the
    # headline the page and the MLflow UI show.
    off_by_one = int(correct) + (1 if correct < n_test else -1)
    client.log_metric(original.run_id, TEST_ACCURACY, off_by_one / n_test, step=1)
    wrong, code = _reproduce(uri, original.run_id, capsys)
    assert code == 1 and not wrong["reproduced"]
    inconsistent = [c for c in wrong["consistency"] if not c["same"]]
    assert inconsistent == [
        {
            "name": "test images right against test accuracy",
            "run": "logged",
            "expected": off_by_one,
            "found": int(correct),
            "same": False,
        }
    ]
    assert [c["name"] for c in wrong["checks"] if not c["same"]] == ["test accuracy"]

    # The headline put back, and the validation table logged again with one more image right
    # (MLflow appends to a table logged twice): the retrained run matches the logged one in
    # every check, and still the logged run does not reproduce.
    client.log_metric(original.run_id, TEST_ACCURACY, accuracy, step=2)
    table = client.load_table(run.info.experiment_id, VAL_PREDICTIONS, run_ids=[original.run_id])
    client.log_table(original.run_id, table.iloc[:1].assign(correct=True), VAL_PREDICTIONS)
    with pytest.raises(SystemExit) as exit_info:
        catdog_main(["--tracking-uri", uri, "reproduce", original.run_id])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert not any("DIFFERS" in line for line in out)
    name = "validation accuracy against the per-image validation table"
    expected = round(run.data.metrics[MODEL_VAL_ACCURACY] * len(table))
    found = int(table["correct"].sum()) + 1
    assert f"  INCONSISTENT in the logged run: {name}: expected {expected}, found {found}" in out
    assert out[-1] == f"not reproduced; the logged run's own metrics disagree: {name}"
    assert not any("retrained run" in line for line in out)


def test_reproduce_refuses_what_it_cannot_train_again(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(SystemExit) as exit_info:
        catdog_main(["--tracking-uri", uri, "reproduce", "0" * 32])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"catdog: error: run {'0' * 32} not found in {uri}"


def test_a_run_logged_before_a_key_existed_is_trained_with_its_default(make_cfg, tmp_path):
    """A store keeps runs whose logged config predates keys added since (the backbone's
    `_target_`, say): the config they are trained again from takes each such key's
    default, as the run itself did."""
    from omegaconf import OmegaConf

    from catdog.training.reproduce import config_of

    store = [*store_overrides(tmp_path), "tracking.experiment=old", "train.log_model=false"]
    cfg = make_cfg("transfer", store)
    run_id = training.train(cfg).run_id
    logged = OmegaConf.create(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))
    del logged.model.backbone["_target_"], logged.features["seed"]
    with mlflow.start_run(run_id=run_id):
        mlflow.log_text(OmegaConf.to_yaml(logged), "config.yaml")
    again = config_of(MlflowClient().get_run(run_id))
    assert again.model.backbone._target_ == cfg.model.backbone._target_ and again.features.seed == cfg.features.seed
    assert again.model.backbone.weights == cfg.model.backbone.weights


@pytest.mark.unit
def test_a_diverged_curve_is_shown_by_its_first_differing_epoch():
    from catdog.training.reproduce import Check, _shown

    diverged = Check("validation loss by epoch", json.dumps([0.7, float("nan")]), json.dumps([0.7, 0.6]))
    assert _shown(diverged) == "DIFFERS from epoch 1: logged nan, now 0.6 (2 and 2 epochs)"
    assert _shown(Check("loss", diverged.logged, diverged.logged)) == "same: 2 epochs"
