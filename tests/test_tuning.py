"""Real Keras Tuner searches on a small real subset, tracked in a real SQLite store."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from catdog import CatdogError, schema, tracking
from catdog.data import load_study_data
from catdog.training import features, seeding
from catdog.training.plan import fit_plan
from catdog.tuning import tune
from catdog.tuning.hypermodel import VariantHyperModel
from catdog.tuning.search import make_tuner, search_spec
from helpers import store_overrides


@pytest.fixture()
def search_cfg(make_cfg, tmp_path):
    """A 2-trial, 1-epoch transfer search in a fresh store under tmp_path."""
    return lambda *extra: make_cfg("transfer", store_overrides(tmp_path), *extra, config="tune")


def _children(parent_id, kind):
    return mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.{tracking.KIND_TAG} = '{kind}'",
        output_format="list",
    )


def test_search_logs_parent_trials_retrains_and_leaderboard(search_cfg):
    summary = tune(search_cfg())
    client = MlflowClient()
    parent = client.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags[tracking.KIND_TAG] == "search"
    trials = _children(parent.info.run_id, "trial")
    assert len(trials) == 2 and {t.info.status for t in trials} == {"FINISHED"}
    for trial in trials:
        assert {"dropout", "dense_units", "rotation_factor"} <= set(trial.data.params)
        assert trial.data.tags["seed"] == str(seeding.derive(0, int(trial.data.tags["trial_id"]), 0))
        assert [m.step for m in client.get_metric_history(trial.info.run_id, "val_accuracy")] == [0]
        assert "score" in trial.data.metrics
        # The trial's kept weights, image by image on validation: its score.
        val = client.load_table(trial.info.experiment_id, "predictions/val.json", run_ids=[trial.info.run_id])
        assert len(val) == 32 and val["correct"].mean() == pytest.approx(trial.data.metrics["score"])
    retrains = _children(parent.info.run_id, "retrain")
    assert sorted(r.data.tags["hparams"] for r in retrains) == ["best", "reference"]
    assert all("test_accuracy" in r.data.metrics for r in retrains)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.json", "search_summary.json", "config.yaml"} <= artifacts
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {
        "plots/objective_vs_trial.png",
        "plots/objective_vs_dropout.png",
        "plots/objective_vs_rotation_factor.png",
    } <= plots
    assert {"best.dropout", "best.dense_units", "best.rotation_factor", "best.trial"} <= set(parent.data.tags)
    assert "data_hash" in parent.data.params and "search.dropout.min" in parent.data.params
    assert {"best_test_accuracy_mean", "reference_test_accuracy_mean", "best_test_lift_over_baseline"} <= set(
        parent.data.metrics
    )


def test_interrupted_search_resumes_without_duplicates(small_data, weights, tmp_path):
    overrides = [
        "model=transfer",
        f"model.backbone.weights={weights}",
        f"data.dir={small_data}",
        "tuner.max_trials=2",
        "tuner.epochs=1",
        "train.verbose=0",
        "search.retrain_seeds=0",
        *store_overrides(tmp_path),
        f"hydra.run.dir={tmp_path}/out",
    ]
    command = [os.path.join(os.path.dirname(sys.executable), "catdog-tune"), *overrides]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    for line in proc.stdout:  # Ctrl-C as soon as the first trial has reported
        if line.startswith("trial 1/2"):
            proc.send_signal(signal.SIGINT)
            break
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert "RUNNING" not in {r.info.status for r in runs}
    [parent] = [r for r in runs if r.data.tags[tracking.KIND_TAG] == "search"]
    assert parent.info.status == "KILLED"

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "trial 1/2" not in rerun.stdout  # the finished trial is not run again
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parents = [r for r in runs if r.data.tags[tracking.KIND_TAG] == "search"]
    assert [p.info.run_id for p in parents] == [parent.info.run_id]
    assert parents[0].info.status == "FINISHED"
    trials = [r for r in runs if r.data.tags[tracking.KIND_TAG] == "trial"]
    assert sorted(t.data.tags["trial_id"] for t in trials) == ["0", "1"]
    assert {t.info.status for t in trials} == {"FINISHED"}


def test_the_tuner_seed_decides_the_trials_zero_included(search_cfg):
    # Keras Tuner takes seed 0 for "unseeded"; the default tuner.seed is 0.
    def trials(seed: int) -> list[dict]:
        cfg = search_cfg(f"tuner.seed={seed}", "features.enabled=false")
        data = load_study_data(cfg.data)
        tuner = make_tuner(cfg, search_spec(cfg, data), VariantHyperModel(cfg, data, None), "-", resume=False)
        return [tuner.oracle.create_trial(tuner.tuner_id).hyperparameters.values for _ in range(3)]

    first = trials(0)
    assert trials(0) == first
    assert trials(1) != first


def test_feature_cache_is_reused_and_invalidated(search_cfg, weights, tmp_path):
    cfg = search_cfg()
    data = load_study_data(cfg.data)
    first = features.FeatureCache(data, cfg)
    views = first.train_features(cfg).numpy()
    assert views.shape == (cfg.features.train_views, 48, 5, 5, 1280) and first.features(cfg).shape == (5, 5, 1280)
    assert first.computed == cfg.features.train_views * 48 + 40

    again = features.FeatureCache(data, cfg)
    assert (again.train_features(cfg).numpy() == views).all() and again.eval_features()[0].shape[0] == 32
    assert again.computed == 0  # everything came from disk: no backbone forward pass

    # Augmentation draws once per `features.batch_size` images, so augmented views are keyed
    # by it; the backbone's outputs do not depend on how many images it sees at once (up to
    # rounding: some CPUs pick different kernels for different batch sizes).
    batched = search_cfg("features.batch_size=7")
    rebuilt = features.FeatureCache(data, batched)
    rebuilt.train_features(batched)
    assert rebuilt.computed == cfg.features.train_views * 48
    fresh = features.FeatureCache(data, search_cfg("features.batch_size=7", f"features.cache_dir={tmp_path}"))
    np.testing.assert_allclose(fresh.eval_features()[1], first.eval_features()[1], rtol=1e-2, atol=4e-3)

    rotated = again.train_features(search_cfg("model.rotation_factor=0.3"))
    assert again.computed == cfg.features.train_views * 48 and rotated.shape == views.shape

    # No augmentation: one view, whichever way "none" is spelled and whatever the view seed.
    plain = again.train_features(search_cfg("model.flip_mode=null", "model.rotation_factor=0"))
    assert plain.shape == (1, *views.shape[1:]) and again.computed == cfg.features.train_views * 48 + 48
    spelled = search_cfg(
        "model.flip_mode=null", "model.rotation_factor=0.0", "model.fill_mode=reflect", "features.seed=7"
    )
    other = features.FeatureCache(data, spelled)
    assert (other.train_features(spelled).numpy() == plain.numpy()).all() and other.computed == 0

    smaller = search_cfg("data.image_size=[96,96]")
    small = features.FeatureCache(load_study_data(smaller.data), smaller)
    assert small.eval_features()[0].shape[1:] == (3, 3, 1280) and small.computed == 40

    other = tmp_path / "other.h5"
    other.write_bytes(Path(weights).read_bytes() + b"\0")
    changed = features.FeatureCache(data, search_cfg(f"model.backbone.weights={other}"))
    assert changed.base_key["weights"] != first.base_key["weights"]


def test_a_new_augmentation_knob_is_one_row_and_cannot_serve_a_stale_cache(search_cfg, monkeypatch):
    """Adding zoom to models/augmentation.py's table (and its key to a config): the cached
    views of two zoom settings are two cache entries, the layer trains, and the run's grid
    is labelled zoom."""
    import keras
    from omegaconf import OmegaConf

    from catdog.models import augmentation
    from catdog.models.variants import augmentation_layers

    zoom = augmentation.Augmentation(
        "zoom", ("zoom_factor",), lambda m: bool(m.get("zoom_factor")),
        lambda m, seed: keras.layers.RandomZoom(m.zoom_factor, seed=seed, name="random_zoom"),
    )  # fmt: skip
    monkeypatch.setattr(augmentation, "AUGMENTATIONS", (*augmentation.AUGMENTATIONS, zoom))

    def zoomed(factor: float):
        # The model schema has no zoom_factor (a real knob would add it there): an untyped copy.
        cfg = OmegaConf.create(OmegaConf.to_container(search_cfg(), resolve=True))
        cfg.model.zoom_factor = factor
        return cfg

    little, more = zoomed(0.1), zoomed(0.3)
    assert augmentation.key(little.model) != augmentation.key(more.model)
    assert [layer.name for layer in augmentation_layers(little.model)][-1] == "random_zoom"
    assert [name for name, _ in augmentation.layers_of(little.model)] == ["flip", "rotation", "zoom"]
    data = load_study_data(little.data)
    cache = features.FeatureCache(data, little)
    cache.train_features(little)
    built = cache.computed
    cache.train_features(more)
    assert cache.computed == 2 * built  # the other zoom is built anew, never served from the first


def test_cached_head_gives_the_same_model_as_the_image_pipeline(search_cfg):
    """The head trained on cached features, put back on its backbone, scores raw test images
    exactly as the head scores the cached test features."""
    from catdog.training import fitting
    from catdog.training.evaluation import evaluate_split

    cfg = search_cfg()
    data = load_study_data(cfg.data)
    plan = fit_plan(cfg)
    cached = features.FeatureCache(data, cfg).features(cfg)
    trainable = fitting.build(cfg, data, plan, cached)
    fitting.fit(cfg, data, plan, trainable, cached, callbacks=[], epochs=2)
    full = fitting.on_images(cfg, data, plan, trainable)
    from_features = trainable.model.predict(cached.test.astype("float32"), verbose=0).argmax(axis=1)
    assert evaluate_split(full, data.test)["accuracy"] == pytest.approx((from_features == data.test.labels).mean())


@pytest.mark.parametrize(
    "override, message",
    [
        ("search.dropout.min=0.6", "min .* must not exceed max"),
        ("search.dropout.min=-0.1", "must lie in"),
        ("search.dense_units=[]", "non-empty list"),
        ("search.dense_units=[-1,64]", r"integers >= 0; got \[-1, 64\]"),
        ("search.rotation_factor.max=-1", "must not exceed max|must lie in"),
        ("tuner.max_trials=0", "tuner.max_trials must be >= 1, got 0"),
        ("search.racing=true tuner.objective=val_loss", "search.racing ranks settings by validation accuracy"),
        ("search.racing=true tuner.executions_per_trial=2", "leave tuner.executions_per_trial at 1"),
        ("search.budget_minutes=0", "search.budget_minutes must be > 0 or null"),
        ("search.max_seeds=0", "search.max_seeds must be >= 1"),
        (
            "search.dropout=null search.dense_units=null search.rotation_factor=null "
            "search.learning_rate=null search.pooling=null",
            "nothing to search: every setting transfer uses is fixed",
        ),
    ],
)
def test_invalid_spaces_fail_before_anything_runs(search_cfg, tmp_path, override, message):
    with pytest.raises(CatdogError, match=message):
        tune(search_cfg(*override.split()))
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "tuner").exists()


def test_a_linear_head_is_in_a_backbones_space_only(search_cfg, make_cfg, tmp_path):
    schema.check_search(search_cfg("search.dense_units=[0,64]"))
    with pytest.raises(CatdogError, match=r"integers >= 1, got \[0, 64\]"):
        schema.check_search(make_cfg("cnn", store_overrides(tmp_path), "search.dense_units=[0,64]", config="tune"))


def test_a_run_trains_the_same_whether_the_cache_is_cold_or_warm(make_cfg, tmp_path):
    from catdog import training

    cfg = make_cfg("transfer", store_overrides(tmp_path), "train.epochs=2", "train.log_model=false")
    cold, warm = training.train(cfg), training.train(cfg)
    history = lambda run: [m.value for m in MlflowClient().get_metric_history(run.run_id, "val_loss")]
    assert history(cold) == history(warm) and cold.test_accuracy == warm.test_accuracy
    assert MlflowClient().get_run(warm.run_id).data.params["features.cached"] == "True"


def test_a_finished_search_is_extended_and_without_its_parent_run_starts_over(search_cfg, tmp_path):
    first = tune(search_cfg("search.retrain_seeds=0"))
    extended = tune(search_cfg("search.retrain_seeds=0", "tuner.max_trials=3"))
    assert extended.parent_run_id == first.parent_run_id and extended.settings == 3
    trials = _children(first.parent_run_id, "trial")
    assert sorted(t.data.tags["trial_id"] for t in trials) == ["0", "1", "2"]
    assert MlflowClient().get_run(first.parent_run_id).info.status == "FINISHED"

    # Trials must never be skipped as 'done' when the tracking store has no record of them.
    fresh_store = tmp_path / "fresh"
    second = search_cfg(
        "search.retrain_seeds=0",
        f"tracking.uri=sqlite:///{fresh_store}/mlflow.db",
        f"tracking.artifact_root={fresh_store}/artifacts",
    )
    summary = tune(second)
    trials = _children(summary.parent_run_id, "trial")
    assert len(trials) == 2 and {t.info.status for t in trials} == {"FINISHED"}


# hyperband (~30 s) in the slow suite only, to keep the default run under 15 minutes
@pytest.mark.parametrize("tuner", ["bayesian", pytest.param("hyperband", marks=pytest.mark.slow)])
def test_every_tuner_runs_its_trials(search_cfg, tuner):
    extra = ["tuner.max_trials=2", "search.retrain_seeds=0", f"tuner={tuner}"]
    if tuner == "bayesian":
        extra.append("tuner.options.num_initial_points=1")
    else:
        extra += ["tuner.options.max_epochs=2", "tuner.options.factor=2"]
    summary = tune(search_cfg(*extra))
    trials = _children(summary.parent_run_id, "trial")
    assert len(trials) == 2 and {t.info.status for t in trials} == {"FINISHED"}


@pytest.mark.slow  # a 2-trial two-stage search, ~40 s: kept out of the 15-minute default run
def test_search_on_finetuned_varies_its_own_knobs_only_where_used(search_cfg, make_cfg, tmp_path):
    from catdog.schema import hp_names

    transfer = make_cfg("transfer", [], "search.pooling=[flatten,avg]", config="tune")
    assert hp_names(transfer) == ["dropout", "dense_units", "rotation_factor", "learning_rate", "pooling"]
    assert "pooling" not in hp_names(make_cfg("cnn", [], config="tune"))
    cfg = make_cfg(
        "finetuned",
        store_overrides(tmp_path),
        "search.retrain_seeds=0",
        "train.fine_tune.epochs=1",
        "search.fine_tune_at=[100,140]",
        "search.pooling=[flatten,avg]",
        config="tune",
    )
    summary = tune(cfg)
    trials = _children(summary.parent_run_id, "trial")
    assert len(trials) == 2 and {t.info.status for t in trials} == {"FINISHED"}
    for trial in trials:
        params = trial.data.params
        assert {"learning_rate", "pooling", "fine_tune_at", "fine_tune_learning_rate"} <= set(params)
        assert 1e-5 <= float(params["fine_tune_learning_rate"]) <= 3e-4
        # the trial trained with its values: two stages, the second at its own rate
        used = trial.data.metrics["fine_tune_learning_rate"]
        assert used == pytest.approx(float(params["fine_tune_learning_rate"]), rel=1e-6)
        history = MlflowClient().get_metric_history(trial.info.run_id, "stage")
        assert [m.value for m in history] == [1, 2]


def test_a_null_setting_stays_at_its_configured_value(make_cfg):
    from catdog.schema import hp_names

    cfg = make_cfg("transfer", [], "search.dropout=null", "search.rotation_factor=null", config="tune")
    schema.check_search(cfg)  # a fixed knob is not a range to check
    assert hp_names(cfg) == ["dense_units", "learning_rate"]


@pytest.mark.unit
def test_every_searched_hyperparameter_is_one_row_from_schema_to_keras_tuner(make_cfg):
    """A row of schema.SEARCHED is all a new hyperparameter needs: its search.<name> key,
    type and default, where it applies, the config value it sets, and how it is drawn."""
    import dataclasses

    import keras_tuner as kt

    from catdog.schema import SEARCHED, SearchConfig
    from catdog.tuning.space import configured, trial_values, with_values

    fields = {f.name for f in dataclasses.fields(SearchConfig)}
    cfg = make_cfg("finetuned", [], "search.pooling=[avg]", config="tune")  # fine-tuned: every row applies
    names = [h.name for h in SEARCHED]
    assert set(names) <= fields
    hp = kt.HyperParameters()
    values = trial_values(hp, cfg)
    assert list(values) == names and set(hp.values) == set(names)
    moved = with_values(cfg, values)
    assert configured(moved) == values  # each value lands on its config path and reads back


@pytest.mark.unit
def test_every_tuner_the_schema_accepts_has_a_tracked_twin_and_oracle():
    from catdog.schema.search import TUNER_CLASSES
    from catdog.tuning.tracked import TUNERS

    assert set(TUNER_CLASSES) == set(TUNERS)
