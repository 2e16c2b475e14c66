"""The installed command lines, run as a user runs them."""

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

BIN = Path(sys.executable).parent


def _run(*args, env_extra=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, env=env, timeout=600)


def test_multirun_gives_one_grouped_run_per_job(small_data, tmp_path):
    db = tmp_path / "mlflow.db"
    proc = _run(
        "catdog-train",
        "--multirun",
        "model=cnn,augmented",
        f"data.dir={small_data}",
        "train.epochs=1",
        "train.log_model=false",
        "tracking.experiment=sweep-test",
        f"tracking.uri=sqlite:///{db}",
        f"tracking.artifact_root={tmp_path}/artifacts",
        f"hydra.sweep.dir={tmp_path}/multirun/sweep-a",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "val_accuracy:" in proc.stdout  # Keras progress: one line per epoch
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    runs = mlflow.search_runs(experiment_names=["sweep-test"], output_format="list")
    assert sorted(r.data.tags["variant"] for r in runs) == ["augmented", "cnn"]
    assert {r.data.tags["sweep"] for r in runs} == {"sweep-a"}
    assert sorted(r.data.tags["sweep_job"] for r in runs) == ["0", "1"]
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_bad_input_is_one_line_and_leaves_nothing(tmp_path):
    proc = _run(
        "catdog-train",
        f"data.dir={tmp_path}/nowhere",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"hydra.run.dir={tmp_path}/out",
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"catdog-train: error: data.dir {tmp_path}/nowhere is not a folder"
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        # Types and keys: Hydra's own message, in one line.
        (
            "model.dropout=abc",
            "Error merging override model.dropout=abc: Value 'abc' of type 'str' could not be converted to Float",
        ),
        (
            "model.dense_units=1.5",
            "Error merging override model.dense_units=1.5: "
            "Value '1.5' of type 'float' could not be converted to Integer",
        ),
        ("model.colour=red", "Could not override 'model.colour': Key 'colour' not in 'ModelConfig'"),
        (
            "model=resnet",
            "In 'train': Could not find 'model/resnet'. "
            "Available options in 'model': augmented, cnn, finetuned, preprocessed, transfer",
        ),
        # Ranges and choices: the schemas' own checks.
        ("model.dense_units=0", "model.dense_units must be >= 1, got 0"),  # a CNN needs its dense layer
        ("model.dropout=1.5", "model.dropout must be in [0, 1), got 1.5"),
        ("train.epochs=0", "train.epochs must be >= 1, got 0"),
        ("train.precision=float8", "train.precision must be one of float32, mixed_bfloat16, got 'float8'"),
        # One bad value of a sweep stops the sweep before its first job.
        ("-m model=cnn,augmented train.epochs=1,0", "train.epochs must be >= 1, got 0"),
    ],
)
def test_bad_settings_are_one_line_and_leave_nothing(tmp_path, override, message):
    proc = _run(
        "catdog-train",
        *override.split(),
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"hydra.run.dir={tmp_path}/out",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"catdog-train: error: {message}"]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "sweep").exists()


def test_a_sweep_job_the_search_cannot_run_stops_the_sweep_before_its_first_job(tmp_path):
    # A check across groups (a policy over seeds ranks by validation accuracy): only the
    # last of the four jobs combines the two values it refuses.
    proc = _run(
        "catdog-tune",
        "-m",
        "search.policy=plain,intensify",
        "tuner.objective=val_accuracy,val_loss",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )
    assert proc.returncode == 2
    # The last line: checking the tuner class imports TensorFlow, which prints its start-up lines first.
    assert proc.stderr.strip().splitlines()[-1] == (
        "catdog-tune: error: search.policy=intensify ranks settings by validation accuracy; tuner.objective is val_loss"
    )
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "sweep").exists()


def test_joblib_multirun_runs_jobs_in_parallel_processes_sharing_the_cores(small_data, tmp_path):
    db = tmp_path / "mlflow.db"
    proc = _run(
        "catdog-train",
        "--multirun",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "model=cnn",
        "seed=0,1",
        f"data.dir={small_data}",
        "train.epochs=1",
        "train.log_model=false",
        "tracking.experiment=parallel",
        f"tracking.uri=sqlite:///{db}",
        f"paths.mlruns_dir={tmp_path}",
        f"hydra.sweep.dir={tmp_path}/multirun/par",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 parallel jobs on" in proc.stdout + proc.stderr
    # Progress lines come from the jobs' own processes too.
    assert re.search(r"run 2/2 cnn seed 1 finished in .*: [12] done, 0 skipped", proc.stdout + proc.stderr)
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    runs = mlflow.search_runs(experiment_names=["parallel"], output_format="list")
    assert sorted(r.data.tags["seed"] for r in runs) == ["0", "1"]
    assert {r.data.tags["sweep"] for r in runs} == {"par"} and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["pid"] for r in runs}) == 2  # two worker processes, not one


@pytest.mark.unit
def test_exit_codes_say_bad_input_from_failure(tmp_path, capsys):
    from catdog.cli import main as catdog_main
    from helpers import free_port

    with pytest.raises(SystemExit) as failed:  # nothing answers there: a failure at run time
        catdog_main(["--tracking-uri", f"http://127.0.0.1:{free_port()}", "compare"])
    with pytest.raises(SystemExit) as bad_input:  # no such experiment: the user's input
        catdog_main(["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "compare", "--experiment", "nope"])
    with pytest.raises(SystemExit) as usage:  # argparse: a usage error
        catdog_main(["compare", "--no-such-flag"])
    assert (failed.value.code, bad_input.value.code, usage.value.code) == (1, 2, 2)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("catdog: error:")]
    assert lines[0].startswith("catdog: error: tracking server http://127.0.0.1:") and "does not answer" in lines[0]
    assert lines[1] == f"catdog: error: no experiment named 'nope' in sqlite:///{tmp_path}/mlflow.db"
