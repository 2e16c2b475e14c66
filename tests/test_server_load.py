"""Slow: the team server under several people's sweeps at once. 4 client processes each make
10 short runs (real training on a few images, per-epoch metrics, plots and a model) through
one server: every run arrives once and whole. Prints runs per minute and the p50 / p95 time
of a metric batch (docs/team.md quotes them)."""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from helpers import postgres_server, stop_server, tracking_server

CLIENTS, RUNS, EPOCHS = 4, 10, 2

CLIENT = """
import json, sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric
from catdog import training
from catdog.config import load
uri, data_dir, client_id, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
batches = []
for seed in range(runs):
    cfg = load("train", [f"data.dir={data_dir}", f"train.epochs={sys.argv[6]}", "train.verbose=0", f"seed={seed}",
                         f"tracking.uri={uri}", "tracking.experiment=load", f"paths.mlruns_dir={sys.argv[5]}"])
    run_id = training.train(cfg, tags={"client": client_id}).run_id
    metrics = [Metric(f"probe_{i}", float(i), int(time.time() * 1000), 0) for i in range(20)]
    start = time.perf_counter()
    MlflowClient(uri).log_batch(run_id, metrics=metrics)
    batches.append(time.perf_counter() - start)
print(json.dumps(batches))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_four_clients_make_forty_runs_through_one_server(backend, small_data, tmp_path, capsys):
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(postgres_server()) if backend == "postgresql" else None
        server, uri = tracking_server(tmp_path, backend=store)
        stack.callback(stop_server, server)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CATDOG_THREADS": "1"}
        start = time.monotonic()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    CLIENT,
                    uri,
                    str(small_data),
                    str(c),
                    str(RUNS),
                    str(tmp_path / f"c{c}"),
                    str(EPOCHS),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for c in range(CLIENTS)
        ]
        outs = [p.communicate(timeout=1800) for p in procs]
        wall = time.monotonic() - start
        assert [p.returncode for p in procs] == [0] * CLIENTS, "\n".join(err[-2000:] for _, err in outs)
        batches = sorted(t for out, _ in outs for t in json.loads(out.strip().splitlines()[-1]))

        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("load").experiment_id], max_results=1000)
        keys = sorted((r.data.tags["client"], r.data.tags["seed"]) for r in runs)
        assert keys == sorted((str(c), str(s)) for c in range(CLIENTS) for s in range(RUNS))  # none lost, none twice
        for run in runs:
            assert run.info.status == "FINISHED"
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == list(range(EPOCHS))
            assert {"test_accuracy", "probe_19", "peak_rss_mb"} <= set(run.data.metrics)
            assert "plots/accuracy.png" in {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        with capsys.disabled():
            print(
                f"\n{backend}: {CLIENTS} x {RUNS} runs in {wall:.0f} s = {len(runs) / wall * 60:.1f} runs/min; "
                f"metric batch of 20: p50 {1000 * statistics.median(batches):.0f} ms, "
                f"p95 {1000 * batches[int(0.95 * (len(batches) - 1))]:.0f} ms"
            )


@pytest.mark.slow
def test_a_sweep_through_the_submitit_launcher_lands_whole_in_the_server(small_data, tmp_path):
    """The cluster path the docs recommend, minus the scheduler: hydra/launcher=submitit_local
    is submitit_slurm's code path with local processes."""
    server, uri = tracking_server(tmp_path)
    try:
        proc = subprocess.run(
            [
                str(os.path.join(os.path.dirname(sys.executable), "catdog-train")),
                "--multirun",
                "hydra/launcher=submitit_local",
                "hydra.launcher.timeout_min=20",
                f"hydra.launcher.submitit_folder={tmp_path}/submitit/%j",
                "model=cnn,augmented",
                f"data.dir={small_data}",
                "train.epochs=1",
                "train.verbose=0",
                f"tracking.uri={uri}",
                "tracking.experiment=cluster",
                f"paths.mlruns_dir={tmp_path}",
                f"hydra.sweep.dir={tmp_path}/multirun/cluster",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            timeout=1200,
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("cluster").experiment_id])
        assert sorted(r.data.tags["variant"] for r in runs) == ["augmented", "cnn"]
        assert {r.info.status for r in runs} == {"FINISHED"} and {r.data.tags["sweep"] for r in runs} == {"cluster"}
        assert all("test_accuracy" in r.data.metrics for r in runs)
    finally:
        stop_server(server)
