"""`catdog reproduce RUN_ID`: train a logged run again from its logged config at the current
code, and say metric by metric whether it came out the same, naming what differs between
the two runs (code version, data digest, library versions, CPU instruction sets) where it
did not; and check within each run that its logged counts agree with its logged rates and
its per-image tables, so that a headline its own counts contradict never "reproduces"."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from catdog import CatdogError, schema, tracking
from catdog.tracking.record import (
    BASELINE_ACCURACY,
    CONFIG,
    FEATURES_COMPUTED,
    FEATURES_SECONDS,
    FINE_TUNE_LEARNING_RATE,
    FINE_TUNE_START_EPOCH,
    FIT_SECONDS,
    INIT_WEIGHTS_DIGEST,
    LIFT_OVER_BASELINE,
    LOAD_AVG_END,
    LOAD_AVG_START,
    MODEL_EPOCH,
    MODEL_VAL_ACCURACY,
    MODEL_VAL_LOSS,
    N_TEST,
    PEAK_RSS_MB,
    SKIPPED_IMAGES,
    TEST_ACCURACY,
    TEST_CORRECT,
    TEST_LOSS,
    TEST_PREDICTIONS,
    TRAIN_IMAGES_PER_S,
    VAL_PREDICTIONS,
)
from catdog.training.run import train

EXPERIMENT = "reproductions"
TAG = "reproduces"
# What must come out the same: (label, where it is logged, key); a "history" is the metric's
# value at every epoch. Every outcome the review page or the MLflow UI shows: accuracies,
# counts, losses, the epochs that decide which weights are kept, the learning curves.
# The first four names come first and keep their names: scripts read them from --json.
CHECKS = (
    ("validation images right", "metric", "val_correct"),
    ("test images right", "metric", TEST_CORRECT),
    ("initial weights digest", "param", INIT_WEIGHTS_DIGEST),
    ("validation loss", "metric", MODEL_VAL_LOSS),
    ("validation accuracy", "metric", MODEL_VAL_ACCURACY),
    ("test accuracy", "metric", TEST_ACCURACY),
    ("test loss", "metric", TEST_LOSS),
    ("test images", "metric", N_TEST),
    ("baseline accuracy", "metric", BASELINE_ACCURACY),
    ("lift over baseline", "metric", LIFT_OVER_BASELINE),
    ("images skipped", "metric", SKIPPED_IMAGES),
    ("kept epoch", "metric", MODEL_EPOCH),
    ("fine-tuning start epoch", "metric", FINE_TUNE_START_EPOCH),
    ("training accuracy by epoch", "history", "accuracy"),
    ("validation accuracy by epoch", "history", "val_accuracy"),
    ("training loss by epoch", "history", "loss"),
    ("validation loss by epoch", "history", "val_loss"),
)
# Metrics a training run logs that are not checked: they vary from run to run with the
# machine and what else it runs, not with what was learned, or they restate the config.
NOT_CHECKED = (
    FIT_SECONDS,  # wall time
    TRAIN_IMAGES_PER_S,  # wall time
    PEAK_RSS_MB,  # memory, and in a multirun the largest run's so far
    LOAD_AVG_START,  # other work on the machine
    LOAD_AVG_END,
    FEATURES_SECONDS,  # wall time of the backbone pass or of loading its cache
    FEATURES_COMPUTED,  # how warm the feature cache was, not what was learned
    FINE_TUNE_LEARNING_RATE,  # a setting of the logged config, not an outcome
    "stage",  # which epochs fine-tuned: follows from the fine-tuning start epoch and the curves
)
NOT_CHECKED_PREFIX = "system/"  # MLflow's samples of the machine's memory, CPU, disk and network
# Logged as whole numbers: shown as such.
COUNTS = (TEST_CORRECT, N_TEST, SKIPPED_IMAGES, MODEL_EPOCH, FINE_TUNE_START_EPOCH)
# The two runs as the consistency checks' "run" names them, and as lines() does.
RUNS = {"logged": "logged run", "now": "retrained run"}
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
    if where == "history":
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, key)
        # JSON, which reads back a diverged run's NaN and inf (Python literals do not).
        return json.dumps([m.value for m in sorted(history, key=lambda m: m.step)]) if history else None
    if key == "val_correct":  # logged as a rate: images right are rate x validation images
        rate = run.data.metrics.get(MODEL_VAL_ACCURACY)
        return None if rate is None else str(round(rate * _images(run, "val")))
    value = run.data.metrics.get(key)
    if value is None:
        return None
    # A count that is not whole stays visible as logged.
    return str(int(value)) if key in COUNTS and float(value).is_integer() else repr(value)


def _images(run, split: str) -> int:
    """The run's images of SPLIT, from its per-class `n_<split>_<class>` params."""
    return sum(int(v) for k, v in run.data.params.items() if k.startswith(f"n_{split}_"))


def _table_correct(run, path: str) -> int | None:
    """The images right in the run's per-image table at PATH (None: the run has none)."""
    try:
        table = mlflow.MlflowClient().load_table(run.info.experiment_id, path, run_ids=[run.info.run_id])
    except MlflowException:
        return None
    return int(table["correct"].sum())


def consistency(run, who: str) -> list[dict]:
    """Whether RUN's logged counts agree with its logged rates and its per-image tables: each
    {"name", "run" (WHO: "logged" or "now"), "expected", "found", "same"}. A check whose
    numbers the run did not log (older runs, runs without tables) is left out."""
    metrics = run.data.metrics
    n_val, by_class = _images(run, "val"), _images(run, "test")
    n_test = int(metrics[N_TEST]) if N_TEST in metrics else by_class
    correct = metrics.get(TEST_CORRECT)
    pairs = []
    if N_TEST in metrics and by_class:
        pairs.append(("test images against the test images by class", by_class, metrics[N_TEST]))
    if correct is not None and TEST_ACCURACY in metrics and n_test:
        pairs.append(("test images right against test accuracy", round(metrics[TEST_ACCURACY] * n_test), correct))
    if correct is not None and (table := _table_correct(run, TEST_PREDICTIONS)) is not None:
        pairs.append(("test images right against the per-image test table", correct, table))
    if MODEL_VAL_ACCURACY in metrics and n_val and (table := _table_correct(run, VAL_PREDICTIONS)) is not None:
        expected = round(metrics[MODEL_VAL_ACCURACY] * n_val)
        pairs.append(("validation accuracy against the per-image validation table", expected, table))
    # Counts logged as floats compare as numbers, and a count that is not whole shows as logged.
    whole = lambda x: int(x) if float(x).is_integer() else x
    return [{"name": name, "run": who, "expected": whole(e), "found": whole(f), "same": e == f} for name, e, f in pairs]


def config_of(run, overrides=(), tracking_uri: str | None = None):
    """The run's logged config, logged into the `reproductions` experiment of this store
    (the store and paths of today, never the logged ones), with OVERRIDES applied."""
    from catdog.config import load, one_line

    try:
        logged = OmegaConf.create(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{CONFIG}"))
    except (MlflowException, OSError) as exc:
        raise CatdogError(f"run {run.info.run_id} has no logged {CONFIG} to train it again from") from exc
    here = load("train")
    # Artifacts go beside the original run's experiment when its store is local.
    location = urlparse(mlflow.get_experiment(run.info.experiment_id).artifact_location)
    root = str(Path(location.path).parent) if location.scheme in ("file", "") else here.tracking.artifact_root
    # On the schemas: a key added since the run was made takes its default, as the run did.
    groups = {group: OmegaConf.structured(node) for group, node in schema.SCHEMAS.items() if group in logged}
    try:
        logged = OmegaConf.merge(groups, logged)
    except OmegaConfBaseException as exc:
        raise CatdogError(f"run {run.info.run_id}'s logged config no longer fits the schemas: {one_line(exc)}") from exc
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
    """Train RUN_ID again; returns {"run_id", "new_run_id", "checks", "context", "consistency",
    "reproduced"}: reproduced only if every check came out the same and both runs' counts
    agree with their own rates and tables."""
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
    consistent = consistency(original, "logged") + consistency(again, "now")
    return {
        "run_id": run_id,
        "new_run_id": result.run_id,
        "checks": checks,
        "context": context,
        "consistency": consistent,
        "reproduced": all(c.same for c in checks) and all(c["same"] for c in consistent),
    }


def _shown(c: Check) -> str:
    """A check in a line: a curve (a history) by its length when the same, by its first
    differing epoch when not; any other value as it is."""
    if not (c.logged or "").startswith("[") or not (c.now or "").startswith("["):
        return f"{'same' if c.same else 'DIFFERS'}: logged {c.logged}, now {c.now}"
    logged, now = json.loads(c.logged), json.loads(c.now)
    if c.same:
        return f"same: {len(logged)} epochs"
    epoch = next((i for i, (a, b) in enumerate(zip(logged, now)) if a != b), min(len(logged), len(now)))
    first = f"logged {logged[epoch]}, now {now[epoch]}" if epoch < min(len(logged), len(now)) else "lengths differ"
    return f"DIFFERS from epoch {epoch}: {first} ({len(logged)} and {len(now)} epochs)"


def lines(outcome: dict) -> list[str]:
    """The outcome as terminal lines: each check, what differs around it, each run's counts
    that disagree with its own rates, the verdict."""
    out = [f"run {outcome['run_id']} trained again as run {outcome['new_run_id']}:"]
    for c in outcome["checks"]:
        out.append(f"  {c.name:<28} {_shown(c)}")
    differing = [c for c in outcome["context"] if not c.same]
    for c in differing:
        out.append(f"  differs: {c.name}: logged {c.logged}, now {c.now}")
    wrong = [c for c in outcome["consistency"] if not c["same"]]
    for c in wrong:
        out.append(f"  INCONSISTENT in the {RUNS[c['run']]}: {c['name']}: expected {c['expected']}, found {c['found']}")
    if outcome["reproduced"]:
        out.append("reproduced: every check came out the same, and each run's counts agree with its rates")
        return out
    if not all(c.same for c in outcome["checks"]):
        # A logged run whose metrics contradict each other explains a difference no context names.
        unexplained = (
            "nothing recorded (the logged run's metrics disagree with each other)"
            if any(c["run"] == "logged" for c in wrong)
            else "nothing recorded (an unseeded source of randomness?)"
        )
        named = ", ".join(c.name for c in differing) or unexplained
        out.append(f"not reproduced; what differs between the two runs: {named}")
    for who in RUNS:
        names = [c["name"] for c in wrong if c["run"] == who]
        if names:
            out.append(f"not reproduced; the {RUNS[who]}'s own metrics disagree: {', '.join(names)}")
    return out
