"""Faults with real processes, real signals and real files: nothing left RUNNING or corrupt."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from catdog import CatdogError, training
from catdog.data import load_study_data
from catdog.tracking import stale
from catdog.training import features
from catdog.tuning import tune
from helpers import free_port, store_overrides

BIN = Path(sys.executable).parent


def _train_command(small_data, tmp_path, *extra):
    return [
        str(BIN / "catdog-train"),
        "model=cnn",
        f"data.dir={small_data}",
        "train.log_model=false",
        *store_overrides(tmp_path),
        *extra,
    ]


def _start_training(small_data, tmp_path):
    """catdog-train in its own process, returned once its second epoch has begun."""
    command = _train_command(small_data, tmp_path, "train.epochs=200", f"hydra.run.dir={tmp_path}/out")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        if line.startswith("Epoch 3/") or time.monotonic() > deadline:
            break
    return proc


def _only_run(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return run


def test_sigterm_ends_the_run_killed_with_its_history(small_data, tmp_path):
    proc = _start_training(small_data, tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    assert "interrupted; the run is marked KILLED" in out.splitlines()[-1]
    run = _only_run(tmp_path)
    assert run.info.status == "KILLED"
    assert len(MlflowClient().get_metric_history(run.info.run_id, "val_accuracy")) >= 2


def test_a_killed_process_leaves_a_stale_run_that_can_be_marked_failed(small_data, tmp_path, capsys):
    from catdog.cli import main as catdog_main

    proc = _start_training(small_data, tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    run = _only_run(tmp_path)
    assert run.info.status == "RUNNING"  # SIGKILL: nothing could end it
    assert run.data.tags[stale.HOST_TAG] == socket.gethostname() and run.data.tags[stale.PID_TAG] == str(proc.pid)
    with mlflow.start_run(tags=stale.owner_tags()) as alive:  # a live process's run is left alone
        assert [s.run_id for s in stale.find_stale()] == [run.info.run_id]
        uri = ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
        catdog_main([*uri, "runs", "--stale"])
        assert run.info.run_id in capsys.readouterr().out
        assert MlflowClient().get_run(run.info.run_id).info.status == "RUNNING"
        catdog_main([*uri, "runs", "--stale", "--mark-failed"])
        assert "marked FAILED" in capsys.readouterr().out
    ended = MlflowClient().get_run(run.info.run_id)
    assert ended.info.status == "FAILED" and "process" in ended.data.tags["mlflow.note.content"]
    assert MlflowClient().get_run(alive.info.run_id).info.status == "FINISHED"
    catdog_main([*uri, "runs", "--stale"])
    assert "No stale runs" in capsys.readouterr().out


def test_an_unreachable_tracking_server_fails_fast(make_cfg, tmp_path):
    port = free_port()  # nothing listens there
    cfg = make_cfg("cnn", [f"paths.mlruns_dir={tmp_path}", f"tracking.uri=http://127.0.0.1:{port}"])
    start = time.monotonic()
    with pytest.raises(CatdogError, match=f"tracking server http://127.0.0.1:{port} does not answer"):
        training.train(cfg)
    assert time.monotonic() - start < 10


# Run as root, the check runs in a child that drops to `nobody` once Python has loaded what
# it needs (the interpreter lives under /root here, which `nobody` may not enter).
AS_NOBODY = """
import os, sys
from catdog import CatdogError, training
from catdog.config import load
cfg = load("train", [f"tracking.uri=sqlite:///{sys.argv[1]}/store/mlflow.db"])
if os.geteuid() == 0:
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
try:
    training.train(cfg)
except CatdogError as exc:
    print(exc)
"""


def test_a_read_only_store_folder_is_refused():
    """As an unprivileged user (root may write anywhere), also when the suite runs as root."""
    # Not under pytest's tmp_path: its folders are private to the user running the suite.
    place = Path(tempfile.mkdtemp(prefix="catdog-readonly-"))
    try:
        place.chmod(0o755)
        locked = place / "locked"
        locked.mkdir(mode=0o555)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run([sys.executable, "-c", AS_NOBODY, str(locked)], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == f"tracking store folder {locked} is not writable; choose another tracking.uri"
        assert not (locked / "store").exists()
    finally:
        shutil.rmtree(place, ignore_errors=True)


# The data is decoded before the child drops to `nobody` (pytest's folders are private).
REFUSED_ARTIFACTS = """
import os, sys
from catdog import CatdogError, training
from catdog.config import load
from catdog.data import load_study_data
place, data_dir = sys.argv[1:]
cfg = load("train", [f"data.dir={data_dir}", "train.epochs=1", "train.verbose=0", f"paths.mlruns_dir={place}/db",
                     f"tracking.uri=sqlite:///{place}/db/mlflow.db", f"tracking.artifact_root={place}/artifacts"])
data = load_study_data(cfg.data)
data.data_id  # read the files while still allowed to
import mlflow.store.artifact.local_artifact_repo  # loaded before the interpreter's folder closes to nobody
from catdog import tracking
from catdog.tracking.environment import machine
machine()  # the library versions, read (and their metadata modules loaded) while still allowed to
tracking.configure(cfg.tracking)  # the store and its modules, made as root: then handed over
for name in os.listdir(f"{place}/db"):
    os.chmod(f"{place}/db/{name}", 0o777)
if os.geteuid() == 0:
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
try:
    training.train(cfg, data=data)
except CatdogError as exc:
    print(type(exc).__name__, exc)
"""


def test_an_artifact_store_that_refuses_a_write_fails_the_run_in_one_line(small_data):
    place = Path(tempfile.mkdtemp(prefix="catdog-artifacts-"))
    try:
        place.chmod(0o755)
        (place / "db").mkdir(mode=0o777)
        (place / "db").chmod(0o777)
        (place / "artifacts").mkdir(mode=0o555)  # the store's artifacts: not writable
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLCONFIGDIR": str(place / "db")}
        proc = subprocess.run(
            [sys.executable, "-c", REFUSED_ARTIFACTS, str(place), str(small_data)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip().splitlines()[-1].startswith(f"RunFailure could not write {place}/artifacts")
        # The tracking store stays readable and consistent: the run is there, FAILED.
        client = MlflowClient(f"sqlite:///{place}/db/mlflow.db")
        [run] = client.search_runs([client.get_experiment_by_name("catdog-study").experiment_id])
        assert run.info.status == "FAILED" and run.data.params["model.name"] == "cnn"
    finally:
        shutil.rmtree(place, ignore_errors=True)


def test_a_corrupt_feature_cache_is_rebuilt_not_trained_on(make_cfg, tmp_path):
    cfg = make_cfg("transfer", store_overrides(tmp_path))
    data = load_study_data(cfg.data)
    first = features.FeatureCache(data, cfg)
    first.features(cfg)
    views = first.train_features(cfg).numpy()
    files = sorted(Path(cfg.features.cache_dir).glob("*.npy"))
    assert len(files) == 2 and not list(Path(cfg.features.cache_dir).glob("*.tmp"))
    for path in files:  # a crash mid-write, or a full disk
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again = features.FeatureCache(data, cfg)
    again.features(cfg)
    assert np.array_equal(again.train_features(cfg).numpy(), views)
    assert again.computed == cfg.features.train_views * 48 + 40  # both entries were rebuilt
    assert all(np.load(path).dtype == np.float16 for path in files)  # and are whole again


def test_a_damaged_tuner_project_says_how_to_start_over(make_cfg, tmp_path):
    cfg = make_cfg("transfer", store_overrides(tmp_path), "search.retrain_seeds=0", config="tune")
    tune(cfg)
    [oracle] = Path(cfg.search.project_dir).glob("*/oracle.json")
    oracle.write_text('{"ongoing_trials": {')  # cut short mid-write
    with pytest.raises(CatdogError, match="is damaged .* search.overwrite=true"):
        tune(cfg)
    restarted = tune(
        make_cfg(
            "transfer", store_overrides(tmp_path), "search.retrain_seeds=0", "search.overwrite=true", config="tune"
        )
    )
    assert restarted.settings == 2


@pytest.mark.slow  # eight processes importing TensorFlow, ~50 s
def test_eight_jobs_at_once_on_one_new_sqlite_store(small_data, tmp_path):
    """As a parallel launcher starts them: separate processes, one store, created by none yet."""
    command = _train_command(small_data, tmp_path, "train.epochs=1", "train.verbose=0", "tracking.experiment=parallel")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [*command, f"seed={i}", f"hydra.run.dir={tmp_path}/out{i}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, "\n".join(e[-1500:] for e in errors if e)
    assert not any("database is locked" in e for e in errors)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["parallel"], output_format="list")
    assert sorted(int(r.data.tags["seed"]) for r in runs) == list(range(8))
    assert {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        assert {"test_accuracy", "model_val_accuracy", "val_loss"} <= set(run.data.metrics)
        assert len(MlflowClient().get_metric_history(run.info.run_id, "val_loss")) == 1


@pytest.mark.unit
def test_jobs_logging_the_same_new_dataset_at_once_all_record_it(tmp_path):
    """MLflow looks a dataset up, then inserts it, so jobs that log the same new dataset
    together race on its unique key (without the retry most rounds here lost a run: a
    submitit sweep into a server failed so). Every run ends with its three inputs."""
    import threading

    from mlflow.entities import Dataset, DatasetInput, InputTag

    from catdog.tracking.store import log_inputs

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = MlflowClient()
    experiment = client.create_experiment("race")
    for digest in [f"digest{i}" for i in range(10)]:
        inputs = [
            DatasetInput(
                Dataset(name=f"cats_and_dogs-{split}", digest=digest, source_type="local", source=str(tmp_path)),
                tags=[InputTag("mlflow.data.context", split)],
            )
            for split in ("train", "val", "test")
        ]
        runs = [client.create_run(experiment).info.run_id for _ in range(4)]
        start, errors = threading.Barrier(len(runs)), []

        def log(run_id, inputs=inputs, start=start, errors=errors):
            start.wait()
            try:
                log_inputs(run_id, inputs)
            except Exception as exc:  # any error fails the test below, with its message
                errors.append(exc)

        threads = [threading.Thread(target=log, args=(run_id,)) for run_id in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors[0]
        assert [len(client.get_run(r).inputs.dataset_inputs) for r in runs] == [3] * len(runs)


@pytest.mark.parametrize("kind", ["text", "other network"])
def test_unusable_weights_files_are_one_line_errors(make_cfg, tmp_path, kind):
    import h5py

    weights = tmp_path / "weights.h5"
    if kind == "text":
        weights.write_text("not an HDF5 file")
    else:  # a legacy Keras weights file of a one-layer network
        with h5py.File(weights, "w") as f:
            f.attrs["layer_names"] = [b"dense"]
            f.create_group("dense").attrs["weight_names"] = [b"dense/kernel:0"]
            f["dense"].create_dataset("dense/kernel:0", data=np.zeros((4, 2), "float32"))
    cfg = make_cfg("transfer", store_overrides(tmp_path), f"model.backbone.weights={weights}")
    with pytest.raises(CatdogError, match=f"model.backbone.weights {weights}: not mobilenet_v2"):
        training.train(cfg)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "features").exists()


def test_two_writers_of_one_cache_entry_both_end_with_a_whole_file(make_cfg, tmp_path):
    """Two jobs building the same entry at once: private temporary files, atomic renames."""
    import threading

    cfg = make_cfg("transfer", store_overrides(tmp_path))
    cache = features.FeatureCache(load_study_data(cfg.data), cfg)
    expected = np.arange(200_000, dtype=np.float16).reshape(100, 2000)
    start = threading.Barrier(2)

    def build():
        start.wait()  # both build at the same moment
        time.sleep(0.2)
        return expected.copy(), 100

    results = [None, None]
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, cache._load_or_build({"split": "x"}, build)))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(np.array_equal(r, expected) for r in results)
    [path] = Path(cfg.features.cache_dir).glob("*.npy")
    assert np.array_equal(np.load(path), expected) and not list(path.parent.glob("*.tmp"))
