"""Fitting a variant: the model that fit() trains (whole network, head on cached features,
or backbone top + head on cached activations), one or two stages of fit, and the model on
raw images that comes out."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import mlflow
import numpy as np

from catdog.data import StudyData, batches, to_dataset
from catdog.models import backbone_cut
from catdog.models.variants import backbone_layer, build_backbone, build_head, build_model
from catdog.schema import RunConfig, TrainConfig
from catdog.tracking import record
from catdog.training import stopping
from catdog.training.evaluation import evaluate
from catdog.training.features import CachedFeatures, view_dataset
from catdog.training.plan import ACTIVATIONS, FEATURES, IMAGES, FitPlan


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


def fine_tune_learning_rate(train_cfg: TrainConfig) -> float:
    """The second stage's learning rate: its own, else a tenth of the first stage's."""
    rate = train_cfg.fine_tune.learning_rate
    return train_cfg.learning_rate / 10 if rate is None else rate


def compile_model(
    model: keras.Model, train_cfg: TrainConfig, learning_rate: float | None = None, steps: int = 1
) -> keras.Model:
    """STEPS: training steps per call into TensorFlow. A head on cached features takes a
    whole epoch per call: the same weights after the same steps, a sixth less time per fit
    (docs/benchmarks.md); on images it saves nothing, so they keep one."""
    rate = train_cfg.learning_rate if learning_rate is None else learning_rate
    optimizer = keras.optimizers.get({"class_name": train_cfg.optimizer, "config": {"learning_rate": rate}})
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps,
    )
    return model


def epoch_steps(cfg: RunConfig, data: StudyData) -> int:
    """Training steps in an epoch: every cached-feature head fit runs them in one call."""
    return -(-len(data.train) // cfg.data.batch_size)


def fit_callbacks(train_cfg: TrainConfig, continued: bool = False) -> list[keras.callbacks.Callback]:
    """MLflow's per-epoch logging (inside a run) and early stopping when configured; CONTINUED: a second stage."""
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


def kept_epoch(history: dict, train_cfg: TrainConfig) -> int:
    """The epoch (0-based) whose weights the run keeps: with early stopping, Keras restores
    the first epoch of best validation accuracy of the last stage; otherwise the last
    epoch's weights stay."""
    if train_cfg.early_stopping_patience:
        stages = history.get("stage") or [1] * len(history["val_accuracy"])
        start = stages.index(stages[-1])
        return start + int(np.argmax(history["val_accuracy"][start:]))
    return len(history["val_accuracy"]) - 1


TOP = "backbone_top"


@dataclass(frozen=True)
class Trainable:
    """The compiled model fit() trains, and what the second stage of a fine-tuned variant
    unfreezes: `tuned` (the backbone, or its top) from the layer named `fine_tune_from` up."""

    model: keras.Model
    tuned: keras.Model | None = None
    fine_tune_from: str | None = None


def build(cfg: RunConfig, data: StudyData, plan: FitPlan, cached: CachedFeatures | None = None) -> Trainable:
    """What PLAN trains: the whole network; or, on cached features, only the head; or, on a
    fine-tuned variant's cached activations, the top of the backbone (frozen in the first
    stage) and the head."""
    n_classes = len(data.class_names)
    if plan.inputs == FEATURES:
        head = build_head(cfg.model, cached.shape, n_classes, plan.pooled)
        return Trainable(compile_model(head, cfg.train, steps=epoch_steps(cfg, data)))
    if plan.inputs == IMAGES:
        model = build_model(cfg.model, data.image_size, n_classes)
        backbone = tuned = backbone_layer(model) if plan.fine_tune_at is not None else None
    else:
        backbone = build_backbone(cfg.model.backbone, data.image_size)
        tuned = backbone_cut.top_model(backbone, backbone_cut.boundary(backbone, plan.fine_tune_at))
        tuned.trainable = False
        activations = keras.Input(shape=cached.shape, name="cached_activations")
        head = build_head(cfg.model, tuned.output_shape[1:], n_classes)
        model = keras.Model(activations, head(tuned(activations, training=False)), name=cfg.model.name)
    first = None
    if plan.fine_tune_at is not None:
        first = backbone.layers[backbone_cut.check_fine_tune_at(backbone, plan.fine_tune_at)].name
    return Trainable(compile_model(model, cfg.train), tuned, first)


def fit(cfg: RunConfig, data: StudyData, plan: FitPlan, trainable: Trainable, cached=None, callbacks=(), **fit_kwargs):
    """Fit on the training split, validating each epoch; then, for a fine-tuned variant,
    unfreeze the backbone's top, recompile at the fine-tuning learning rate and go on for
    `train.fine_tune.epochs`. Returns the History, whose `history` holds both stages (and
    `stage`: 1 or 2 per epoch). The training order, and the cached view drawn per image,
    follow `cfg.seed`. Ctrl-C and SIGTERM stop it between steps (training.stopping)."""
    with stopping.deferred():
        return _fit(cfg, data, plan, trainable, cached, (*callbacks, stopping.StopBetweenSteps()), **fit_kwargs)


def _fit(cfg: RunConfig, data: StudyData, plan: FitPlan, trainable: Trainable, cached, callbacks, **fit_kwargs):
    # The training dataset reshuffles itself every epoch: shuffle=False.
    fit_kwargs = {"epochs": cfg.train.epochs, "verbose": cfg.train.verbose, "shuffle": False, **fit_kwargs}
    model = trainable.model
    if plan.inputs == ACTIVATIONS:
        frozen, stage1 = stage1_parts(model)
        compile_model(stage1, cfg.train, steps=epoch_steps(cfg, data))
        train_ds, val_ds = _frozen_top_data(cfg, data, cached, frozen)
    else:
        stage1 = model
        train_ds, val_ds = _training_data(cfg, data, plan, cached)
    callbacks_ = [*fit_callbacks(cfg.train), *callbacks]
    result = stage1.fit(train_ds, validation_data=val_ds, callbacks=callbacks_, **fit_kwargs)
    if plan.fine_tune_at is None:
        return result
    if plan.inputs == ACTIVATIONS:
        train_ds, val_ds = _training_data(cfg, data, plan, cached)
    history = result.history
    backbone_cut.unfreeze(trainable.tuned, trainable.fine_tune_from)
    compile_model(model, cfg.train, fine_tune_learning_rate(cfg.train))
    done = len(history["loss"])
    fit_kwargs["epochs"] = done + cfg.train.fine_tune.epochs
    callbacks = [*fit_callbacks(cfg.train, continued=True), *callbacks]
    result = model.fit(train_ds, validation_data=val_ds, callbacks=callbacks, initial_epoch=done, **fit_kwargs)
    stage2 = result.history
    result.history = {k: list(history[k]) + list(stage2[k]) for k in history}
    result.history["stage"] = [1] * done + [2] * len(stage2["loss"])
    if mlflow.active_run():
        rate = fine_tune_learning_rate(cfg.train)
        mlflow.log_metrics({record.FINE_TUNE_START_EPOCH: done, record.FINE_TUNE_LEARNING_RATE: rate})
        for epoch, stage in enumerate(result.history["stage"]):
            mlflow.log_metric("stage", stage, step=epoch)
    return result


def _training_data(cfg: RunConfig, data: StudyData, plan: FitPlan, cached: CachedFeatures | None):
    """The training batches (reshuffled every epoch by the dataset itself) and validation
    batches the whole trainable model fits on."""
    size = cfg.data.batch_size
    if not plan.cached:
        return to_dataset(data.train, size, shuffle_seed=cfg.seed), to_dataset(data.val, size)
    views = view_dataset(cached.train, data.train.labels, size, seed=cfg.seed)
    return views, batches(cached.val, data.val.labels, size)


def stage1_parts(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """The first stage of fine-tuning on cached activations: what stays frozen (the top,
    and an average-pooling head's pooling, which has no weights) and what trains (the rest
    of the head). Both share their layers with MODEL, so the head trains in place."""
    top, head = model.get_layer(TOP), model.get_layer("head")
    pool, *rest = head.layers[1:]
    if not isinstance(pool, keras.layers.GlobalAveragePooling2D):
        return top, head
    # Pooled from the float16 values the unpooled outputs were stored as before: the same
    # numbers, 49x fewer of them at 224 px (1,280 per view instead of 7x7x1,280).
    frozen = keras.Model(top.input, pool(keras.ops.cast(top.output, "float16")), name="frozen_stage1")
    x = pooled = keras.Input(shape=frozen.output_shape[1:], name="pooled")
    for layer in rest:
        x = layer(x)
    return frozen, keras.Model(pooled, x, name="head_on_pooled")


def _frozen_top_data(cfg: RunConfig, data: StudyData, cached: CachedFeatures, frozen: keras.Model):
    """The first stage of fine-tuning on cached activations: the top is still frozen, so its
    outputs are computed once per cached view and only the head trains on them, as fast as a
    `transfer` head instead of a forward pass of the top per image and epoch."""
    size = cfg.features.batch_size
    views = _outputs(frozen, cached.train, size)
    val = _outputs(frozen, cached.val[None], size)[0]
    train_ds = view_dataset(views, data.train.labels, cfg.data.batch_size, seed=cfg.seed)
    return train_ds, batches(val, data.val.labels, cfg.data.batch_size)


def _outputs(part: keras.Model, inputs, batch_size: int) -> np.ndarray:
    """PART's outputs for a stack of inputs (views, n, ...), written batch by batch: the
    whole float32 output of the top (500 MB per view at 224 px) never exists at once.
    Feature maps are stored as float16, like the cache they come from; pooled features,
    small, as they come."""
    dtype = np.float16 if len(part.output_shape) > 2 else np.float32
    out = np.empty((*inputs.shape[:2], *part.output_shape[1:]), dtype)
    for view in range(inputs.shape[0]):
        for start in range(0, inputs.shape[1], batch_size):
            out[view, start : start + batch_size] = part.predict_on_batch(inputs[view, start : start + batch_size])
    return out


def validate(cfg: RunConfig, data: StudyData, trainable: Trainable, cached: CachedFeatures | None = None) -> dict:
    """The fitted weights scored image by image on the validation inputs fit validated on
    (the images, or their cached features): `evaluate`'s scores, whose accuracy and loss
    are the kept epoch's `val_accuracy` and `val_loss`."""
    inputs = data.val.images if cached is None else cached.val
    return evaluate(trainable.model, inputs, data.val.labels, cfg.data.batch_size)


def on_images(cfg: RunConfig, data: StudyData, plan: FitPlan, trainable: Trainable) -> keras.Model:
    """The trained model on raw images: a head trained on cached features goes back on its
    backbone; a top fine-tuned on cached activations goes back on the frozen bottom."""
    n_classes = len(data.class_names)
    if plan.inputs == IMAGES:
        return trainable.model
    if plan.inputs == FEATURES:
        return build_model(cfg.model, data.image_size, n_classes, head=trainable.model, pooled_head=plan.pooled)
    backbone = build_backbone(cfg.model.backbone, data.image_size)
    for layer in trainable.tuned.layers[1:]:  # the top's own input layer has no twin
        backbone.get_layer(layer.name).set_weights(layer.get_weights())
    head = trainable.model.get_layer("head")
    return build_model(cfg.model, data.image_size, n_classes, head=head, backbone=backbone)
