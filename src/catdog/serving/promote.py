"""`catdog promote`: the best model by validation, registered and given the `champion` alias."""

from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException

from catdog import CatdogError, stats
from catdog.report.runs import load_study
from catdog.tracking import CHAMPION, REGISTERED_MODEL
from catdog.tracking.record import MODEL_VAL_ACCURACY, N_TEST, TEST_ACCURACY, TEST_CORRECT


def promote(
    experiment: str, variant: str | None = None, run_id: str | None = None, name: str = REGISTERED_MODEL
) -> dict:
    """Register RUN_ID's model, or the logged model of the run with the best validation
    accuracy (never chosen by test) in EXPERIMENT (of VARIANT), as a new version of NAME,
    and point the alias `champion` at it. Returns what was recorded."""
    client = mlflow.MlflowClient()
    if run_id:
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            raise CatdogError(f"run {run_id} not found in {mlflow.get_tracking_uri()}") from exc
    else:
        records = [r for r in load_study(experiment).records if variant in (None, r.run.data.tags.get("variant"))]
        records = [r for r in records if _has_model(r.id)]
        if not records:
            scope = f" of variant {variant!r}" if variant else ""
            raise CatdogError(f"experiment {experiment!r} has no finished run{scope} with a logged model")
        run = max(records, key=lambda r: r.val_accuracy).run
    if not _has_model(run.info.run_id):
        raise CatdogError(f"run {run.info.run_id} has no logged model (train.log_model was false?)")
    metrics, params = run.data.metrics, run.data.params
    n_test = int(metrics.get(N_TEST, 0)) or sum(int(v) for k, v in params.items() if k.startswith("n_test_"))
    correct = int(metrics.get(TEST_CORRECT, round(metrics[TEST_ACCURACY] * n_test)))
    interval = stats.wilson(correct, n_test)
    val = metrics.get(MODEL_VAL_ACCURACY, metrics.get("val_accuracy"))
    tags = {
        "run_id": run.info.run_id,
        "variant": run.data.tags.get("variant", "?"),
        "val_accuracy": f"{val:.4f}",
        TEST_ACCURACY: f"{metrics[TEST_ACCURACY]:.4f}",
        "test_accuracy_95ci": interval.text(digits=4, scale=1),
        "data_hash": params.get("data_hash", "?"),
        "code_version": run.data.tags.get("mlflow.source.git.commit", "unknown"),
    }
    version = mlflow.register_model(_model_uri(run.info.run_id), name, tags=tags)
    description = (
        f"{tags['variant']} from run {run.info.run_id}, chosen by validation accuracy {val:.1%}. "
        f"Test accuracy {metrics[TEST_ACCURACY]:.1%} (95% Wilson interval {interval.text()}%, "
        f"n={n_test}); data hash {tags['data_hash']}; code {tags['code_version'][:10]}."
    )
    client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, CHAMPION, version.version)
    return {"name": name, "version": version.version, "alias": CHAMPION, "description": description, **tags}


def _model_uri(run_id: str) -> str | None:
    """The run's logged model (MLflow 3 keeps it beside the run, not among its artifacts)."""
    try:
        return mlflow.models.get_model_info(f"runs:/{run_id}/model").model_uri
    except (MlflowException, OSError):
        return None


def _has_model(run_id: str) -> bool:
    return _model_uri(run_id) is not None
