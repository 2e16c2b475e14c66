"""MLflow: one store for every run, runs that always end, and what each run records."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import os
import subprocess
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf

from catdog import PROJECT_ROOT, CatdogError, RunFailure, decision_rule
from catdog.schema import RunConfig, TrackingConfig
from catdog.tracking.record import BASELINE_ACCURACY, CONFIG, KIND_TAG, SKIPPED_IMAGES

# The model registry's entry for the project's classifier, and the alias of the one to use.
REGISTERED_MODEL, CHAMPION = "catdog-classifier", "champion"
DIRTY_TAG = "git_dirty"  # "true": the run's code had uncommitted changes to tracked files


# What MLflow infers for our Keras models (it loads each one in a subprocess to find out:
# about 8 s a run here, and a second copy of the weights in memory); pinned to what is
# installed, as its inference pins them.
MODEL_PACKAGES = ("mlflow", "keras", "numpy", "tensorflow")


@functools.cache
def model_requirements() -> list[str]:
    """The pip requirements a logged model records, for `log_model(pip_requirements=...)`."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in MODEL_PACKAGES]


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, with one line, on a store that cannot be used: MLflow's own client
    retries an unreachable server for minutes, after the run's work is done."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
        except urllib.error.HTTPError:
            pass  # it answered (an auth-protected server may refuse even /health)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RunFailure(
                f"tracking server {redact(uri)} does not answer ({reason}); start it (make server) "
                "or point MLFLOW_TRACKING_URI / tracking.uri at a running one"
            ) from exc
    elif parsed.scheme == "sqlite" and uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///") :]).parent
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and not os.access(existing, os.W_OK):
            raise CatdogError(f"tracking store folder {existing} is not writable; choose another tracking.uri")


# What the MLflow UI shows for the project's experiments: a note saying what they hold, and
# their kind (model training, not GenAI). MLflow 3.17's UI still opens on its GenAI view
# unless a link carries ?workflowType=machine_learning, so the links we print carry it.
EXPERIMENT_TAGS = {
    "mlflow.note.content": (
        "catdog-study: cats-vs-dogs Keras variants (the model configs in conf/model/). Runs are tagged "
        "`kind` (train, search, trial, seed, retrain, report), `variant` and `seed`; compare them on "
        "metrics.model_val_accuracy (choose) and metrics.test_accuracy (report) against "
        "metrics.baseline_accuracy. The review report is the artifact of the latest `kind = report` run."
    ),
    "mlflow.experimentKind": "custom_model_development",
}


# MLflow samples a run's system metrics every 10 s by default: most runs here take seconds
# to minutes. MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL still overrides it.
SYSTEM_METRICS_INTERVAL_S = 2


def configure(tracking_cfg: TrackingConfig) -> str:
    """Point MLflow at the configured store and experiment; returns the experiment id."""
    from mlflow.environment_variables import MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL

    if MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL.get() is None:
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    mlflow.set_tracking_uri(tracking_cfg.uri)
    with store_lock(tracking_cfg.uri):
        return _set_experiment(tracking_cfg)


@contextmanager
def store_lock(uri: str):
    """Jobs started together on a new SQLite store race to create its schema (and crash);
    one at a time they don't. A file lock beside the database; nothing for servers."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _set_experiment(tracking_cfg: TrackingConfig) -> str:
    name = tracking_cfg.experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if _is_local(tracking_cfg.uri):
            # Without an explicit location MLflow puts artifacts under the *current*
            # directory, which would scatter them across wherever commands were run.
            location = (Path(tracking_cfg.artifact_root) / name).resolve().as_uri()
        try:
            experiment_id = mlflow.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
        except MlflowException:  # created meanwhile by a parallel job
            experiment_id = mlflow.get_experiment_by_name(name).experiment_id
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def redact(uri: str) -> str:
    """URI without a password, for logs, params and reports."""
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    netloc = f"{parsed.username}:***@{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
    return parsed._replace(netloc=netloc).geturl()


def is_server(uri: str) -> bool:
    """Whether URI is a tracking server (http or https), not a store of its own."""
    return urlparse(uri).scheme in ("http", "https")


def _is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("sqlite", "file", "")


@contextmanager
def tracked_run(**start_run_kwargs):
    """`mlflow.start_run` whose run never stays RUNNING: Ctrl-C ends it KILLED."""
    run = mlflow.start_run(**start_run_kwargs)
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        # A server that stopped answering cannot be told: the error that says so (and
        # where the run's results were kept) must reach the user, not this one.
        with contextlib.suppress(MlflowException):
            mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def flatten(cfg, prefix: str = "") -> dict[str, object]:
    """Nested config -> {"model.dropout": 0.2, ...}; lists stay whole values."""
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def log_config(cfg: RunConfig) -> None:
    """Every resolved config value as a param, and the whole config as config.yaml."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["tracking"]["uri"] = redact(resolved["tracking"]["uri"])
    mlflow.log_params(flatten(resolved))
    mlflow.log_text(OmegaConf.to_yaml(resolved), CONFIG)


@functools.cache
def git_commit() -> str | None:
    """The commit of the code this process runs: read once, at its first run, so that a
    long multirun keeps tagging the code it loaded even if the checkout moves meanwhile."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


@functools.cache
def uncommitted_changes() -> bytes | None:
    """The tracked files' changes against that commit (`git diff HEAD`; empty when there are
    none), read once like the commit; None outside a git checkout."""
    try:
        return subprocess.run(["git", "diff", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def uncommitted_digest() -> str | None:
    """A digest of those changes ("" when there are none; None outside a git checkout)."""
    changes = uncommitted_changes()
    if changes is None:
        return None
    return hashlib.sha256(changes).hexdigest()[:16] if changes else ""


def log_code_changes() -> None:
    """A dirty tree's diff as the artifact `code/uncommitted.diff`: MLflow records only the
    commit, which is not the code such a run ran."""
    changes = uncommitted_changes()
    if changes:
        mlflow.log_text(changes.decode(errors="replace"), "code/uncommitted.diff")


def code_version() -> tuple[str | None, str | None]:
    """The commit and the digest of uncommitted changes, read once per process: entry points
    call it first, so that edits made while a long multirun goes on are not mistaken for
    the code it runs."""
    return git_commit(), uncommitted_digest()


def git_dirty() -> bool | None:
    """Whether tracked files differ from that commit: a run of uncommitted code says so."""
    digest = uncommitted_digest()
    return None if digest is None else bool(digest)


def run_tags(kind: str, **extra) -> dict[str, str]:
    """A run's tags: its kind, owner process, environment, the decision rule in force when it
    started and the incumbent it would be judged against, its code version and EXTRA."""
    from catdog.config import preset_variant
    from catdog.tracking.environment import environment
    from catdog.tracking.stale import owner_tags

    tags = {
        KIND_TAG: kind,
        **owner_tags(),
        **environment(),
        decision_rule.TAG: decision_rule.VERSION,
        decision_rule.INCUMBENT_TAG: preset_variant(decision_rule.INCUMBENT_PRESET),
        **{k: str(v) for k, v in extra.items() if v is not None},
    }
    commit = git_commit()
    if commit:
        # MLflow's own tag: the UI shows it as the run's source version.
        tags["mlflow.source.git.commit"] = commit
        tags[DIRTY_TAG] = str(git_dirty()).lower()
    return tags


def log_data(data) -> None:
    """Class counts, baseline and content hashes of the splits this run used (`data_hash`:
    the decoded pixels; `data_id`: the files, whatever the image size), and each split
    as an MLflow dataset input (the runs table's Dataset column and filter)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = [
        DatasetInput(
            Dataset(name=f"cats_and_dogs-{split}", digest=data.data_hash, source_type="local", source=data.source),
            tags=[InputTag("mlflow.data.context", split)],
        )
        for split in data.splits()
    ]
    log_inputs(mlflow.active_run().info.run_id, inputs)
    hashes = {"data_hash": data.data_hash, "data_id": data.data_id}
    mlflow.log_params({**data.summary(), **hashes, "data_source": data.source})
    mlflow.log_metrics({BASELINE_ACCURACY: data.baseline_accuracy, SKIPPED_IMAGES: len(data.skipped)})
    if data.skipped:
        mlflow.log_dict([{"file": f, "reason": why} for f, why in data.skipped], "data/skipped_images.json")


def log_inputs(run_id: str, inputs: list) -> None:
    """MLflow's `log_inputs`, safe when parallel jobs log the same new dataset at once: the
    store looks the dataset up and then inserts it, so all but one of them fail on its
    unique key (SQLite and PostgreSQL alike, locally or through a server). A failed try is
    rolled back whole, and the next one finds the rows the winners made."""
    client = mlflow.MlflowClient()
    for attempt in range(INPUT_TRIES):
        try:
            return client.log_inputs(run_id, datasets=inputs)
        except MlflowException as exc:
            if "unique constraint" not in str(exc).lower() or attempt == INPUT_TRIES - 1:
                raise


# Jobs that each win one of the splits' datasets can all lose a try: a few more settle it.
INPUT_TRIES = 5
