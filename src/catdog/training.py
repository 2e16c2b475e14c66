"""One training run: data -> model -> fit -> test -> everything logged to MLflow."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import mlflow

from catdog import plots, tracking
from catdog.data import StudyData, load_study_data, to_dataset
from catdog.evaluation import evaluate_split
from catdog.models import augmentation_layers, build_model

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
    callbacks = [EpochMetricsCallback()]
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


def train(cfg, tags: dict | None = None) -> RunResult:
    """Train one variant as configured and log the run; returns its id and scores."""
    keras.utils.set_random_seed(cfg.seed)
    data = load_study_data(cfg.data)
    tracking.configure(cfg.tracking)
    # Built before the run starts: bad model settings fail without leaving a run behind.
    model = compile_model(build_model(cfg.model, data.image_size, len(data.class_names)), cfg.train)
    run_name = f"{cfg.model.name}-seed{cfg.seed}"
    with tracking.tracked_run(
        run_name=run_name, tags=tracking.run_tags("train", variant=cfg.model.name, seed=cfg.seed, **(tags or {}))
    ) as run:
        tracking.log_config(cfg)
        tracking.log_data(data)
        log_data_views(data, cfg.model)
        log.info("Run %s (%s): training %d epochs", run.info.run_id, run_name, cfg.train.epochs)
        history = model.fit(
            to_dataset(data.train, cfg.data.batch_size, shuffle_seed=cfg.seed),
            validation_data=to_dataset(data.val, cfg.data.batch_size),
            epochs=cfg.train.epochs,
            callbacks=fit_callbacks(cfg.train),
            verbose=cfg.train.verbose,
            shuffle=False,  # the training dataset reshuffles itself every epoch
        ).history
        test = log_results(model, history, data, cfg.data.batch_size, cfg.train.log_model)
    return RunResult(run.info.run_id, history["val_accuracy"][-1], test["accuracy"], data.baseline_accuracy)
