"""One training run: data -> model -> fit -> test -> everything logged to MLflow."""

from __future__ import annotations

import gc
import logging
import os
import resource
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from catdog import RunFailure, plots, schema, tracking
from catdog.data import Split, StudyData, load_study_data
from catdog.models import augmentation
from catdog.schema import RunConfig
from catdog.tracking import record, unsent
from catdog.training import features, fitting, resume, seeding
from catdog.training.evaluation import evaluate_split, predictions_table, thumbnails
from catdog.training.plan import FitPlan, fit_plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    val_accuracy: float  # of the logged weights: the best epoch's under early stopping
    test_accuracy: float
    baseline_accuracy: float
    skipped: bool = False  # True: an earlier FINISHED run with the same key, not trained again

    def __float__(self) -> float:
        """What a Hydra sweeper optimizes: the validation accuracy."""
        return self.val_accuracy

    @classmethod
    def of(cls, run, skipped: bool = False) -> RunResult:
        metrics = run.data.metrics
        return cls(
            run.info.run_id,
            metrics[record.MODEL_VAL_ACCURACY],
            metrics[record.TEST_ACCURACY],
            metrics[record.BASELINE_ACCURACY],
            skipped,
        )


@contextmanager
def precision(policy: str):
    """Keras' dtype policy for the layers built inside, restored afterwards. With
    mixed_bfloat16 the logits layer stays float32 (models/variants.py, `build_head`)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def log_data_views(data: StudyData, cfg: RunConfig) -> None:
    """The sample grid, and a grid for each augmentation the variant uses. The grids'
    layers draw from their own generators, seeded by the run's seed."""
    mlflow.log_figure(plots.sample_grid(data.train, data.class_names), "plots/samples.png")
    for name, layer in augmentation.layers_of(cfg.model, seed=cfg.seed):
        fig = plots.augmentation_grid(data.train.images[0], layer, f"random {name} ({layer.name})")
        mlflow.log_figure(fig, f"plots/augmentation_{name}.png")
    plots.plt.close("all")


def test_scores(test: dict, data: StudyData) -> dict[str, float]:
    """The test metrics a run logs: accuracy, loss, images right, images, lift over the baseline."""
    return {
        record.TEST_ACCURACY: test["accuracy"],
        record.TEST_LOSS: test["loss"],
        record.TEST_CORRECT: int((test["predicted"] == data.test.labels).sum()),
        record.N_TEST: len(data.test),
        record.LIFT_OVER_BASELINE: test["accuracy"] - data.baseline_accuracy,
    }


def log_validation(data: StudyData, val: dict, path: str = record.VAL_PREDICTIONS) -> None:
    """Per-image validation results (file, label, probabilities): what lets two settings be
    compared image by image on the split that chooses between them."""
    mlflow.log_table(predictions_table(data.val, val, data.class_names), path)


def log_results(model, history: dict, data: StudyData, test: dict, log_model: bool) -> None:
    """Test scores, per-image test predictions, plots and (optionally) the model."""
    baseline = data.baseline_accuracy
    mlflow.log_metrics(test_scores(test, data))
    mlflow.log_table(predictions_table(data.test, test, data.class_names), record.TEST_PREDICTIONS)
    _log_misclassified(data.test, test["predicted"])
    mlflow.log_figure(plots.accuracy_curves(history, baseline, model.name), "plots/accuracy.png")
    mlflow.log_figure(
        plots.confusion_matrix(test["confusion"], data.class_names, f"test, n={len(data.test)}"),
        "plots/confusion_matrix.png",
    )
    mlflow.log_dict({"classes": list(data.class_names), "matrix": test["confusion"].tolist()}, "confusion_matrix.json")
    plots.plt.close("all")
    if log_model:
        sample = data.test.images[:4].astype("float32")
        signature = mlflow.models.infer_signature(sample, model.predict(sample, verbose=0))
        mlflow.keras.log_model(model, name="model", signature=signature, pip_requirements=tracking.model_requirements())


def _log_misclassified(split: Split, predicted) -> None:
    """Thumbnails of the wrongly classified test images, so that a report can show them
    from the tracking store alone."""
    rows = np.flatnonzero(predicted != split.labels)
    ids = split.ids[rows] if split.ids is not None else rows.astype(str)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "misclassified.npz")
        np.savez_compressed(path, ids=ids, images=thumbnails(split, rows))
        mlflow.log_artifact(path, "predictions")


def train(
    cfg: RunConfig, tags: dict | None = None, data: StudyData | None = None, cache=None, parent_run_id=None
) -> RunResult:
    """Train one variant as configured and log the run; returns its id and scores.

    `data`/`cache` let a caller (the tuner) share decoded images and cached features;
    `parent_run_id` nests the run under a search."""
    # Bad settings and an unusable store fail here, before any work or run is started.
    schema.validate(cfg)
    tracking.check_reachable(cfg.tracking.uri)
    data = data or load_study_data(cfg.data)
    key = resume.run_key(cfg, data.data_id)
    if cfg.study.skip_finished and not cfg.study.rerun:
        done = resume.finished_run(tracking.configure(cfg.tracking), key)
        if done is not None:
            log.info("skipped: done in run %s (study.rerun=true trains it again)", done.info.run_id)
            return RunResult.of(done, skipped=True)
    plan = fit_plan(cfg)
    started = time.perf_counter()
    cached, computed = _cached_inputs(cfg, data, cache, plan)
    # What the user pays for the backbone pass, outside the run's own wall time: a run on a
    # warm cache only loads it (computed 0).
    feature_cost = {record.FEATURES_SECONDS: time.perf_counter() - started, record.FEATURES_COMPUTED: computed}
    tracking.configure(cfg.tracking)  # after the cache: bad weights leave no store behind
    run_name = f"{cfg.model.name}-seed{cfg.seed}"
    kind = "retrain" if parent_run_id else "train"
    with (
        precision(cfg.train.precision),
        tracking.tracked_run(
            run_name=run_name,
            parent_run_id=parent_run_id,
            nested=parent_run_id is not None,
            tags=tracking.run_tags(
                kind, variant=cfg.model.name, seed=cfg.seed, **{resume.RUN_KEY_TAG: key}, **(tags or {})
            ),
            log_system_metrics=True,  # the run's own memory and CPU, sampled while it runs
        ) as run,
    ):
        # After start_run, which draws the run's name from Python's global `random`.
        seeding.seed_run(cfg.seed)
        if cached is not None:
            mlflow.log_metrics(feature_cost)
        try:
            return _fit_and_log(cfg, data, plan, cached, run)
        except OSError as exc:  # a full disk, a read-only artifact store: one line, the run FAILED
            raise RunFailure(f"could not write {exc.filename or 'an artifact'}: {exc.strerror or exc}") from exc


def _cached_inputs(cfg: RunConfig, data: StudyData, cache, plan: FitPlan) -> tuple[features.CachedFeatures | None, int]:
    """The run's cached backbone features, built if cold (None: the run trains on images),
    and the image views it pushed through the backbone to build them (0: all from disk)."""
    # The previous run of a multirun may still hold its features in reference cycles (tf.data
    # datasets, traced functions): free them before this run loads its own.
    gc.collect()
    cache = features.cache_for(cache, data, cfg, plan)
    if cache is None:
        return None, 0
    before = cache.computed
    # Cold or warm, the cache draws only from its own seeded generators: the run below
    # trains the same either way.
    return cache.features(cfg), cache.computed - before


def _fit_and_log(cfg: RunConfig, data: StudyData, plan: FitPlan, cached: features.CachedFeatures | None, run):
    """Inside the open, seeded run: log what goes in, fit, score, log what comes out."""
    load_at_start = os.getloadavg()[0]
    tracking.log_config(cfg)
    tracking.log_code_changes()
    tracking.log_data(data)
    mlflow.log_param("features.cached", cached is not None)
    log_data_views(data, cfg)
    log.info(
        "Run %s (%s): training %d epochs%s",
        run.info.run_id,
        run.info.run_name,
        cfg.train.epochs,
        " on cached backbone features" if cached else "",
    )
    trainable = fitting.build(cfg, data, plan, cached)
    mlflow.log_param(record.INIT_WEIGHTS_DIGEST, seeding.weights_digest(trainable.model))
    started = time.perf_counter()
    history = fitting.fit(cfg, data, plan, trainable, cached).history
    fit_seconds = time.perf_counter() - started
    epoch = fitting.kept_epoch(history, cfg.train)
    kept = {
        record.MODEL_VAL_ACCURACY: history["val_accuracy"][epoch],
        record.MODEL_VAL_LOSS: history["val_loss"][epoch],
    }
    val = fitting.validate(cfg, data, trainable, cached)
    model = fitting.on_images(cfg, data, plan, trainable)
    test = evaluate_split(model, data.test, cfg.data.batch_size)
    try:
        mlflow.log_metrics({**kept, record.MODEL_EPOCH: epoch})
        if cached is not None:
            mlflow.log_text(_summary(model), "model_summary.txt")  # the callback saw only the head
        log_validation(data, val)
        log_results(model, history, data, test, cfg.train.log_model)
        log_cost(fit_seconds, len(history["val_accuracy"]), len(data.train), load_at_start)
    except MlflowException as exc:
        if not tracking.is_server(cfg.tracking.uri):
            raise
        scores = {**kept, record.MODEL_EPOCH: epoch, **test_scores(test, data)}
        tables = {name: predictions_table(split, result, data.class_names)
                  for name, split, result in (("val", data.val, val), ("test", data.test, test))}  # fmt: skip
        raise _kept_locally(cfg, run.info.run_id, history, scores, tables, model, exc) from exc
    return RunResult(run.info.run_id, kept[record.MODEL_VAL_ACCURACY], test["accuracy"], data.baseline_accuracy)


def _kept_locally(cfg: RunConfig, run_id: str, history, scores, tables: dict, model, exc) -> RunFailure:
    """The server stopped answering after the training: keep its results on local disk."""
    folder = unsent.keep(Path(cfg.paths.mlruns_dir) / "unsent" / run_id, run_id, history, scores, tables, model)
    return RunFailure(
        f"tracking server {tracking.redact(cfg.tracking.uri)} stopped answering ({str(exc).splitlines()[0][:100]}): "
        f"run {run_id} is not finished; its metrics history, scores and model are kept in {folder}; "
        f"once the server is back: catdog upload {folder}"
    )


def log_cost(fit_seconds: float, epochs: int, n_train: int, load_at_start: float) -> None:
    """What the fit cost: its wall time, training images per second, the process's peak
    resident memory so far (Linux reports KiB; in a multirun, the largest run so far: the
    run's own memory is MLflow's `system/` metrics), and the machine's 1-minute load
    average at the run's start and end, which says whether other work shared the CPU."""
    mlflow.log_metrics(
        {
            record.FIT_SECONDS: fit_seconds,
            record.TRAIN_IMAGES_PER_S: epochs * n_train / fit_seconds,
            record.PEAK_RSS_MB: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            record.LOAD_AVG_START: load_at_start,
            record.LOAD_AVG_END: os.getloadavg()[0],
        }
    )


def _summary(model: keras.Model) -> str:
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines)
