"""One training run: data -> model -> fit -> test -> everything logged to MLflow."""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

import keras
import mlflow
import numpy as np

from catdog import CatdogError, backbone_cut, features, plots, seeding, tracking
from catdog.data import Split, StudyData, load_study_data, to_dataset
from catdog.evaluation import evaluate_split, predictions_table, thumbnails
from catdog.features import view_dataset
from catdog.models import (
    augmentation_layers,
    backbone_layer,
    build_backbone,
    build_head,
    build_model,
    check_model,
    check_number,
    fine_tune_at,
)

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed_bfloat16")


@dataclass(frozen=True)
class RunResult:
    run_id: str
    val_accuracy: float  # of the logged weights: the best epoch's under early stopping
    test_accuracy: float
    baseline_accuracy: float


class EpochMetricsCallback(mlflow.keras.MlflowCallback):
    """MLflow's Keras callback, minus its per-evaluation `validation_*` metrics: fit already
    reports them each epoch as `val_*`, with the epoch as step."""

    def on_test_end(self, logs=None):
        pass


class ContinuedMetricsCallback(EpochMetricsCallback):
    """For a second fit in the same run (fine-tuning): epochs go on from the first fit's,
    and the optimizer's params, logged by the first, are not logged again (MLflow params
    cannot change)."""

    def on_train_begin(self, logs=None):
        pass


@contextmanager
def precision(policy: str):
    """Keras' dtype policy for the layers built inside, restored afterwards. With
    mixed_bfloat16 the logits layer stays float32 (see models.py)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def check_train(train_cfg) -> None:
    check_number("train.epochs", train_cfg.epochs, integer=True)
    check_number("train.learning_rate", train_cfg.learning_rate)
    check_number("train.fine_tune.epochs", train_cfg.fine_tune.epochs, integer=True)
    if train_cfg.fine_tune.learning_rate is not None:
        check_number("train.fine_tune.learning_rate", train_cfg.fine_tune.learning_rate)
    for name, value in (("epochs", train_cfg.epochs), ("fine_tune.epochs", train_cfg.fine_tune.epochs)):
        if value < 1:
            raise CatdogError(f"train.{name} must be >= 1, got {value}")
    if train_cfg.learning_rate <= 0 or fine_tune_learning_rate(train_cfg) <= 0:
        rates = f"{train_cfg.learning_rate}, {train_cfg.fine_tune.learning_rate}"
        raise CatdogError(f"train.learning_rate and train.fine_tune.learning_rate must be > 0, got {rates}")
    if train_cfg.precision not in PRECISIONS:
        raise CatdogError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {train_cfg.precision!r}")


def fine_tune_learning_rate(train_cfg) -> float:
    rate = train_cfg.fine_tune.learning_rate
    return train_cfg.learning_rate / 10 if rate is None else rate


def compile_model(model: keras.Model, train_cfg, learning_rate: float | None = None) -> keras.Model:
    rate = train_cfg.learning_rate if learning_rate is None else learning_rate
    optimizer = keras.optimizers.get({"class_name": train_cfg.optimizer, "config": {"learning_rate": rate}})
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def fit_callbacks(train_cfg, continued: bool = False) -> list[keras.callbacks.Callback]:
    # Outside a run MLflow's callback would silently start one in a default store.
    tracker = ContinuedMetricsCallback if continued else EpochMetricsCallback
    callbacks = [tracker()] if mlflow.active_run() else []
    if train_cfg.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=train_cfg.early_stopping_patience, restore_best_weights=True
            )
        )
    return callbacks


def kept_epoch(history: dict, train_cfg) -> int:
    """The epoch (0-based) whose weights the run keeps: with early stopping, Keras restores
    the first epoch of best validation accuracy of the last stage; otherwise the last
    epoch's weights stay."""
    if train_cfg.early_stopping_patience:
        stages = history.get("stage") or [1] * len(history["val_accuracy"])
        start = stages.index(stages[-1])
        return start + int(np.argmax(history["val_accuracy"][start:]))
    return len(history["val_accuracy"]) - 1


def log_data_views(data: StudyData, cfg) -> None:
    """The sample grid, and one flip and one rotation grid when the variant augments. The
    grids' layers draw from their own generators, seeded by the run's seed."""
    mlflow.log_figure(plots.sample_grid(data.train, data.class_names), "plots/samples.png")
    for layer in augmentation_layers(cfg.model, seed=cfg.seed):
        kind = "flip" if isinstance(layer, keras.layers.RandomFlip) else "rotation"
        fig = plots.augmentation_grid(data.train.images[0], layer, f"random {kind} ({layer.name})")
        mlflow.log_figure(fig, f"plots/augmentation_{kind}.png")
    plots.plt.close("all")


def log_results(model, history: dict, data: StudyData, batch_size: int, log_model: bool) -> dict:
    """Test scores, per-image test predictions, plots and (optionally) the model."""
    test = evaluate_split(model, data.test, batch_size)
    baseline = data.baseline_accuracy
    mlflow.log_metrics(
        {
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
            "test_correct": int((test["predicted"] == data.test.labels).sum()),
            "n_test": len(data.test),
            "lift_over_baseline": test["accuracy"] - baseline,
        }
    )
    mlflow.log_table(predictions_table(data.test, test, data.class_names), "predictions/test.json")
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
        mlflow.keras.log_model(model, name="model", signature=signature)
    return test


def _log_misclassified(split: Split, predicted) -> None:
    """Thumbnails of the wrongly classified test images, so that a report can show them
    from the tracking store alone."""
    rows = np.flatnonzero(predicted != split.labels)
    ids = split.ids[rows] if split.ids is not None else rows.astype(str)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "misclassified.npz")
        np.savez_compressed(path, ids=ids, images=thumbnails(split, rows))
        mlflow.log_artifact(path, "predictions")


TOP = "backbone_top"


def trainable_model(cfg, data: StudyData, cache=None) -> keras.Model:
    """The compiled model that fit() trains: the whole network; or, when the backbone's
    features come from the cache, only the head; or, for a fine-tuned variant, the top of
    the backbone (frozen in the first stage) and the head, on the cached bottom's activations.

    A fine-tuned variant's model carries `fine_tune_from`, the first layer to unfreeze."""
    n_classes = len(data.class_names)
    cut = fine_tune_at(cfg.model)
    if cache is None:
        model = build_model(cfg.model, data.image_size, n_classes)
        backbone = backbone_layer(model) if cut is not None else None
    elif cut is None:
        model = build_head(cfg.model, cache.feature_shape, n_classes)
    else:
        backbone = build_backbone(cfg.model.backbone, data.image_size)
        top = backbone_cut.top_model(backbone, backbone_cut.boundary(backbone, cut))
        top.trainable = False
        activations = keras.Input(shape=cache.feature_shape, name="cached_activations")
        head = build_head(cfg.model, top.output_shape[1:], n_classes)
        model = keras.Model(activations, head(top(activations, training=False)), name=cfg.model.name)
    if cut is not None:
        model.fine_tune_from = backbone.layers[backbone_cut.check_fine_tune_at(backbone, cut)].name
    return compile_model(model, cfg.train)


def fit_variant(cfg, data: StudyData, model, cache=None, callbacks=(), **fit_kwargs):
    """Fit a `trainable_model` on the training split, validating each epoch; then, for a
    fine-tuned variant, unfreeze the backbone's top, recompile at the fine-tuning learning
    rate and go on for `train.fine_tune.epochs`. Returns the History, whose `history` holds
    both stages (and `stage`: 1 or 2 per epoch). The training order, and the cached view
    drawn per image, follow `cfg.seed`."""
    batch_size = cfg.data.batch_size
    fit_kwargs = {"epochs": cfg.train.epochs, "verbose": cfg.train.verbose, **fit_kwargs}
    if cache is None:
        train_ds, val = to_dataset(data.train, batch_size, shuffle_seed=cfg.seed), data.val
    else:
        train_ds = view_dataset(cache.train_features(cfg), data.train.labels, batch_size, seed=cfg.seed)
        val = Split(cache.eval_features()[0], data.val.labels)
    val_ds = to_dataset(val, batch_size)
    # The training dataset reshuffles itself every epoch: shuffle=False.
    fit = dict(validation_data=val_ds, shuffle=False)
    result = model.fit(train_ds, callbacks=[*fit_callbacks(cfg.train), *callbacks], **fit, **fit_kwargs)
    first = getattr(model, "fine_tune_from", None)
    if first is None:
        return result
    stage1 = result.history
    part = model.get_layer(TOP) if cache is not None else backbone_layer(model)
    backbone_cut.unfreeze(part, first)
    compile_model(model, cfg.train, fine_tune_learning_rate(cfg.train))
    done = len(stage1["loss"])
    fit_kwargs["epochs"] = done + cfg.train.fine_tune.epochs
    callbacks = [*fit_callbacks(cfg.train, continued=True), *callbacks]
    result = model.fit(train_ds, callbacks=callbacks, initial_epoch=done, **fit, **fit_kwargs)
    stage2 = result.history
    result.history = {k: list(stage1[k]) + list(stage2[k]) for k in stage1}
    result.history["stage"] = [1] * done + [2] * len(stage2["loss"])
    if mlflow.active_run():
        rate = fine_tune_learning_rate(cfg.train)
        mlflow.log_metrics({"fine_tune_start_epoch": done, "fine_tune_learning_rate": rate})
        for epoch, stage in enumerate(result.history["stage"]):
            mlflow.log_metric("stage", stage, step=epoch)
    return result


def image_model(model, cfg, data: StudyData, cache=None) -> keras.Model:
    """A model on raw images: a head trained on cached features goes back on its backbone;
    a top fine-tuned on cached activations goes back on the frozen bottom."""
    if cache is None:
        return model
    n_classes = len(data.class_names)
    if fine_tune_at(cfg.model) is None:
        return build_model(cfg.model, data.image_size, n_classes, head=model)
    backbone = build_backbone(cfg.model.backbone, data.image_size)
    for layer in model.get_layer(TOP).layers[1:]:  # the top's own input layer has no twin
        backbone.get_layer(layer.name).set_weights(layer.get_weights())
    return build_model(cfg.model, data.image_size, n_classes, head=model.get_layer("head"), backbone=backbone)


def train(cfg, tags: dict | None = None, data: StudyData | None = None, cache=None, parent_run_id=None) -> RunResult:
    """Train one variant as configured and log the run; returns its id and scores.

    `data`/`cache` let a caller (the tuner) share decoded images and cached features;
    `parent_run_id` nests the run under a search."""
    # Bad settings and an unusable store fail here, before any work or run is started.
    check_model(cfg.model)
    check_train(cfg.train)
    tracking.check_reachable(cfg.tracking.uri)
    data = data or load_study_data(cfg.data)
    if cache is None and features.usable(cfg):
        cache = features.FeatureCache(data, cfg)
    cache = features.cache_for(cache, data, cfg)
    if cache is not None:
        # Cold or warm, the cache draws only from its own seeded generators: the run below
        # trains the same either way.
        cache.prepare(cfg)
    tracking.configure(cfg.tracking)
    run_name = f"{cfg.model.name}-seed{cfg.seed}"
    kind = "retrain" if parent_run_id else "train"
    with (
        precision(cfg.train.precision),
        tracking.tracked_run(
            run_name=run_name,
            parent_run_id=parent_run_id,
            nested=parent_run_id is not None,
            tags=tracking.run_tags(kind, variant=cfg.model.name, seed=cfg.seed, **(tags or {})),
        ) as run,
    ):
        # After start_run, which draws the run's name from Python's global `random`.
        seeding.seed_run(cfg.seed)
        tracking.log_config(cfg)
        tracking.log_data(data)
        mlflow.log_param("features.cached", cache is not None)
        log_data_views(data, cfg)
        log.info(
            "Run %s (%s): training %d epochs%s",
            run.info.run_id,
            run_name,
            cfg.train.epochs,
            " on cached backbone features" if cache else "",
        )
        trained = trainable_model(cfg, data, cache)
        mlflow.log_param("init_weights_digest", seeding.weights_digest(trained))
        history = fit_variant(cfg, data, trained, cache).history
        epoch = kept_epoch(history, cfg.train)
        mlflow.log_metrics({"model_val_accuracy": history["val_accuracy"][epoch], "model_epoch": epoch})
        model = image_model(trained, cfg, data, cache)
        if cache is not None:
            mlflow.log_text(_summary(model), "model_summary.txt")  # the callback saw only the head
        test = log_results(model, history, data, cfg.data.batch_size, cfg.train.log_model)
    return RunResult(run.info.run_id, history["val_accuracy"][epoch], test["accuracy"], data.baseline_accuracy)


def _summary(model: keras.Model) -> str:
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines)
