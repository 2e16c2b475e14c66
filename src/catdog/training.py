"""One training run: data -> model -> fit -> test -> everything logged to MLflow."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import mlflow

from catdog import features, plots, tracking
from catdog.data import Split, StudyData, load_study_data, to_dataset
from catdog.evaluation import evaluate_split
from catdog.features import view_dataset
from catdog.models import augmentation_layers, build_head, build_model, check_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    val_accuracy: float
    test_accuracy: float
    baseline_accuracy: float


class EpochMetricsCallback(mlflow.keras.MlflowCallback):
    """MLflow's Keras callback, minus its per-evaluation `validation_*` metrics: fit already
    reports them each epoch as `val_*`, with the epoch as step."""

    def on_test_end(self, logs=None):
        pass


def compile_model(model: keras.Model, train_cfg) -> keras.Model:
    optimizer = keras.optimizers.get({"class_name": train_cfg.optimizer, "config": {"learning_rate": train_cfg.learning_rate}})
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def fit_callbacks(train_cfg) -> list[keras.callbacks.Callback]:
    # Outside a run MLflow's callback would silently start one in a default store.
    callbacks = [EpochMetricsCallback()] if mlflow.active_run() else []
    if train_cfg.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=train_cfg.early_stopping_patience, restore_best_weights=True
            )
        )
    return callbacks


def log_data_views(data: StudyData, model_cfg) -> None:
    """The sample grid, and one flip and one rotation grid when the variant augments."""
    mlflow.log_figure(plots.sample_grid(data.train, data.class_names), "plots/samples.png")
    for layer in augmentation_layers(model_cfg):
        kind = "flip" if isinstance(layer, keras.layers.RandomFlip) else "rotation"
        fig = plots.augmentation_grid(data.train.images[0], layer, f"random {kind} ({layer.name})")
        mlflow.log_figure(fig, f"plots/augmentation_{kind}.png")
    plots.plt.close("all")


def log_results(model, history: dict, data: StudyData, batch_size: int, log_model: bool) -> dict:
    test = evaluate_split(model, data.test, batch_size)
    baseline = data.baseline_accuracy
    mlflow.log_metrics(
        {
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
            "lift_over_baseline": test["accuracy"] - baseline,
        }
    )
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


def trainable_model(cfg, data: StudyData, model_cfg, cache=None) -> keras.Model:
    """The compiled model that fit() trains: the whole network, or only the head when the
    backbone's features come from the cache."""
    n_classes = len(data.class_names)
    if cache is None:
        model = build_model(model_cfg, data.image_size, n_classes)
    else:
        model = build_head(model_cfg, cache.feature_shape, n_classes)
    return compile_model(model, cfg.train)


def fit_variant(cfg, data: StudyData, model, model_cfg, cache=None, callbacks=(), **fit_kwargs):
    """Fit a `trainable_model` on the training split, validating each epoch."""
    batch_size = cfg.data.batch_size
    fit_kwargs = {"epochs": cfg.train.epochs, "verbose": cfg.train.verbose, **fit_kwargs}
    callbacks = [*fit_callbacks(cfg.train), *callbacks]
    if cache is None:
        return model.fit(
            to_dataset(data.train, batch_size, shuffle_seed=cfg.seed),
            validation_data=to_dataset(data.val, batch_size),
            callbacks=callbacks,
            shuffle=False,  # the training dataset reshuffles itself every epoch
            **fit_kwargs,
        )
    train_views, val = cache.train_features(model_cfg), cache.eval_features()[0]
    return model.fit(
        view_dataset(train_views, data.train.labels, batch_size, seed=cfg.seed),
        validation_data=to_dataset(Split(val, data.val.labels), batch_size),
        callbacks=callbacks,
        shuffle=False,  # the view dataset reshuffles itself every epoch
        **fit_kwargs,
    )


def image_model(model, model_cfg, data: StudyData, cache=None) -> keras.Model:
    """A model on raw images: a head trained on cached features goes back on its backbone."""
    if cache is None:
        return model
    return build_model(model_cfg, data.image_size, len(data.class_names), head=model)


def train(cfg, tags: dict | None = None, data: StudyData | None = None, cache=None, parent_run_id=None) -> RunResult:
    """Train one variant as configured and log the run; returns its id and scores.

    `data`/`cache` let a caller (the tuner) share decoded images and cached features;
    `parent_run_id` nests the run under a search."""
    # Bad model settings fail here, before a run is started and left behind.
    check_model(cfg.model)
    data = data or load_study_data(cfg.data)
    if cache is None and features.usable(cfg):
        cache = features.FeatureCache(data, cfg.model, cfg.features)
    if cache is not None:
        # Before seeding: building features (and the backbone) draws random numbers only
        # when the cache is cold, which must not change how the run trains.
        cache.prepare(cfg.model)
    keras.utils.set_random_seed(cfg.seed)
    tracking.configure(cfg.tracking)
    run_name = f"{cfg.model.name}-seed{cfg.seed}"
    kind = "retrain" if parent_run_id else "train"
    with tracking.tracked_run(
        run_name=run_name,
        parent_run_id=parent_run_id,
        nested=parent_run_id is not None,
        tags=tracking.run_tags(kind, variant=cfg.model.name, seed=cfg.seed, **(tags or {})),
    ) as run:
        tracking.log_config(cfg)
        tracking.log_data(data)
        mlflow.log_param("features.cached", cache is not None)
        log_data_views(data, cfg.model)
        log.info("Run %s (%s): training %d epochs%s", run.info.run_id, run_name, cfg.train.epochs,
                 " on cached backbone features" if cache else "")
        trained = trainable_model(cfg, data, cfg.model, cache)
        history = fit_variant(cfg, data, trained, cfg.model, cache)
        model = image_model(trained, cfg.model, data, cache)
        if cache is not None:
            mlflow.log_text(_summary(model), "model_summary.txt")  # the callback saw only the head
        test = log_results(model, history.history, data, cfg.data.batch_size, cfg.train.log_model)
    return RunResult(run.info.run_id, history.history["val_accuracy"][-1], test["accuracy"], data.baseline_accuracy)


def _summary(model: keras.Model) -> str:
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines)
