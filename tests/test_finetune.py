"""The fine-tuned variant, the partial feature cache under it, and other image sizes: real
MobileNetV2 weights, real images, a real SQLite store."""

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from catdog import training
from catdog.data import load_study_data
from catdog.models import backbone_cut
from catdog.models.variants import backbone_layer, build_model
from catdog.training import features, fitting
from catdog.training.plan import fit_plan
from helpers import compose

# MobileNetV2 (no top, 2,257,984 parameters) unfrozen from layer 100: 1,839,616 trainable, the
# TensorFlow tutorial's 1,861,440 less the 21,824 batch-norm scales and offsets, which stay
# frozen (see backbone_cut.unfreeze); the reference head (flatten, dense 64) adds 2,048,194.
TRAINABLE_FROM = {100: 1_839_616 + 2_048_194, 140: 1_032_640 + 2_048_194}
TOTAL = 2_257_984 + 2_048_194


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("cut", [100, 140])
def test_finetuned_composes_and_unfreezes_the_top_layers_only(weights, cut):
    cfg = compose("model=finetuned", f"model.backbone.weights={weights}", f"model.backbone.fine_tune_at={cut}")
    assert cfg.model.name == "finetuned" and cfg.model.pooling == "flatten" and cfg.train.fine_tune.epochs == 10
    model = build_model(cfg.model, (160, 160))
    assert _trainable(model) == 2_048_194  # first stage: the head only
    backbone = backbone_layer(model)
    backbone_cut.unfreeze(backbone, backbone.layers[cut].name)
    assert _trainable(model) == TRAINABLE_FROM[cut] and model.count_params() == TOTAL
    frozen = [layer for layer in backbone.layers[1:cut] if layer.weights]
    assert frozen and not any(layer.trainable for layer in frozen)
    # batch norm in inference mode while fine-tuning: fit's training=True changes nothing
    images = np.random.default_rng(cut).uniform(-1, 1, (2, 160, 160, 3)).astype("float32")
    assert np.array_equal(backbone(images, training=True).numpy(), backbone(images, training=False).numpy())


def test_tutorial_preset_builds_the_tutorials_linear_head(weights):
    cfg = compose("experiment=tutorial", f"model.backbone.weights={weights}")
    assert (cfg.model.pooling, cfg.model.dense_units, cfg.train.optimizer) == ("avg", 0, "rmsprop")
    model = build_model(cfg.model, (160, 160))
    assert _trainable(model) == 1280 * 2 + 2  # pooled features straight to 2 logits
    backbone = backbone_layer(model)
    backbone_cut.unfreeze(backbone, backbone.layers[cfg.model.backbone.fine_tune_at].name)
    assert _trainable(model) == 1_839_616 + 1280 * 2 + 2


def test_finetuned_run_logs_both_stages_as_one_history_and_a_raw_image_model(make_cfg, store):
    cfg = make_cfg("finetuned", store, "train.epochs=2", "train.fine_tune.epochs=1")
    result = training.train(cfg)
    client = MlflowClient()
    history = [m.step for m in client.get_metric_history(result.run_id, "val_accuracy")]
    stages = {m.step: m.value for m in client.get_metric_history(result.run_id, "stage")}
    assert history == [0, 1, 2] and stages == {0: 1, 1: 1, 2: 2}
    run = client.get_run(result.run_id)
    assert run.data.metrics["fine_tune_learning_rate"] == pytest.approx(1e-4)
    assert run.data.params["optimizer_learning_rate"] == "0.0010000000474974513"  # the first stage's, kept
    model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    assert model.input_shape == (None, 160, 160, 3)
    data = load_study_data(cfg.data)
    predicted = model.predict(data.test.images.astype("float32"), verbose=0).argmax(axis=1)
    assert (predicted == data.test.labels).mean() == pytest.approx(result.test_accuracy)
    # the logged backbone carries the fine-tuned weights, not ImageNet's
    fresh = backbone_layer(build_model(cfg.model, (160, 160)))
    logged = backbone_layer(model)
    assert not np.allclose(logged.layers[-3].get_weights()[0], fresh.layers[-3].get_weights()[0])
    assert np.array_equal(logged.layers[10].get_weights()[0], fresh.layers[10].get_weights()[0])


def test_the_cache_is_cut_at_a_block_input():
    # Cutting right at 120 would cache block 13's padded 576-channel expansion, 7x more.
    backbone = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None)
    cuts = {at: backbone.layers[backbone_cut.boundary(backbone, at)].name for at in (80, 100, 120)}
    assert cuts == {80: "block_8_expand", 100: "block_11_expand", 120: "block_13_expand"}


def test_partial_cache_trains_like_images_and_is_keyed_by_the_cut(make_cfg, store):
    cfg = make_cfg("finetuned", store, "train.fine_tune.epochs=1")
    data = load_study_data(cfg.data)
    cache = features.FeatureCache(data, cfg)
    cached = cache.features(cfg)
    assert cache.computed == len(data.train) * cfg.features.train_views + len(data.val) + len(data.test)
    assert cached.shape == (10, 10, 96)  # block 10's output: one tensor crosses the cut
    plan = fit_plan(cfg)
    assert plan.inputs == "activations" and plan.fine_tune_at == 100
    trainable = fitting.build(cfg, data, plan, cached)
    model, top, val_activations = trainable.model, trainable.tuned, cached.val.astype("float32")
    assert top is model.get_layer(fitting.TOP) and trainable.fine_tune_from == "block_11_expand_relu"
    before = top.get_weights()
    ends = []  # after each stage: the top's weights and the whole model's validation accuracy

    class StageEnd(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            accuracy = (model.predict(val_activations, verbose=0).argmax(1) == data.val.labels).mean()
            ends.append((top.get_weights(), accuracy))

    history = fitting.fit(cfg, data, plan, trainable, cached, callbacks=[StageEnd()]).history
    (after_stage1, accuracy1), (after_stage2, _) = ends
    assert all(np.array_equal(a, b) for a, b in zip(before, after_stage1))  # stage 1 trains the head only
    assert not all(np.array_equal(a, b) for a, b in zip(before, after_stage2))
    # Stage 1's logged score is the whole model's (within one image: its inputs are float16).
    assert abs(accuracy1 - history["val_accuracy"][history["stage"].index(2) - 1]) <= 1 / len(data.val)
    on_images = fitting.on_images(cfg, data, plan, trainable)
    from_cache = model.predict(val_activations, verbose=0)
    from_images = on_images.predict(data.val.images.astype("float32"), verbose=0)
    np.testing.assert_allclose(from_cache, from_images, atol=0.05)  # float16 activations
    assert (from_cache.argmax(1) == from_images.argmax(1)).mean() >= 0.95

    # Under an average-pooling head, stage 1 trains on the pooled outputs of the frozen top,
    # through the head's own layers.
    pooled_cfg = make_cfg("finetuned", store, "model.pooling=avg")
    pooled_model = fitting.build(pooled_cfg, data, fit_plan(pooled_cfg), cached).model
    frozen, head = fitting.stage1_parts(pooled_model)
    assert frozen.output_shape == (None, 1280)
    assert head.get_layer("logits") is pooled_model.get_layer("head").get_layer("logits")
    x = val_activations[:16]
    np.testing.assert_allclose(
        head.predict(frozen.predict(x, verbose=0), verbose=0), pooled_model.predict(x, verbose=0), atol=1e-3
    )

    again = features.FeatureCache(data, cfg)
    again.features(cfg)
    assert again.computed == 0  # a second run reads the cache
    moved = make_cfg("finetuned", store, "model.backbone.fine_tune_at=120")
    other = features.FeatureCache(data, moved)
    other.features(moved)
    assert other.computed > 0 and other.base_key != cache.base_key


@pytest.mark.slow  # 224 px backbone passes, ~20 s: kept out of the 15-minute default run
def test_224_pixels_end_to_end(make_cfg, store):
    cfg = make_cfg("transfer", store, "data.image_size=[224,224]", "model.pooling=avg")
    result = training.train(cfg)
    model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    assert model.input_shape == (None, 224, 224, 3)
    data = load_study_data(cfg.data)
    assert data.test.images.shape[1:] == (224, 224, 3)
    # An average-pooling head: pooled features are cached.
    assert features.FeatureCache(data, cfg).features(cfg).shape == (1280,)
    predicted = model.predict(data.test.images.astype("float32"), verbose=0).argmax(axis=1)
    assert (predicted == data.test.labels).mean() == pytest.approx(result.test_accuracy)
