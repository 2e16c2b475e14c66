"""Keras Tuner searches over a variant's dropout, rotation factor and dense size, with every
trial a nested MLflow run under one parent run per search."""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import keras_tuner as kt
import mlflow
from omegaconf import OmegaConf

from catdog import CatdogError, features, plots, tracking, training
from catdog.data import StudyData, load_study_data
from catdog.models import check_model

log = logging.getLogger(__name__)

TUNERS = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization, "hyperband": kt.Hyperband}


def check_space(cfg) -> None:
    """Refuse impossible search settings before anything trains or is logged."""
    search, tuner = cfg.search, cfg.tuner
    for name, low, high in (("dropout", 0.0, 1.0), ("rotation_factor", 0.0, None)):
        space = search[name]
        if space.min is None or space.max is None or space.min > space.max:
            raise CatdogError(f"search.{name}: min ({space.min}) must not exceed max ({space.max})")
        if space.min < low or (high is not None and space.max >= high):
            raise CatdogError(f"search.{name} must lie in [{low}, {high or 'inf'}), got [{space.min}, {space.max}]")
        if space.step is not None and space.step <= 0:
            raise CatdogError(f"search.{name}.step must be positive or null, got {space.step}")
    units = list(search.dense_units or [])
    if not units or any(not isinstance(u, int) or u < 1 for u in units):
        raise CatdogError(f"search.dense_units must be a non-empty list of positive integers, got {units}")
    if tuner.name not in TUNERS:
        raise CatdogError(f"tuner.name {tuner.name!r} is not one of {', '.join(TUNERS)}")
    for key in ("max_trials", "epochs", "executions_per_trial"):
        if tuner[key] is None or tuner[key] < 1:
            raise CatdogError(f"tuner.{key} must be at least 1, got {tuner[key]}")
    if search.retrain_seeds < 0:
        raise CatdogError(f"search.retrain_seeds must be >= 0, got {search.retrain_seeds}")


def _rotates(model_cfg) -> bool:
    return model_cfg.rotation_factor is not None


def _plain(value):
    """Keras Tuner's Bayesian oracle proposes numpy scalars, which OmegaConf refuses."""
    return value.item() if hasattr(value, "item") else value


def _float(hp, name: str, space):
    if space.min == space.max:
        return hp.Fixed(name, float(space.min))
    return hp.Float(name, float(space.min), float(space.max), step=space.step)


class VariantHyperModel(kt.HyperModel):
    """Builds and fits the configured variant with the trial's hyperparameters."""

    def __init__(self, cfg, data: StudyData, cache):
        super().__init__(name=cfg.model.name)
        self.cfg, self.data, self.cache = cfg, data, cache

    def model_cfg(self, hp):
        """The variant's model config with the hyperparameters' values in place."""
        search = self.cfg.search
        values = {
            "dropout": _float(hp, "dropout", search.dropout),
            "dense_units": hp.Choice("dense_units", list(search.dense_units)),
        }
        if _rotates(self.cfg.model):
            values["rotation_factor"] = _float(hp, "rotation_factor", search.rotation_factor)
        return OmegaConf.merge(self.cfg.model, {k: _plain(v) for k, v in values.items()})

    def build(self, hp):
        return training.trainable_model(self.cfg, self.data, self.model_cfg(hp), self.cache)

    def fit(self, hp, model, *args, **kwargs):
        return training.fit_variant(self.cfg, self.data, model, self.model_cfg(hp), self.cache, **kwargs)


class TrackedTrials:
    """Mixed into a Keras Tuner class: each trial is a nested MLflow run under the search's
    parent run, and one progress line is printed per trial. A trial re-run after an
    interruption reopens its earlier run instead of adding a duplicate.

    Ctrl-C stops training at once, but is held back while Keras Tuner writes its state
    files (which it does not write atomically: an interrupt there leaves an unreadable
    oracle.json and a search that cannot resume) and raised at the next safe point."""

    def __init__(self, *args, parent_run_id: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.parent_run_id = parent_run_id
        self.started = time.perf_counter()
        self._interrupted = False

    def _hold_interrupt(self, signum, frame):
        self._interrupted = True

    def _raise_if_interrupted(self):
        if self._interrupted:
            raise KeyboardInterrupt

    def search(self, *args, **kwargs):
        try:
            previous = signal.signal(signal.SIGINT, self._hold_interrupt)
        except ValueError:  # not the main thread: signals cannot be handled here
            return super().search(*args, **kwargs)
        try:
            super().search(*args, **kwargs)
        finally:
            signal.signal(signal.SIGINT, previous)
        self._raise_if_interrupted()

    def _trial_run_id(self, trial_id: str) -> str | None:
        runs = mlflow.search_runs(
            filter_string=f"tags.mlflow.parentRunId = '{self.parent_run_id}' and tags.trial_id = '{trial_id}'",
            output_format="list",
        )
        return runs[0].info.run_id if runs else None

    def run_trial(self, trial, *args, **kwargs):
        self._raise_if_interrupted()
        values = trial.hyperparameters.values
        with _interruptible(), tracking.tracked_run(
            run_id=self._trial_run_id(trial.trial_id),
            run_name=f"trial-{trial.trial_id}",
            parent_run_id=self.parent_run_id,
            nested=True,
            tags=tracking.run_tags("trial", variant=self.hypermodel.name, trial_id=trial.trial_id),
        ):
            mlflow.log_params(values)
            return super().run_trial(trial, *args, **kwargs)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        trial = self.oracle.get_trial(trial.trial_id)
        run_id = self._trial_run_id(trial.trial_id)
        if trial.score is not None and run_id:
            mlflow.MlflowClient().log_metric(run_id, "score", trial.score)
        best = self.oracle.get_best_trials(1)
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/"))
        score = "failed" if trial.score is None else f"{trial.score:.4f}"
        best_score = f"{best[0].score:.4f}" if best and best[0].score is not None else "-"
        elapsed = time.perf_counter() - self.started
        print(
            f"trial {len(self.oracle.trials)}/{self.oracle.max_trials or '?'}  {shown}  "
            f"{self.oracle.objective.name}={score}  best={best_score}  elapsed {elapsed / 60:.1f} min",
            flush=True,
        )
        self._raise_if_interrupted()


@contextmanager
def _interruptible():
    """Ctrl-C raises KeyboardInterrupt right away inside this block."""
    try:
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def search_id(cfg, data: StudyData) -> str:
    """Names the Keras Tuner project: the same search settings on the same data resume the
    same project; changing them starts a new one. max_trials is left out so that a search
    can be extended."""
    parts = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "space": {k: OmegaConf.to_container(cfg.search[k], resolve=True) for k in ("dropout", "rotation_factor", "dense_units")},
        "tuner": {k: v for k, v in OmegaConf.to_container(cfg.tuner, resolve=True).items() if k != "max_trials"},
        "train": OmegaConf.to_container(cfg.train, resolve=True),
        "features": features.usable(cfg) and cfg.features.train_views,
        "data": data.data_hash,
        "seed": cfg.seed,
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{cfg.model.name}-{cfg.tuner.name}-{digest}"


def make_tuner(cfg, hypermodel, project: str, parent_run_id: str, resume: bool):
    tuner_cfg = cfg.tuner
    base = TUNERS[tuner_cfg.name]
    common = dict(
        objective=kt.Objective(tuner_cfg.objective, "max" if "acc" in tuner_cfg.objective else "min"),
        executions_per_trial=tuner_cfg.executions_per_trial,
        seed=tuner_cfg.seed,
        directory=cfg.search.project_dir,
        project_name=project,
        # A tuner project without its MLflow parent run (say, the store was cleaned) would
        # resume trials that the store has no record of: such a project starts over.
        overwrite=not resume,
        parent_run_id=parent_run_id,
    )
    if tuner_cfg.name == "hyperband":
        extra = dict(max_epochs=tuner_cfg.max_epochs, factor=tuner_cfg.factor, hyperband_iterations=tuner_cfg.hyperband_iterations)
    elif tuner_cfg.name == "bayesian":
        extra = dict(max_trials=tuner_cfg.max_trials, num_initial_points=tuner_cfg.num_initial_points)
    else:
        extra = dict(max_trials=tuner_cfg.max_trials)
    tuner = type(f"Tracked{base.__name__}", (TrackedTrials, base), {})(hypermodel, **common, **extra)
    # Hyperband sizes its brackets from max_epochs, but the base oracle still honours a cap
    # on trials, which keeps `tuner.max_trials` meaningful for every tuner.
    tuner.oracle.max_trials = tuner_cfg.max_trials
    return tuner


def _parent_run_id(cfg, project: str) -> str | None:
    """The parent run of an earlier, interrupted or finished, run of the same search."""
    if cfg.search.overwrite:
        return None
    runs = mlflow.search_runs(
        filter_string=f"tags.{tracking.KIND_TAG} = 'search' and tags.search_id = '{project}'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    return runs[0].info.run_id if runs else None


def leaderboard(tuner) -> list[dict]:
    rows = []
    for trial in tuner.oracle.trials.values():
        rows.append(
            {
                "trial": trial.trial_id,
                "status": trial.status,
                "score": trial.score,
                **{k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")},
            }
        )
    return sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0.0)))


def log_search_plots(rows: list[dict], objective: str, hp_names: list[str]) -> None:
    scored = sorted((r for r in rows if r["score"] is not None), key=lambda r: r["trial"])
    if not scored:
        return
    scores = [r["score"] for r in scored]
    fig = plots.objective_against([int(r["trial"]) for r in scored], scores, "trial", objective, running_best=True)
    mlflow.log_figure(fig, "plots/objective_vs_trial.png")
    for name in hp_names:
        fig = plots.objective_against([r[name] for r in scored], scores, name, objective)
        mlflow.log_figure(fig, f"plots/objective_vs_{name}.png")
    plots.plt.close("all")


def _retrain(cfg, model_values: dict, label: str, data, cache, parent_run_id) -> list[float]:
    """Train MODEL_VALUES with `search.retrain_seeds` seeds under the parent; test accuracies.
    Runs already finished for the same label and seed (a resumed search) are reused."""
    accuracies = []
    for seed in range(cfg.search.retrain_seeds):
        done = mlflow.search_runs(
            filter_string=(
                f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.hparams = '{label}' "
                f"and tags.seed = '{seed}' and attributes.status = 'FINISHED'"
            ),
            output_format="list",
        )
        if done and done[0].data.tags.get("hparams_values") == json.dumps(model_values, sort_keys=True):
            accuracies.append(done[0].data.metrics["test_accuracy"])
            continue
        run_cfg = OmegaConf.merge(cfg, {"seed": seed, "model": model_values})
        tags = {"hparams": label, "hparams_values": json.dumps(model_values, sort_keys=True)}
        result = training.train(run_cfg, tags=tags, data=data, cache=cache, parent_run_id=parent_run_id)
        accuracies.append(result.test_accuracy)
    return accuracies


def _mean_sd(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def tune(cfg, tags: dict | None = None) -> dict:
    """Run (or resume) the configured search, retrain the winner, log it all; returns a summary."""
    check_space(cfg)
    check_model(cfg.model)
    data = load_study_data(cfg.data)
    cache = features.FeatureCache(data, cfg.model, cfg.features) if features.usable(cfg) else None
    tracking.configure(cfg.tracking)
    project = search_id(cfg, data)
    hp_names = ["dropout", "dense_units"] + (["rotation_factor"] if _rotates(cfg.model) else [])
    resumed = _parent_run_id(cfg, project)
    with tracking.tracked_run(
        run_id=resumed,
        run_name=f"search-{project}",
        tags=tracking.run_tags("search", variant=cfg.model.name, search_id=project, tuner=cfg.tuner.name, **(tags or {})),
    ) as parent:
        parent_id = parent.info.run_id
        log.info("%s search %s (parent run %s) in %s", "Resuming" if resumed else "Starting", project, parent_id,
                 Path(cfg.search.project_dir) / project)
        if not resumed:
            tracking.log_config(cfg)
            tracking.log_data(data)
        hypermodel = VariantHyperModel(cfg, data, cache)
        tuner = make_tuner(cfg, hypermodel, project, parent_id, resume=resumed is not None)
        epochs = cfg.tuner.max_epochs if cfg.tuner.name == "hyperband" else cfg.tuner.epochs
        tuner.search(epochs=epochs, verbose=0)

        best_trials = tuner.oracle.get_best_trials(1)
        if not best_trials or best_trials[0].score is None:
            raise RuntimeError("no trial of the search finished; see the trial runs for their errors")
        rows = leaderboard(tuner)
        mlflow.log_table({k: [r.get(k) for r in rows] for k in rows[0]}, "leaderboard.json")
        log_search_plots(rows, cfg.tuner.objective, hp_names)
        best = {k: _plain(v) for k, v in best_trials[0].hyperparameters.values.items() if k in hp_names}
        # Tags, not params: an extended or resumed search may find a new best, and MLflow
        # params cannot change once logged.
        mlflow.set_tags({f"best.{k}": v for k, v in best.items()} | {"best.trial": best_trials[0].trial_id})
        mlflow.log_metric(f"best_{cfg.tuner.objective}", best_trials[0].score)

        summary = {"parent_run_id": parent_id, "search_id": project, "best": best, "best_score": best_trials[0].score,
                   "trials": len(rows), "baseline_accuracy": data.baseline_accuracy}
        if cfg.search.retrain_seeds:
            summary["best_test"] = _mean_sd(_retrain(cfg, best, "best", data, cache, parent_id))
            if cfg.search.reference:
                reference = {k: cfg.model[k] for k in hp_names}
                summary["reference_test"] = _mean_sd(_retrain(cfg, reference, "reference", data, cache, parent_id))
            for label in ("best_test", "reference_test"):
                if label in summary:
                    mlflow.log_metrics({
                        f"{label}_accuracy_mean": summary[label]["mean"],
                        f"{label}_accuracy_sd": summary[label]["sd"],
                        f"{label}_lift_over_baseline": summary[label]["mean"] - data.baseline_accuracy,
                    })
        mlflow.log_dict(summary, "search_summary.json")
    return summary
