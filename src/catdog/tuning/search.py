"""One search: its identity (to resume it), the tuner, and what the parent run records."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
from pathlib import Path

import hydra
import mlflow
from omegaconf import OmegaConf

from catdog import RunFailure, schema, tracking
from catdog.data import StudyData, load_study_data
from catdog.schema import SearchRunConfig, TunerConfig
from catdog.training import features, precision, seeding
from catdog.training.plan import FitPlan, fit_plan
from catdog.tuning import distributed, oracle
from catdog.tuning.hypermodel import VariantHyperModel
from catdog.tuning.leaderboard import leaderboard, log_search_plots
from catdog.tuning.race import Race
from catdog.tuning.retrain import retrain
from catdog.tuning.space import check_space, configured, hp_names, plain, with_values
from catdog.tuning.tracked import TrackedTrials

log = logging.getLogger(__name__)


def search_id(cfg: SearchRunConfig, data: StudyData, plan: FitPlan) -> str:
    """Names the Keras Tuner project: the same search settings on the same data resume the
    same project; changing them starts a new one. max_trials is left out so that a search
    can be extended."""
    parts = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "space": {k: OmegaConf.to_container(cfg.search[k], resolve=True) for k in hp_names(cfg)},
        "tuner": _tuner_identity(cfg.tuner),
        "train": OmegaConf.to_container(cfg.train, resolve=True),
        "features": plan.cached and cfg.features.train_views,
        "data": data.data_hash,
        "seed": cfg.seed,
    }
    if cfg.search.racing:  # a racing search's trials are races: never resumed as plain ones
        parts["racing"] = {"max_seeds": cfg.search.max_seeds, "alpha": cfg.search.race_alpha}
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{cfg.model.name}-{cfg.tuner.name}-{digest}"


def _tuner_identity(tuner_cfg: TunerConfig) -> dict:
    """The tuner settings that decide its trials, spelled as before tuners were chosen by
    `_target_` (the class options flat), so that searches started earlier still resume."""
    settings = OmegaConf.to_container(tuner_cfg, resolve=True)
    flat = {**settings, **settings.pop("options")}
    return {k: v for k, v in flat.items() if k not in ("_target_", "max_trials", "workers", "wait_s")}


def make_tuner(cfg: SearchRunConfig, hypermodel, project: str, parent_run_id: str, resume: bool):
    """The `tuner._target_` Keras Tuner class with the tracked trials mixed in, its oracle
    given the search's budget and, with `search.racing`, the race."""
    tuner_cfg = cfg.tuner
    race = Race.of(cfg, parent_run_id)
    base = hydra.utils.get_class(tuner_cfg._target_)
    options = OmegaConf.to_container(tuner_cfg.options, resolve=True)
    tuner = type(f"Tracked{base.__name__}", (TrackedTrials, base), {})(
        hypermodel,
        # A metric's name is enough: Keras Tuner knows which way accuracy or loss improves.
        objective=tuner_cfg.objective,
        executions_per_trial=tuner_cfg.executions_per_trial,
        # Keras Tuner reads seed 0 as no seed at all (`seed or random.randint(...)`), which
        # would leave the default `tuner.seed: 0` drawing other trials every time.
        seed=seeding.derive(tuner_cfg.seed) or 1,
        directory=cfg.search.project_dir,
        project_name=project,
        # A tuner project without its MLflow parent run (say, the store was cleaned) would
        # resume trials that the store has no record of: such a project starts over.
        overwrite=not resume,
        parent_run_id=parent_run_id,
        search_seed=cfg.seed,
        race=race,
        **options,
    )
    # Hyperband sizes its brackets from max_epochs, but the base oracle still honours a cap
    # on trials, which keeps `tuner.max_trials` meaningful for every tuner.
    tuner.oracle.max_trials = tuner_cfg.max_trials
    if distributed.role() != "worker":  # a worker's oracle is the chief's, served over gRPC
        oracle.attach(tuner.oracle, cfg.search.budget_minutes, race)
    return tuner


def _parent_run_id(project: str) -> str | None:
    """The parent run of an earlier, interrupted or finished, run of the same search."""
    runs = mlflow.search_runs(
        filter_string=f"tags.{tracking.KIND_TAG} = 'search' and tags.search_id = '{project}'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    return runs[0].info.run_id if runs else None


def _work(cfg: SearchRunConfig, data: StudyData, cache, project: str) -> dict:
    """A distributed search's worker: run the trials the chief hands out, each a nested run
    under the chief's parent run; the chief ranks them and retrains the best."""
    parent_id = os.environ.get(distributed.PARENT_VAR)
    if not parent_id:  # a worker started by hand, maybe on another machine
        distributed.wait_for_chief(timeout=cfg.tuner.wait_s)
        parent_id = _parent_run_id(project)
        if parent_id is None:
            raise RunFailure(f"the store has no run of search {project}: are chief and worker on the same config?")
    with precision(cfg.train.precision):
        tuner = make_tuner(cfg, VariantHyperModel(cfg, data, cache), project, parent_id, resume=True)
        log.info("Worker %s of search %s (parent run %s)", tuner.tuner_id, project, parent_id)
        tuner.search(epochs=cfg.tuner.epochs, verbose=0)
    return {"parent_run_id": parent_id, "search_id": project, "worker": tuner.tuner_id}


def _mean_sd(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def tune(cfg: SearchRunConfig, tags: dict | None = None) -> dict:
    """Run (or resume) the configured search, retrain the winner, log it all; returns a summary."""
    schema.validate(cfg)
    check_space(cfg)
    tracking.check_reachable(cfg.tracking.uri)
    data = load_study_data(cfg.data)
    plan = fit_plan(cfg)
    cache = features.cache_for(None, data, cfg, plan)
    if cache is not None:
        cache.features(cfg)
    tracking.configure(cfg.tracking)
    project = search_id(cfg, data, plan)
    if distributed.role() == "worker":
        return _work(cfg, data, cache, project)
    resumed = None if cfg.search.overwrite else _parent_run_id(project)
    with (
        precision(cfg.train.precision),
        tracking.tracked_run(
            run_id=resumed,
            run_name=f"search-{project}",
            tags=tracking.run_tags(
                "search", variant=cfg.model.name, search_id=project, tuner=cfg.tuner.name, **(tags or {})
            ),
        ) as parent,
    ):
        parent_id = parent.info.run_id
        where = Path(cfg.search.project_dir) / project
        log.info("%s search %s (parent run %s) in %s", "Resuming" if resumed else "Starting", project, parent_id, where)
        if not resumed:
            tracking.log_config(cfg)
            tracking.log_data(data)
        hypermodel = VariantHyperModel(cfg, data, cache)
        tuner = _tuner(cfg, hypermodel, project, parent_id, resumed is not None)
        with distributed.local_workers(cfg, parent_id, where) as tuner.workers:
            tuner.search(epochs=cfg.tuner.epochs, verbose=0)
        summary = _record_best(cfg, tuner, project, parent_id, data)
        if cfg.search.retrain_seeds:
            _retrain_best(cfg, summary, data, hypermodel, cache)
        mlflow.log_dict(summary, "search_summary.json")
    return summary


def _tuner(cfg: SearchRunConfig, hypermodel, project: str, parent_id: str, resume: bool):
    try:
        tuner = make_tuner(cfg, hypermodel, project, parent_id, resume=resume)
    except (ValueError, KeyError, OSError) as exc:  # unreadable oracle.json / trial.json
        where = Path(cfg.search.project_dir) / project
        raise RunFailure(
            f"the Keras Tuner project {where} is damaged ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
            "start the search over with search.overwrite=true"
        ) from exc
    tuner.wait_s = cfg.tuner.wait_s
    return tuner


def _record_best(cfg: SearchRunConfig, tuner, project: str, parent_id: str, data) -> dict:
    """The leaderboard, plots, best hyperparameters and why the search stopped on the parent
    run; the summary. Racing, the best is the race's leader: the best mean over every seed,
    with the settings it cannot be told apart from."""
    race = tuner.race.recommendation() if tuner.race is not None else None
    best_trials = [tuner.oracle.get_trial(race["trial"])] if race else tuner.oracle.get_best_trials(1)
    if not best_trials or best_trials[0].score is None:
        raise RuntimeError("no trial of the search finished; see the trial runs for their errors")
    names = hp_names(cfg)
    rows = leaderboard(tuner)
    mlflow.log_table({k: [r.get(k) for r in rows] for k in rows[0]}, "leaderboard.json")
    stop_reason = tuner.oracle.stop_reason or "max_trials"
    mlflow.set_tags({"objective_direction": tuner.oracle.objective.direction, "stop_reason": stop_reason})
    log_search_plots(rows, tuner.oracle.objective, names)
    best = {k: plain(v) for k, v in best_trials[0].hyperparameters.values.items() if k in names}
    # Tags, not params: an extended or resumed search may find a new best, and MLflow
    # params cannot change once logged.
    mlflow.set_tags({f"best.{k}": v for k, v in best.items()} | {"best.trial": best_trials[0].trial_id})
    mlflow.log_metric(f"best_{cfg.tuner.objective}", best_trials[0].score)
    log.info("search stopped: %s", stop_reason)
    summary = {
        "parent_run_id": parent_id,
        "search_id": project,
        "best": best,
        "best_score": best_trials[0].score,
        "trials": len(rows),
        "baseline_accuracy": data.baseline_accuracy,
        "stop_reason": stop_reason,
    }
    if race:
        summary["race"] = race
        mlflow.set_tags({"race.untold": ",".join(race["untold"]), "race.equivalent": ",".join(race["equivalent"])})
    return summary


def _retrain_best(cfg: SearchRunConfig, summary: dict, data, hypermodel, cache) -> None:
    """Retrain the best (and the configured) values with `search.retrain_seeds` seeds."""
    parent_id, best = summary["parent_run_id"], summary["best"]
    # The trials' caches serve the retrains too: none is loaded a second time.
    best_cfg = with_values(cfg, best)
    best_cache = hypermodel.cache_for(best_cfg, fit_plan(best_cfg))
    summary["best_test"] = _mean_sd(retrain(cfg, best, "best", data, best_cache, parent_id))
    if cfg.search.reference:
        reference = configured(cfg)
        summary["reference_test"] = _mean_sd(retrain(cfg, reference, "reference", data, cache, parent_id))
    for label in ("best_test", "reference_test"):
        if label in summary:
            mlflow.log_metrics(
                {
                    f"{label}_accuracy_mean": summary[label]["mean"],
                    f"{label}_accuracy_sd": summary[label]["sd"],
                    f"{label}_lift_over_baseline": summary[label]["mean"] - data.baseline_accuracy,
                }
            )
