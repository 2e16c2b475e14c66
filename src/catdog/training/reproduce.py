"""`catdog reproduce RUN_ID`: train a logged run again from its logged config at the current
code, and say metric by metric whether it came out the same, naming what differs between
the two runs (code version, data digest, library versions, CPU instruction sets) where it
did not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from catdog import CatdogError, tracking
from catdog.training.run import train

EXPERIMENT = "reproductions"
TAG = "reproduces"
# What must come out the same: (label, where it is logged, key).
CHECKS = (
    ("validation images right", "metric", "val_correct"),
    ("test images right", "metric", "test_correct"),
    ("initial weights digest", "param", "init_weights_digest"),
    ("validation loss", "metric", "model_val_loss"),
)
# What can explain a difference: (label, where, key).
CONTEXT = (
    ("code version", "tag", "mlflow.source.git.commit"),
    ("uncommitted changes", "tag", tracking.DIRTY_TAG),
    ("data digest", "param", "data_hash"),
    ("TensorFlow", "tag", "env.tensorflow"),
    ("Keras", "tag", "env.keras"),
    ("NumPy", "tag", "env.numpy"),
    ("Python", "tag", "env.python"),
    ("CPU instruction sets", "tag", "env.isa"),
    ("CPU", "tag", "env.cpu"),
    ("TensorFlow threads", "tag", "env.threads"),
    ("oneDNN kernels", "tag", "env.onednn"),
)


@dataclass(frozen=True)
class Check:
    name: str
    logged: str | None
    now: str | None

    @property
    def same(self) -> bool:
        return self.logged == self.now


def _value(run, where: str, key: str) -> str | None:
    if where == "tag":
        return run.data.tags.get(key)
    if where == "param":
        return run.data.params.get(key)
    if key == "val_correct":  # logged as a rate: images right are rate x validation images
        rate = run.data.metrics.get("model_val_accuracy")
        n_val = sum(int(v) for k, v in run.data.params.items() if k.startswith("n_val_"))
        return None if rate is None else str(round(rate * n_val))
    value = run.data.metrics.get(key)
    if value is None:
        return None
    return str(int(value)) if key.endswith("_correct") else repr(value)


def config_of(run, overrides=(), tracking_uri: str | None = None):
    """The run's logged config, logged into the `reproductions` experiment of this store
    (the store and paths of today, never the logged ones), with OVERRIDES applied."""
    from catdog.config import load, one_line

    try:
        logged = OmegaConf.create(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.yaml"))
    except (MlflowException, OSError) as exc:
        raise CatdogError(f"run {run.info.run_id} has no logged config.yaml to train it again from") from exc
    here = load("train")
    # Artifacts go beside the original run's experiment when its store is local.
    location = urlparse(mlflow.get_experiment(run.info.experiment_id).artifact_location)
    root = str(Path(location.path).parent) if location.scheme in ("file", "") else here.tracking.artifact_root
    cfg = OmegaConf.merge(
        logged,
        {"paths": here.paths},
        {"tracking": {**here.tracking, "uri": tracking_uri or here.tracking.uri, "artifact_root": root}},
        {"tracking": {"experiment": EXPERIMENT}, "study": {"skip_finished": False, "live_report": False}},
        {"features": {"cache_dir": here.features.cache_dir}},
    )
    try:
        for o in OverridesParser.create().parse_overrides(list(overrides)):
            OmegaConf.update(cfg, o.key_or_group, o.value(), force_add=False)
    except (HydraException, OmegaConfBaseException) as exc:
        raise CatdogError(one_line(exc)) from exc
    return cfg


def reproduce(run_id: str, overrides=()) -> dict:
    """Train RUN_ID again; returns {"run_id", "new_run_id", "checks", "context", "reproduced"}."""
    client = mlflow.MlflowClient()
    try:
        original = client.get_run(run_id)
    except MlflowException as exc:
        raise CatdogError(f"run {run_id} not found in {mlflow.get_tracking_uri()}") from exc
    if original.data.tags.get(tracking.KIND_TAG) not in ("train", "retrain"):
        raise CatdogError(f"run {run_id} is not a training run (kind {original.data.tags.get(tracking.KIND_TAG)!r})")
    cfg = config_of(original, overrides, mlflow.get_tracking_uri())
    result = train(cfg, tags={TAG: run_id})
    again = client.get_run(result.run_id)
    checks = [Check(label, _value(original, w, k), _value(again, w, k)) for label, w, k in CHECKS]
    context = [Check(label, _value(original, w, k), _value(again, w, k)) for label, w, k in CONTEXT]
    return {
        "run_id": run_id,
        "new_run_id": result.run_id,
        "checks": checks,
        "context": context,
        "reproduced": all(c.same for c in checks),
    }


def lines(outcome: dict) -> list[str]:
    """The outcome as terminal lines: each check, what differs around it, the verdict."""
    out = [f"run {outcome['run_id']} trained again as run {outcome['new_run_id']}:"]
    for c in outcome["checks"]:
        out.append(f"  {c.name:<24} {'same' if c.same else 'DIFFERS'}: logged {c.logged}, now {c.now}")
    differing = [c for c in outcome["context"] if not c.same]
    for c in differing:
        out.append(f"  differs: {c.name}: logged {c.logged}, now {c.now}")
    if outcome["reproduced"]:
        out.append("reproduced: every check came out the same")
    else:
        named = ", ".join(c.name for c in differing) or "nothing recorded (an unseeded source of randomness?)"
        out.append(f"not reproduced; what differs between the two runs: {named}")
    return out
