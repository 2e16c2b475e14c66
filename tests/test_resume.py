"""A long study stopped by a scheduler and started again: it resumes where it was."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from catdog.config import load
from catdog.launch.progress import time_left
from catdog.launch.sweep import jobs as expand

BIN = Path(sys.executable).parent


def _study(small_data, root: Path) -> list[str]:
    return [
        str(BIN / "catdog-train"),
        "--multirun",
        "model=cnn,augmented",
        "seed=0,1",
        f"data.dir={small_data}",
        "train.epochs=1",
        "train.verbose=0",
        "train.log_model=false",
        "tracking.experiment=resume",
        f"tracking.uri=sqlite:///{root}/mlflow.db",
        f"paths.mlruns_dir={root}",
        f"paths.reports_dir={root}/reports",
        f"hydra.sweep.dir={root}/multirun/study",
        "study.skip_finished=true",
        "study.live_report=true",
    ]


def _runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("resume")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_a_study_stopped_with_sigterm_resumes_where_it_was(small_data, tmp_path):
    command = _study(small_data, tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 300
    while not any(r.info.status == "FINISHED" for r in _runs(client) if (tmp_path / "mlflow.db").exists()):
        assert first.poll() is None and time.monotonic() < deadline, "no run finished"
        time.sleep(0.5)
    first.send_signal(signal.SIGTERM)
    out1 = first.communicate(timeout=120)[0]
    assert first.returncode != 0
    [done_first] = [r for r in _runs(client) if r.info.status == "FINISHED"]
    assert re.search(
        r"run 1/4 cnn seed 0: 0 done, 0 skipped, time left unknown: no run measured yet for 1 of cnn, 2 of augmented",
        out1,
    )

    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    out2 = second.stdout + second.stderr
    assert second.returncode == 0, out2[-3000:]
    assert f"skipped: done in run {done_first.info.run_id}" in out2
    assert re.search(r"run 4/4 augmented seed 1: 2 done, 1 skipped, (about .* left|under a minute left)", out2)

    runs = _runs(client)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    keys = sorted((r.data.tags["variant"], r.data.tags["seed"]) for r in finished)
    assert keys == [("augmented", "0"), ("augmented", "1"), ("cnn", "0"), ("cnn", "1")]  # one each
    for run in runs:  # the run the signal stopped, if it had started, is redone, not counted
        assert run.info.status in ("FINISHED", "KILLED")
    assert len({r.data.tags["launch"] for r in finished}) == 2

    page = (tmp_path / "reports" / "resume" / "report.md").read_text()
    assert "4 finished runs" in page and "from 2 launches" in page and "Partial" not in page


@pytest.mark.unit
def test_progress_expands_the_sweep_and_estimates_from_each_variants_runs():
    jobs = expand(["model=cnn,transfer", "seed=0,1", "train.epochs=2"])
    assert jobs[0] == ["model=cnn", "seed=0", "train.epochs=2"] and len(jobs) == 4
    state = {
        "jobs": jobs,
        "ended": [
            {"job": 0, "outcome": "done", "seconds": 600},
            {"job": 1, "outcome": "skipped", "seconds": 5},
        ],
    }
    # Two transfer jobs left, never run: unknown, not guessed from cnn's 10 minutes.
    assert time_left(state) == "time left unknown: no run measured yet for 2 of transfer"
    # The store's earlier transfer runs measure it; this launch's own runs come first.
    assert time_left(state, earlier={"transfer": [50, 70], "cnn": [1]}) == "about 2 min left"
    state["ended"].append({"job": 2, "outcome": "done", "seconds": 120})
    assert time_left(state) == "about 2 min left"  # the last transfer job, at transfer's own pace
    assert time_left(state, running=3) == "under a minute left"  # nothing left but the running one
    jobs.append(["model=augmented", "seed=0", "train.epochs=2"])
    assert time_left(state) == "about 2 min left, plus 1 of augmented (never run here: unknown)"
    assert time_left(state, running=3) == "time left unknown: no run measured yet for 1 of augmented"
    state["ended"][2]["seconds"] = 20  # a short known part reads as such, never "about under a minute"
    assert time_left(state) == "under a minute left, plus 1 of augmented (never run here: unknown)"


@pytest.mark.unit
def test_resume_settings_compose_and_default_to_a_new_run():
    cfg = load("train")
    assert (cfg.study.skip_finished, cfg.study.rerun, cfg.study.live_report) == (False, False, False)
