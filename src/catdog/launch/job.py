"""What a job learns from the Hydra launcher that started it: its sweep, and its share of
the machine's cores when jobs run side by side (hydra/launcher=joblib); and a free local
port for processes a job starts (a distributed search's chief)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)


def sweep_tags() -> dict:
    """In a multirun, tags that group the sweep's runs: filter `tags.sweep = '<id>'`."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return {}
    from catdog.launch.progress import LAUNCH_ENV

    return {
        "sweep": Path(hydra_cfg.sweep.dir).name,
        "sweep_job": hydra_cfg.job.num,
        "launch": os.environ.get(LAUNCH_ENV),
    }


def share_cores() -> int | None:
    """With N parallel jobs, give TensorFlow cores/N threads so that the jobs do not
    oversubscribe the machine; returns the thread count set (None: one job at a time)."""
    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher
    n_jobs = launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")) else None
    if not n_jobs:
        return None
    cores = os.cpu_count() or 1
    n_jobs = cores if n_jobs < 0 else n_jobs
    threads = limit_threads(max(1, cores // n_jobs))
    log.info("%d parallel jobs on %d cores: %d TensorFlow thread(s) per job", n_jobs, cores, threads)
    return threads


def limit_threads(threads: int | None) -> int | None:
    """TensorFlow's intra- and inter-op thread pools at THREADS each (None: its default)."""
    if not threads:
        return None
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # a reused worker: its first job set them already
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return threads


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
