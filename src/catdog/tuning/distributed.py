"""Keras Tuner's distributed mode: a chief process holds the oracle and serves it over gRPC,
worker processes ask it for trials and run them. The roles come from Keras Tuner's own
environment variables (KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT), so a worker on
another machine is just `catdog-tune` started with them.

What Keras Tuner's chief lacks, added here: it notices a local worker that died and ends
that worker's trial (FAILED, or queued again under the oracle's retry policy) instead of
waiting for it forever, and once the search has handed out its last trial it waits a
bounded time (`tuner.wait_s`) for running trials."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

from omegaconf import OmegaConf

from catdog import RunFailure, private_api
from catdog.launch.job import free_port
from catdog.schema import SearchRunConfig

log = logging.getLogger(__name__)

ID_VAR, IP_VAR, PORT_VAR = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
PARENT_VAR = "CATDOG_SEARCH_PARENT_RUN"


def role() -> str | None:
    """'chief', 'worker', or None (a search in one process), from Keras Tuner's variables."""
    return private_api.tuner_role()


def wait_for_chief(timeout: float) -> None:
    """Block until the chief's oracle answers (so that its parent run exists)."""
    import grpc

    address = f"{os.environ[IP_VAR]}:{os.environ[PORT_VAR]}"
    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise RunFailure(f"no Keras Tuner chief answered at {address} within {timeout:.0f} s") from None


@contextlib.contextmanager
def local_workers(cfg: SearchRunConfig, parent_run_id: str, project_dir: Path):
    """With `tuner.workers=N`: make this process the chief on a free loopback port and start
    N worker processes on the same config; yields {tuner id: process} ({} otherwise).
    On the way out, workers still alive are stopped (SIGTERM ends their runs KILLED)."""
    n = cfg.tuner.workers
    if not n or role() is not None:
        yield {}
        return
    port = str(free_port())
    config = project_dir / "worker-config.yaml"
    project_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(OmegaConf.to_yaml(OmegaConf.merge(cfg, {"tuner": {"workers": 0}}), resolve=True))
    chief_env = {ID_VAR: "chief", IP_VAR: "127.0.0.1", PORT_VAR: port}
    saved = {k: os.environ.get(k) for k in chief_env}
    os.environ.update(chief_env)
    threads = max(1, (os.cpu_count() or 1) // n)
    workers = {}
    try:
        for i in range(n):
            tuner_id = f"worker{i}"
            env = {**os.environ, ID_VAR: tuner_id, PARENT_VAR: parent_run_id, "CATDOG_THREADS": str(threads)}
            command = [sys.executable, "-m", "catdog.tuning.worker", str(config)]
            workers[tuner_id] = subprocess.Popen(command, env=env)
        log.info("Chief on 127.0.0.1:%s with %d worker processes (%d TensorFlow threads each)", port, n, threads)
        yield workers
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in workers.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _end_lost_trial(oracle, tuner_id: str, reason: str, on_lost) -> None:
    from keras_tuner.engine import trial as trial_module

    trial = oracle.ongoing_trials.get(tuner_id)
    if trial is None:
        return
    log.warning("trial %s: %s", trial.trial_id, reason)
    trial.status = trial_module.TrialStatus.INVALID  # the oracle retries it or ends it FAILED
    trial.message = reason
    try:
        oracle.end_trial(trial)
    except RuntimeError as exc:  # too many consecutive failures: the search ends with what it has
        log.error("%s", exc)
    on_lost(trial.trial_id, reason)


def serve_oracle(oracle, workers: dict, wait_s: float, on_lost, stopping) -> None:
    """Serve ORACLE to the workers until the search is over: every local worker has exited,
    or (workers elsewhere) the last trial was handed out and the running ones ended, at
    most WAIT_S seconds later. ON_LOST(trial_id, reason) is told of each trial whose worker
    was lost; STOPPING() says the chief was interrupted."""
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = private_api.serve_oracle_with_grpc(oracle, server)
    server.add_insecure_port(f"{os.environ[IP_VAR]}:{os.environ[PORT_VAR]}")
    server.start()
    deadline = None
    try:
        while not stopping():
            time.sleep(0.5)
            for tuner_id, proc in workers.items():
                if proc.poll() is not None and tuner_id in oracle.ongoing_trials:
                    _end_lost_trial(oracle, tuner_id, f"worker {tuner_id} exited with code {proc.returncode}", on_lost)
            if workers and all(proc.poll() is not None for proc in workers.values()):
                return
            if servicer.stop_triggered:
                if not oracle.ongoing_trials and not oracle.tuner_ids:
                    return
                deadline = deadline or time.monotonic() + wait_s
                if time.monotonic() > deadline:
                    for tuner_id in list(oracle.ongoing_trials):
                        reason = f"worker {tuner_id} gave no result within {wait_s} s"
                        _end_lost_trial(oracle, tuner_id, reason, on_lost)
                    return
    finally:
        server.stop(grace=2)
