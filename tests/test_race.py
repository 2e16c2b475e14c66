"""Racing settings over seeds: the look that drops a setting, on results built by hand, and
real racing searches on a small real subset, read back from a real SQLite store."""

import json
import os
import signal
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from catdog import tracking
from catdog.tuning import tune
from catdog.tuning.race import DROPPED, SURVIVOR, look
from helpers import store_overrides


def _seeds(rng, accuracy: float, k: int, n: int = 800, shared=None) -> np.ndarray:
    """K seeds x N images of 0/1 results near ACCURACY; SHARED: images every seed finds hard."""
    right = rng.random((k, n)) < accuracy
    if shared is not None:
        right[:, shared] = False
    return right.astype(float)


@pytest.mark.unit
def test_a_setting_confidently_worse_is_dropped_after_one_seed_a_close_one_races_on():
    rng = np.random.default_rng(4)
    hard = rng.permutation(800)[:20]
    leader = _seeds(rng, 0.985, 3, shared=hard)
    level = 0.05 / 3  # one-sided, Bonferroni over 3 looks
    worse = look(_seeds(rng, 0.90, 1, shared=hard), leader, level, "7")
    assert worse.dropped and worse.leader == "7" and worse.difference < -0.03 and worse.interval.high < 0
    close = look(_seeds(rng, 0.98, 1, shared=hard), leader, level)
    assert not close.dropped and close.interval.low < 0 < close.interval.high
    # After two seeds the comparison pairs seeds: the leader's first two against these two.
    two = look(_seeds(rng, 0.975, 2, shared=hard), leader, level)
    assert two.seeds == 2 and (two.p < level) == two.dropped


def test_a_finished_seed_without_its_per_image_results_is_named_not_skipped(tmp_path):
    # The race pairs settings seed by seed: a seed skipped would pair seed 2 with seed 1.
    from catdog import RunFailure
    from catdog.tracking import record

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("race-store")
    table = {"image": ["a.jpg", "b.jpg"], "correct": [1, 0]}
    with mlflow.start_run() as setting:
        for index, logged in enumerate((True, False, True)):
            tags = {tracking.KIND_TAG: record.SEED, "seed_index": str(index)}
            with mlflow.start_run(nested=True, tags=tags) as seed:
                if logged:
                    mlflow.log_table(table, record.VAL_PREDICTIONS)
            if index == 1:
                missing = seed.info.run_id
    with pytest.raises(RunFailure, match=f"seed run {missing} is FINISHED without its predictions/val.json"):
        record.seed_results(setting.info.run_id)
    MlflowClient().set_terminated(missing, status="FAILED")  # a failed seed is one the race runs again
    results = record.seed_results(setting.info.run_id)
    assert sorted(results) == [0, 2] and results[0].tolist() == [1.0, 0.0]


def _race_cfg(make_cfg, root, *extra):
    return make_cfg("transfer", store_overrides(root), "search.racing=true", *extra, config="tune")


def _children(parent_id, kind=None):
    kind_filter = f" and tags.{tracking.KIND_TAG} = '{kind}'" if kind else ""
    return mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'{kind_filter}", output_format="list"
    )


def test_a_racing_search_runs_seeds_under_settings_and_names_its_leader(make_cfg, tmp_path):
    summary = tune(_race_cfg(make_cfg, tmp_path, "tuner.max_trials=3", "search.max_seeds=2"))
    client = MlflowClient()
    parent = client.get_run(summary.parent_run_id)
    assert parent.data.tags["stop_reason"] == "max_trials" == summary.stop_reason
    settings = _children(parent.info.run_id, "trial")
    assert len(settings) == 3
    seeds_by_index = {}
    for setting in settings:
        status = setting.data.tags["race_status"]
        seeds = _children(setting.info.run_id, "seed")
        assert len(seeds) == int(setting.data.tags["race_seeds"]) == (2 if status == SURVIVOR else len(seeds))
        assert status in (SURVIVOR, DROPPED)
        scores = []
        for seed in seeds:
            table = client.load_table(seed.info.experiment_id, "predictions/val.json", run_ids=[seed.info.run_id])
            scores.append(table["correct"].mean())
            seeds_by_index.setdefault(seed.data.tags["seed_index"], set()).add(seed.data.tags["seed"])
        # What the oracle learns: the mean over the seeds run, which is the setting's score.
        assert setting.data.metrics["score"] == pytest.approx(np.mean(scores))
        record = json.loads(mlflow.artifacts.load_text(f"runs:/{setting.info.run_id}/race.json"))
        assert record["status"] == status and len(record["running"]) == len(seeds)
    # Common random numbers: every setting's k-th seed is the same seed.
    assert all(len(values) == 1 for values in seeds_by_index.values())
    leader = parent.data.tags["best.trial"]
    assert summary.race["trial"] == leader
    survivors = {s.data.tags["trial_id"]: s.data.metrics["score"] for s in settings
                 if s.data.tags["race_status"] == SURVIVOR}  # fmt: skip
    assert survivors[leader] == max(survivors.values())


def test_the_budget_stops_a_search_and_says_so(make_cfg, tmp_path):
    summary = tune(_race_cfg(make_cfg, tmp_path, "tuner.max_trials=5", "search.budget_minutes=0.001"))
    parent = MlflowClient().get_run(summary.parent_run_id)
    assert parent.data.tags["stop_reason"] == "budget"
    [setting] = _children(parent.info.run_id, "trial")  # the budget was spent during the first
    assert setting.data.tags["race_status"] == "stopped" and setting.data.tags["race_seeds"] == "1"


def test_a_race_stopped_between_seeds_resumes_with_the_seeds_it_has(small_data, weights, tmp_path):
    """Ctrl-C once a setting's first seed has finished; the same command again goes on from
    there: finished seed runs are read back from the store, not trained again."""
    overrides = [
        "model=transfer", f"model.backbone.weights={weights}", f"data.dir={small_data}", "search.racing=true",
        "tuner.max_trials=1", "tuner.epochs=1", "train.verbose=0", "search.retrain_seeds=0",
        *store_overrides(tmp_path), f"hydra.run.dir={tmp_path}/out",
    ]  # fmt: skip
    command = [os.path.join(os.path.dirname(sys.executable), "catdog-tune"), *overrides]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)

    def seeds():
        with tracking.store_lock(uri):  # the search may be setting up the new store's tables
            runs = mlflow.search_runs(
                search_all_experiments=True, filter_string=f"tags.{tracking.KIND_TAG} = 'seed'", output_format="list"
            )
        return [r for r in runs if r.info.status == "FINISHED"]

    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if seeds():
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.2)
    assert proc.wait(timeout=300) != 0  # stopped before the setting's last seed
    before = {r.info.run_id for r in seeds()}
    assert 1 <= len(before) < 3

    subprocess.run(command, check=True, capture_output=True, env=env, timeout=600)
    after = seeds()
    assert before <= {r.info.run_id for r in after}  # kept, not trained again
    assert sorted(r.data.tags["seed_index"] for r in after) == ["0", "1", "2"]
