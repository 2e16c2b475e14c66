"""Reading a study's runs back from the tracking store: what a report is built from."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from catdog import CatdogError, decision_rule
from catdog.tracking import DIRTY_TAG, KIND_TAG
from catdog.tracking.record import (
    BASELINE_ACCURACY,
    FINISHED,
    LOAD_AVG_END,
    LOAD_AVG_START,
    MODEL_VAL_ACCURACY,
    MODEL_VAL_LOSS,
    PARENT_TAG,
    TEST_ACCURACY,
    TEST_CORRECT,
    TEST_PREDICTIONS,
    VAL_PREDICTIONS,
    find,
)

# An experiment tag a team sets when anything in it was chosen after looking at test scores:
# the report then flags its recommendation as selection-biased.
TEST_USED_TAG = "test_used_for_choice"


# Settings that name, place or log a run rather than change what it learns.
NOT_HYPERPARAMETERS = ("model.name", "model.backbone.weights", "data.dir", "data.url", "data.cache_dir", "seed")
HYPERPARAMETER_PREFIXES = ("model.", "train.", "data.image_size", "features.train_views")
NOT_HYPERPARAMETER_PREFIXES = ("train.verbose", "train.log_model")


def _hyperparameters(params: dict) -> dict[str, str]:
    return {
        k: short(v)
        for k, v in params.items()
        if k.startswith(HYPERPARAMETER_PREFIXES)
        and k not in NOT_HYPERPARAMETERS
        and not k.startswith(NOT_HYPERPARAMETER_PREFIXES)
    }


def short(value: str) -> str:
    """A logged float as 3 significant digits (0.0961, not 0.0960547686314343)."""
    try:
        return f"{float(value):.3g}" if "." in value else value
    except ValueError:
        return value


@dataclass
class RunRecord:
    """One finished training run, as the report sees it."""

    run: mlflow.entities.Run
    group: str  # the variant, or variant + hyperparameter label for a search's retrains

    @property
    def id(self) -> str:
        return self.run.info.run_id

    @property
    def seed(self) -> str:
        return self.run.data.tags.get("seed", "?")

    def metric(self, name: str, default=None):
        return self.run.data.metrics.get(name, default)

    @property
    def val_accuracy(self) -> float:
        """Of the logged weights (older runs recorded only the last epoch's)."""
        return self.metric(MODEL_VAL_ACCURACY, self.metric("val_accuracy"))

    @property
    def test_accuracy(self) -> float:
        return self.metric(TEST_ACCURACY)

    @property
    def val_loss(self) -> float | None:
        """Of the logged weights (older runs recorded only the last epoch's)."""
        return self.metric(MODEL_VAL_LOSS, self.metric("val_loss"))

    def count(self, split: str) -> int:
        return int(sum(int(v) for k, v in self.run.data.params.items() if k.startswith(f"n_{split}_")))

    @property
    def n_test(self) -> int:
        return self.count("test")

    @property
    def test_correct(self) -> int:
        return int(round(self.metric(TEST_CORRECT, self.test_accuracy * self.n_test)))

    @property
    def val_correct(self) -> int:
        return int(round(self.val_accuracy * self.count("val")))

    @property
    def wall_seconds(self) -> float:
        info = self.run.info
        return ((info.end_time or info.start_time) - info.start_time) / 1000

    @property
    def commit(self) -> str:
        commit = self.run.data.tags.get("mlflow.source.git.commit", "unknown")[:10]
        return commit + ("+dirty" if self.run.data.tags.get(DIRTY_TAG) == "true" else "")

    @property
    def hyperparameters(self) -> dict[str, str]:
        """The settings that decide what the run learns (not where it is logged or stored)."""
        return _hyperparameters(self.run.data.params)

    @property
    def rule(self) -> str | None:
        """The decision rule's version when the run started (None: before versions were kept)."""
        return self.run.data.tags.get(decision_rule.TAG)

    @property
    def env(self) -> dict[str, str]:
        return {k[len("env.") :]: v for k, v in self.run.data.tags.items() if k.startswith("env.")}

    @functools.cached_property
    def peak_memory_mb(self) -> float | None:
        """The most memory in use on the machine while the run ran, from MLflow's system
        metrics (sampled every few seconds): the run's own peak, not the process's so far."""
        samples = mlflow.MlflowClient().get_metric_history(self.id, MEMORY_METRIC)
        return max((m.value for m in samples), default=None)

    @property
    def contended(self) -> bool:
        """Other work shared the CPU: the 1-minute load average, at the fit's start or end,
        above the cores plus one (a run alone keeps it near its own threads)."""
        cores = int(self.env.get("cores", "0") or 0)
        loads = [self.metric(k) for k in (LOAD_AVG_START, LOAD_AVG_END)]
        return bool(cores) and any(v is not None and v > cores + 1 for v in loads)


MEMORY_METRIC = "system/system_memory_usage_megabytes"


@functools.cache
def variant_order() -> list[str]:
    """The model configs in the order the study builds on them (conf/model/*.yaml): plain
    CNN, then augmentation, scaling, a pretrained backbone, fine-tuning it; by what each
    adds, so a new model option takes its place without a list to edit."""
    from catdog import CONFIG_DIR
    from catdog.config import load
    from catdog.models.augmentation import augments

    def adds(item) -> tuple:
        file, model = item
        backbone = model.backbone
        return (backbone is not None, bool(backbone and backbone.fine_tune_at), model.preprocess, augments(model), file)

    models = {path.stem: load("train", [f"model={path.stem}"]).model for path in (CONFIG_DIR / "model").glob("*.yaml")}
    return [model.name for _, model in sorted(models.items(), key=adds)]


@dataclass
class Study:
    """Every finished training run of one experiment, grouped, with the searches in it."""

    experiment: mlflow.entities.Experiment
    records: list[RunRecord]
    searches: list[mlflow.entities.Run] = field(default_factory=list)
    # Training runs that did not finish, by status (FAILED, KILLED, RUNNING): counted, not used.
    unfinished: dict[str, int] = field(default_factory=dict)

    @functools.cached_property
    def groups(self) -> dict[str, list[RunRecord]]:
        out: dict[str, list[RunRecord]] = {}
        for record in self.records:
            out.setdefault(record.group, []).append(record)
        known = variant_order()
        order = lambda g: (known.index(g.split(" ")[0]) if g.split(" ")[0] in known else len(known), g)
        return {g: sorted(out[g], key=lambda r: r.seed) for g in sorted(out, key=order)}

    def param(self, name: str) -> str | None:
        values = {r.run.data.params.get(name) for r in self.records}
        return values.pop() if len(values) == 1 else None

    @property
    def baseline(self) -> float:
        return self.records[0].metric(BASELINE_ACCURACY)

    @property
    def incumbent(self) -> str | None:
        """The incumbent the study is judged against: the variant `experiment=best` trained
        when its first run was made (recorded on the run), None for runs made before that
        was recorded. Never today's preset: the same store gives the same decision."""
        first = min(self.records, key=lambda r: r.run.info.start_time)
        return first.run.data.tags.get(decision_rule.INCUMBENT_TAG)

    @property
    def span(self) -> tuple[datetime, datetime]:
        start = min(r.run.info.start_time for r in self.records)
        end = max(r.run.info.end_time or r.run.info.start_time for r in self.records)
        return tuple(datetime.fromtimestamp(t / 1000, UTC) for t in (start, end))


def _group(run) -> str:
    variant = run.data.tags.get("variant", "?")
    if run.data.tags.get(KIND_TAG) == "retrain":
        parent = run.data.tags.get(PARENT_TAG, "")[:8]
        return f"{variant} ({run.data.tags.get('hparams', '?')} of search {parent})"
    return variant


def load_study(experiment_name: str, sweep: str | None = None) -> Study:
    """FINISHED training and retraining runs with a test score, and FINISHED searches;
    only the runs of one multirun when SWEEP names it. Refuses (one line) when the runs
    were trained on different data."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise CatdogError(f"no experiment named {experiment_name!r} in {mlflow.get_tracking_uri()}")
    runs = find([experiment.experiment_id], tags={"sweep": sweep} if sweep else None)
    finished = [r for r in runs if r.info.status == FINISHED]
    training = [r for r in runs if r.data.tags.get(KIND_TAG) in ("train", "retrain")]
    records = [
        RunRecord(r, _group(r)) for r in training if r.info.status == FINISHED and TEST_ACCURACY in r.data.metrics
    ]
    searches = [r for r in finished if r.data.tags.get(KIND_TAG) == "search"]
    if not records:
        scope = f" in sweep {sweep!r}" if sweep else ""
        raise CatdogError(f"experiment {experiment_name!r} has no finished training runs{scope} to report on")
    _check_same_data(experiment_name, [r.run.data.params for r in records] + [s.data.params for s in searches])
    unfinished = Counter(r.info.status for r in training if r.info.status != FINISHED)
    return Study(experiment, records, sorted(searches, key=lambda r: r.info.start_time), dict(unfinished))


def _check_same_data(experiment_name: str, params: list[dict]) -> None:
    # Runs logged before `data_id` existed are compared by their decoded pixels' hash.
    key = "data_id" if all("data_id" in p for p in params) else "data_hash"
    hashes = sorted({p.get(key) for p in params} - {None})
    if len(hashes) > 1:
        raise CatdogError(
            f"experiment {experiment_name!r} mixes runs on different data ({key} {', '.join(hashes)}); "
            "their scores are not comparable: report each data set in its own experiment"
        )


def predictions(record: RunRecord, split: str = "test"):
    """The run's per-image predictions on SPLIT ("test" or "val"; a DataFrame), or None for
    runs logged before they were recorded."""
    try:
        path = TEST_PREDICTIONS if split == "test" else VAL_PREDICTIONS
        return mlflow.MlflowClient().load_table(record.run.info.experiment_id, path, run_ids=[record.id])
    except MlflowException:
        return None


def misclassified_thumbnails(record: RunRecord) -> dict[str, np.ndarray]:
    """The run's thumbnails of the test images it got wrong, by image id ({} if none kept)."""
    try:
        path = mlflow.artifacts.download_artifacts(f"runs:/{record.id}/predictions/misclassified.npz")
    except (MlflowException, OSError):
        return {}
    with np.load(path) as npz:
        return dict(zip(npz["ids"].tolist(), npz["images"]))


def history(record: RunRecord, key: str) -> list[float]:
    """The per-epoch values of metric KEY of the run, in epoch order."""
    return [m.value for m in sorted(mlflow.MlflowClient().get_metric_history(record.id, key), key=lambda m: m.step)]
