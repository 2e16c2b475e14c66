"""Keras Tuner's distributed mode for real: `catdog-tune tuner.workers=2` starts a chief and
two worker processes on loopback, all writing one SQLite store."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from catdog import tracking
from helpers import free_port

BIN = Path(sys.executable).parent


def _tune(small_data, weights, root: Path, *extra: str, workers: int = 2, env: dict | None = None) -> subprocess.Popen:
    command = [
        str(BIN / "catdog-tune"),
        "model=transfer",
        f"model.backbone.weights={weights}",
        f"data.dir={small_data}",
        f"tuner.workers={workers}",
        "tuner.max_trials=4",
        "search.retrain_seeds=0",
        "search.pooling=null",
        "train.verbose=0",
        f"paths.mlruns_dir={root}",
        f"tracking.uri=sqlite:///{root}/mlflow.db",
        f"hydra.run.dir={root}/out",
        *extra,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _runs(root: Path, kind: str):
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    return mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.{tracking.KIND_TAG} = '{kind}'", output_format="list"
    )


def test_two_workers_run_every_trial_once_under_one_parent(small_data, weights, tmp_path):
    proc = _tune(small_data, weights, tmp_path, "tuner.epochs=1")
    out, _ = proc.communicate(timeout=420)  # a chief that never stops fails the test here
    assert proc.returncode == 0, out[-3000:]
    [parent] = _runs(tmp_path, "search")
    trials = _runs(tmp_path, "trial")
    assert parent.info.status == "FINISHED"
    assert sorted(t.data.tags["trial_id"] for t in trials) == ["0", "1", "2", "3"]
    assert {t.info.status for t in trials} == {"FINISHED"}
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    # trained by the workers, not the chief, each trial with its own seed
    assert {t.data.tags["tuner_id"] for t in trials} <= {"worker0", "worker1"}
    assert str(proc.pid) not in {t.data.tags["pid"] for t in trials}
    assert len({t.data.tags["seed"] for t in trials}) == 4
    assert "best.trial" in parent.data.tags and "Chief on 127.0.0.1" in out


def test_workers_race_settings_against_one_leader_held_in_the_store(small_data, weights, tmp_path):
    """Racing in distributed mode: each worker races its settings against the leader the
    store holds, and the chief's oracle ends the search (here at max_trials)."""
    proc = _tune(small_data, weights, tmp_path, "tuner.epochs=1", "search.racing=true", "search.max_seeds=2")
    out, _ = proc.communicate(timeout=420)
    assert proc.returncode == 0, out[-3000:]
    [parent] = _runs(tmp_path, "search")
    settings = _runs(tmp_path, "trial")
    seeds = _runs(tmp_path, "seed")
    assert parent.data.tags["stop_reason"] == "max_trials" and len(settings) == 4
    assert {t.data.tags["tuner_id"] for t in settings} <= {"worker0", "worker1"}
    assert {s.data.tags["race_status"] for s in settings} <= {"survivor", "dropped"}
    assert {s.data.tags["mlflow.parentRunId"] for s in seeds} <= {t.info.run_id for t in settings}
    assert len(seeds) == sum(int(t.data.tags["race_seeds"]) for t in settings)
    assert parent.data.tags["best.trial"] in {t.data.tags["trial_id"] for t in settings
                                              if t.data.tags["race_status"] == "survivor"}  # fmt: skip


@pytest.mark.slow
def test_a_killed_worker_leaves_its_trial_failed_and_the_search_ends(small_data, weights, tmp_path):
    proc = _tune(small_data, weights, tmp_path, "tuner.epochs=30")
    deadline = time.monotonic() + 300
    victim = None
    while victim is None:
        assert proc.poll() is None and time.monotonic() < deadline, "no trial started"
        time.sleep(2)
        # The tuner's project appears after the chief has made the store: polling a store
        # while its schema is being created would race with the chief (an SQLite store).
        if (tmp_path / "tuner").exists():
            victim = next((t for t in _runs(tmp_path, "trial") if t.info.status == "RUNNING"), None)
    os.kill(int(victim.data.tags["pid"]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    trials = {t.data.tags["trial_id"]: t for t in _runs(tmp_path, "trial")}
    assert trials[victim.data.tags["trial_id"]].info.status == "FAILED"
    assert "exited with code -9" in trials[victim.data.tags["trial_id"]].data.tags["mlflow.note.content"]
    assert "RUNNING" not in {t.info.status for t in trials.values()}
    assert len(trials) == 4  # the other worker ran the rest
    [parent] = _runs(tmp_path, "search")
    assert parent.info.status == "FINISHED"


@pytest.mark.slow
def test_chief_and_worker_started_by_hand_meet_through_keras_tuner_variables(small_data, weights, tmp_path):
    """The multi-machine recipe on one machine: the same command twice, told its role by
    KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT; the worker finds the parent run itself."""
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    procs = {
        role: _tune(
            small_data,
            weights,
            tmp_path,
            "tuner.epochs=1",
            workers=0,
            env={**oracle, "KERASTUNER_TUNER_ID": role},
        )
        for role in ("chief", "worker-b1")
    }
    outs = {role: proc.communicate(timeout=420)[0] for role, proc in procs.items()}
    assert {role: proc.returncode for role, proc in procs.items()} == {"chief": 0, "worker-b1": 0}, outs
    [parent] = _runs(tmp_path, "search")
    trials = _runs(tmp_path, "trial")
    assert parent.info.status == "FINISHED" and "best.trial" in parent.data.tags
    assert sorted(t.data.tags["trial_id"] for t in trials) == ["0", "1", "2", "3"]
    assert {t.data.tags["tuner_id"] for t in trials} == {"worker-b1"}
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
