"""A run's seed decides everything random in it: real one-epoch runs of every variant."""

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from catdog import training
from catdog.training import seeding

VARIANTS = ["cnn", "augmented", "preprocessed", "transfer"]


def _fingerprint(result):
    run = MlflowClient().get_run(result.run_id)
    history = {k: [m.value for m in MlflowClient().get_metric_history(result.run_id, k)] for k in ("loss", "val_loss")}
    return run.data.params["init_weights_digest"], history, run.data.tags["seed"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_seeds_decide_initial_weights_and_history(variant, make_cfg, shared_store):
    runs = {}
    for label, seed in (("a", 1), ("b", 2), ("a again", 1)):
        cfg = make_cfg(variant, shared_store, f"seed={seed}", "train.log_model=false", "tracking.experiment=seeds")
        runs[label] = _fingerprint(training.train(cfg))
    (weights_a, history_a, seed_a), (weights_b, history_b, _), (weights_again, history_again, _) = runs.values()
    assert seed_a == "1"
    assert weights_a != weights_b, "two seeds started from the same weights"
    assert history_a["loss"] != history_b["loss"] and history_a["val_loss"] != history_b["val_loss"]
    assert weights_again == weights_a and history_again == history_a


def test_derived_seeds_differ_per_trial_and_repeat():
    seeds = [seeding.derive(0, trial) for trial in range(20)]
    assert len(set(seeds)) == 20 and seeds == [seeding.derive(0, t) for t in range(20)]
    assert seeding.derive(1, 0) != seeding.derive(0, 0)
    assert all(0 <= s < 2**31 for s in seeds)


def test_no_global_random_state_is_touched_by_plots(make_cfg, shared_store):
    """Drawing the augmentation grids must not move the global generators a run seeded."""
    import random

    import numpy as np

    from catdog.data import load_study_data
    from catdog.training.run import log_data_views

    cfg = make_cfg("augmented", shared_store, "seed=5")
    data = load_study_data(cfg.data)
    mlflow.set_tracking_uri(cfg.tracking.uri)
    with mlflow.start_run():  # MLflow itself draws from `random` to name a run: seed after it, as train() does
        seeding.seed_run(5)
        before = (random.getstate(), np.random.get_state()[1].copy())
        log_data_views(data, cfg)
    assert random.getstate() == before[0] and (np.random.get_state()[1] == before[1]).all()
