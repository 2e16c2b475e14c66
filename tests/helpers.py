"""Helpers the tests share (the fixtures that use them are in conftest.py): the shared
data and weights, small real image sets, generated images, store overrides, config
composition, and real servers and browsers started for a test."""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from catdog import PROJECT_ROOT
from catdog.config import load
from catdog.launch.job import free_port

SHARED = PROJECT_ROOT.parent / "shared"
ARCHIVE = Path(urlparse(os.environ.get("CATDOG_DATA_URL", "")).path or SHARED / "data" / "cats_and_dogs_filtered.zip")
WEIGHTS = Path(
    os.environ.get("CATDOG_BACKBONE_WEIGHTS")
    or SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
)


def extract_subset(archive: Path, dest: Path, per_class: dict[str, int]) -> Path:
    """The first N real JPEGs per class of each split, in the archive's own layout."""
    taken = Counter()
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            parts = name.split("/")
            if not name.endswith(".jpg") or len(parts) != 4:
                continue
            key = (parts[1], parts[2])
            if taken[key] < per_class[parts[1]]:
                taken[key] += 1
                zf.extract(name, dest)
    return dest / "cats_and_dogs_filtered"


def write_images(folder: Path, counts: dict[str, int], size=(40, 56), seed=0) -> Path:
    """Generated JPEGs, FOLDER/<class>/<i>.jpg; each class has its own colour cast."""
    import keras

    rng = np.random.default_rng(seed)
    for label, (name, n) in enumerate(counts.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image = rng.integers(0, 256, size=(*size, 3)).astype("float32")
            image[..., label % 3] = 255
            keras.utils.save_img(folder / name / f"{i}.jpg", image)
    return folder


def store_overrides(root: Path) -> list[str]:
    """A fresh SQLite store under ROOT, with the artifacts, feature cache and tuner projects
    that hang off `paths.mlruns_dir`. The URI is explicit so MLFLOW_TRACKING_URI cannot win."""
    return [f"paths.mlruns_dir={root}", f"tracking.uri=sqlite:///{root}/mlflow.db"]


def compose(*overrides: str, config: str = "train"):
    return load(config, list(overrides))


def start_server(command: list[str], url: str, env: dict, timeout: float = 180) -> subprocess.Popen:
    """Start a real server process and return once URL answers; fail the test if it dies
    or does not answer within TIMEOUT seconds."""
    # Its own process group: `mlflow server` serves from a child process, and a test that
    # stops "the server" must stop both (stop_server).
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{command[0]} did not start: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)


def stop_server(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
    """Send SIG to a server started by start_server and every process it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(timeout=timeout)


def tracking_server(
    root: Path,
    *extra: str,
    env: dict | None = None,
    artifacts: bool = True,
    backend: str | None = None,
    port: int | None = None,
):
    """A real `mlflow server` on 127.0.0.1 (PORT, else a free one) over BACKEND (default: a
    SQLite store under ROOT), proxying artifacts to ROOT/artifacts; returns (process, URI)
    once it answers."""
    port = port or free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        *extra,
        "--backend-store-uri",
        backend or f"sqlite:///{root}/mlflow.db",
    ]
    if artifacts:
        command += ["--serve-artifacts", "--artifacts-destination", str(root / "artifacts")]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    return start_server(command, f"{uri}/health", env, timeout=90), uri


@contextlib.contextmanager
def postgres_server():
    """A real PostgreSQL server of the system's `postgresql` package on a free 127.0.0.1
    port, in a fresh cluster; yields its SQLAlchemy URI, stops it on the way out.
    PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user."""
    bins = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if bins is None:
        pytest.skip("needs PostgreSQL (`make test-full` installs it)")
    bindir = Path(bins).resolve().parent
    data = Path(tempfile.mkdtemp(prefix="catdog-pg-"))
    as_owner = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    run([*as_owner, bindir / "initdb", "-D", data / "db", "-U", "catdog", "-A", "trust"])
    run([*as_owner, bindir / "pg_ctl", "-D", data / "db", "-w", "-l", data / "log",
         "-o", f"-p {port} -h 127.0.0.1 -k {data}", "start"])  # fmt: skip
    try:
        run([*as_owner, bindir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "catdog", "mlflow"])
        yield f"postgresql://catdog@127.0.0.1:{port}/mlflow"
    finally:
        run([*as_owner, bindir / "pg_ctl", "-D", data / "db", "-m", "fast", "stop"])
        shutil.rmtree(data, ignore_errors=True)


def chromium(tmp_path: Path) -> list[str]:
    """Headless Chromium's command line (own profile, no background traffic), or a skip."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("needs chromium (`make test-full` installs it)")
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path}/profile",
    ]


def variant_row(variant, val_right, val_loss, minutes=1.0, n_val=800):
    """A review page's row built by hand: VAL_RIGHT images right per seed, every test image right."""
    from catdog import stats
    from catdog.report.summary import VariantRow

    k = len(val_right)
    test = stats.estimate(np.ones((k, 200)))
    return VariantRow(
        variant=variant, runs=k, seeds=[str(s) for s in range(k)], val_accuracies=[v / n_val for v in val_right],
        val_correct=list(val_right), n_val=n_val, val_losses=[val_loss] * k, test=test,
        test_accuracies=[1.0] * k, test_correct=[200] * k, n_test=200, baseline_accuracy=0.5, p_vs_baseline=0.0,
        not_above_baseline=[], best_run_id="0" * 32, brier=None, wall_seconds=[60 * minutes] * k,
        cost_seconds=[60 * minutes] * k, cache_seconds=None, cache_borrowed=False, cached=False, epochs=20,
        images_per_s=None, peak_memory_gb=None, contended=0, commits=["abc"],
        seed_variance=stats.seed_variance([v / n_val for v in val_right]),
    )  # fmt: skip


def tiny_backbone(input_shape, weights, pooling=None):
    """A backbone of one strided convolution, for tests that add a backbone by config."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, strides=4, name="tiny_conv")(inputs)
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="tiny")
