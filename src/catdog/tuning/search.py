"""One search: its identity (to resume it), the tuner, and what the parent run records."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import mlflow
from omegaconf import OmegaConf

from catdog import RunFailure, schema, stats, tracking
from catdog.data import StudyData, load_study_data
from catdog.schema import SearchRunConfig, TunerConfig, hp_names, policy
from catdog.tracking import record
from catdog.training import features, precision, seeding
from catdog.training.plan import FitPlan, fit_plan
from catdog.tuning import distributed
from catdog.tuning.hypermodel import VariantHyperModel
from catdog.tuning.leaderboard import leaderboard, log_search_plots
from catdog.tuning.pick import Pick, borrowed, with_expected
from catdog.tuning.race import Race
from catdog.tuning.result import Retrained, SearchResult, WorkerResult
from catdog.tuning.retrain import retrain
from catdog.tuning.space import configured, plain, with_values
from catdog.tuning.tracked import TUNERS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchSpec:
    """What a search's config decides, read once as the search starts: its Keras Tuner
    project (`id`: the same settings on the same data resume the same project), the settings
    it varies, how it gives them seeds, and how a fit of the configured variant trains."""

    id: str
    names: tuple[str, ...]
    policy: str  # plain | racing | intensify
    fit: FitPlan
    where: Path  # the Keras Tuner project's folder


def search_spec(cfg: SearchRunConfig, data: StudyData) -> SearchSpec:
    """CFG's search on DATA. max_trials stays out of its identity, so that a search can be
    extended."""
    tuner = _tuner_identity(cfg.tuner)
    fit, names, chosen = fit_plan(cfg), tuple(hp_names(cfg)), policy(cfg)
    parts = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "space": {k: OmegaConf.to_container(cfg.search[k], resolve=True) for k in names},
        "tuner": tuner,
        "train": OmegaConf.to_container(cfg.train, resolve=True),
        "features": fit.cached and cfg.features.train_views,
        "data": data.data_hash,
        "seed": cfg.seed,
    }
    if chosen == "racing":  # a racing search's trials are races: never resumed as plain ones
        parts["racing"] = {"max_seeds": cfg.search.max_seeds, "alpha": cfg.search.race_alpha}
    elif chosen == "intensify":
        parts["intensify"] = {"cap": cfg.search.max_seeds}
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]
    project = f"{cfg.model.name}-{cfg.tuner.name}-{digest}"
    return SearchSpec(project, names, chosen, fit, Path(cfg.search.project_dir) / project)


def _tuner_identity(tuner_cfg: TunerConfig) -> dict:
    """The tuner settings that decide its trials, spelled as before tuners were chosen by
    `_target_` (the class options flat), so that searches started earlier still resume."""
    settings = OmegaConf.to_container(tuner_cfg, resolve=True)
    flat = {**settings, **settings.pop("options")}
    return {k: v for k, v in flat.items() if k not in ("_target_", "max_trials", "workers", "wait_s")}


def make_tuner(cfg: SearchRunConfig, spec: SearchSpec, hypermodel, parent_run_id: str, resume: bool):
    """The tracked twin of the `tuner._target_` Keras Tuner class, with its oracle given the
    search's budget and policy (racing: the race; intensify: the incumbent's cap)."""
    tuner_cfg = cfg.tuner
    race = Race.of(cfg, parent_run_id)
    tuner_class, oracle_class = TUNERS[tuner_cfg._target_]
    oracle = oracle_class(
        # A metric's name is enough: Keras Tuner knows which way accuracy or loss improves.
        objective=tuner_cfg.objective,
        # Keras Tuner reads seed 0 as no seed at all (`seed or random.randint(...)`), which
        # would leave the default `tuner.seed: 0` drawing other trials every time.
        seed=seeding.derive(tuner_cfg.seed) or 1,
        budget_minutes=cfg.search.budget_minutes,
        race=race,
        intensify_cap=cfg.search.max_seeds if spec.policy == "intensify" else None,
        **OmegaConf.to_container(tuner_cfg.options, resolve=True),
    )
    # Hyperband sizes its brackets from max_epochs, but the base oracle still honours a cap
    # on trials, which keeps `tuner.max_trials` meaningful for every tuner.
    oracle.max_trials = tuner_cfg.max_trials
    return tuner_class(
        oracle=oracle,
        hypermodel=hypermodel,
        executions_per_trial=tuner_cfg.executions_per_trial,
        directory=cfg.search.project_dir,
        project_name=spec.id,
        # A tuner project without its MLflow parent run (say, the store was cleaned) would
        # resume trials that the store has no record of: such a project starts over.
        overwrite=not resume,
        parent_run_id=parent_run_id,
        search_seed=cfg.seed,
        race=race,
    )


def _parent_run_id(project: str) -> str | None:
    """The parent run of an earlier, interrupted or finished, run of the same search."""
    runs = record.find(tags={tracking.KIND_TAG: record.SEARCH, "search_id": project}, newest_first=True)
    return runs[0].info.run_id if runs else None


def _work(cfg: SearchRunConfig, spec: SearchSpec, data: StudyData, cache) -> WorkerResult:
    """A distributed search's worker: run the trials the chief hands out, each a nested run
    under the chief's parent run; the chief ranks them and retrains the best."""
    parent_id = os.environ.get(distributed.PARENT_VAR)
    if not parent_id:  # a worker started by hand, maybe on another machine
        distributed.wait_for_chief(timeout=cfg.tuner.wait_s)
        parent_id = _parent_run_id(spec.id)
        if parent_id is None:
            raise RunFailure(f"the store has no run of search {spec.id}: are chief and worker on the same config?")
    with precision(cfg.train.precision):
        tuner = make_tuner(cfg, spec, VariantHyperModel(cfg, data, cache), parent_id, resume=True)
        log.info("Worker %s of search %s (parent run %s)", tuner.tuner_id, spec.id, parent_id)
        tuner.search(epochs=cfg.tuner.epochs, verbose=0)
    return WorkerResult(parent_id, spec.id, tuner.tuner_id)


def tune(cfg: SearchRunConfig, tags: dict | None = None) -> SearchResult | WorkerResult:
    """Run (or resume) the configured search, retrain the winner, log it all."""
    schema.validate(cfg)
    schema.check_search(cfg)
    tracking.check_reachable(cfg.tracking.uri)
    data = load_study_data(cfg.data)
    spec = search_spec(cfg, data)
    cache = features.cache_for(None, data, cfg, spec.fit)
    if cache is not None:
        cache.features(cfg)
    tracking.configure(cfg.tracking)
    if distributed.role() == "worker":
        return _work(cfg, spec, data, cache)
    resumed = None if cfg.search.overwrite else _parent_run_id(spec.id)
    with (
        precision(cfg.train.precision),
        tracking.tracked_run(
            run_id=resumed,
            run_name=f"search-{spec.id}",
            tags=tracking.run_tags(
                "search",
                variant=cfg.model.name,
                search_id=spec.id,
                tuner=cfg.tuner.name,
                policy=spec.policy,
                **(tags or {}),
            ),  # fmt: skip
        ) as parent,
    ):
        parent_id = parent.info.run_id
        started = "Resuming" if resumed else "Starting"
        log.info("%s search %s (parent run %s) in %s", started, spec.id, parent_id, spec.where)
        if not resumed:
            tracking.log_config(cfg)
            tracking.log_data(data)
        hypermodel = VariantHyperModel(cfg, data, cache)
        tuner = _tuner(cfg, spec, hypermodel, parent_id, resumed is not None)
        with distributed.local_workers(cfg, parent_id, spec.where) as tuner.workers:
            tuner.search(epochs=cfg.tuner.epochs, verbose=0)
        result = _record_best(cfg, spec, tuner, parent_id, data)
        if cfg.search.retrain_seeds:
            result = _retrain_best(cfg, result, data, hypermodel, cache)
        mlflow.log_dict(result.to_json(), "search_summary.json")
    return result


def _tuner(cfg: SearchRunConfig, spec: SearchSpec, hypermodel, parent_id: str, resume: bool):
    try:
        tuner = make_tuner(cfg, spec, hypermodel, parent_id, resume=resume)
    except (ValueError, KeyError, OSError) as exc:  # unreadable oracle.json / trial.json
        raise RunFailure(
            f"the Keras Tuner project {spec.where} is damaged "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
            "start the search over with search.overwrite=true"
        ) from exc
    tuner.wait_s = cfg.tuner.wait_s
    return tuner


def _pick(cfg: SearchRunConfig, spec: SearchSpec, tuner) -> tuple[Pick, dict | None]:
    """The search's pick: plain, the best trial; racing, the race's leader (with the
    settings it cannot be told apart from); intensifying, the incumbent."""
    chosen = lambda values: {k: plain(v) for k, v in values.items() if k in spec.names}
    intensifier = tuner.oracle.intensifier
    if intensifier is not None and intensifier.pick() is not None and intensifier.pick().scores:
        setting = intensifier.pick()
        return Pick(setting.key, chosen(setting.values), setting.mean, len(setting.scores)), None
    race = tuner.race.recommendation() if tuner.race is not None else None
    best = [tuner.oracle.get_trial(race["trial"])] if race else tuner.oracle.get_best_trials(1)
    if not best or best[0].score is None:
        raise RuntimeError("no trial of the search finished; see the trial runs for their errors")
    seeds = len(tuner.race.survivors()[0].correct) if race else cfg.tuner.executions_per_trial
    return Pick(best[0].trial_id, chosen(best[0].hyperparameters.values), best[0].score, seeds), race


def _record_best(cfg: SearchRunConfig, spec: SearchSpec, tuner, parent_id: str, data) -> SearchResult:
    """The leaderboard, plots, the pick with the score to expect of it, and why the search
    stopped, on the parent run."""
    pick, race = _pick(cfg, spec, tuner)
    rows = leaderboard(tuner)
    mlflow.log_table({k: [r.get(k) for r in rows] for k in rows[0]}, record.LEADERBOARD)
    stop_reason = tuner.oracle.stop_reason or "max_trials"
    mlflow.set_tags({"objective_direction": tuner.oracle.objective.direction, "stop_reason": stop_reason})
    log_search_plots(rows, tuner.oracle.objective, spec.names)
    results = record.search_fits(parent_id).correct
    measured = stats.pooled_seed_variance(results.values())
    pick = with_expected(pick, results, measured or borrowed(cfg.model.name, data.data_hash, parent_id))
    # Tags, not params: an extended or resumed search may find a new best, and MLflow
    # params cannot change once logged.
    mlflow.set_tags({f"best.{k}": v for k, v in pick.values.items()} | {"best.trial": pick.key})
    mlflow.set_tag("best.seeds", pick.seeds)
    metrics = {f"best_{cfg.tuner.objective}": pick.score}
    if measured is not None:
        metrics |= {record.SEED_VARIANCE: measured.var, record.SEED_VARIANCE_DF: measured.df}
    if pick.expected is not None:
        e = pick.expected
        metrics |= {
            record.EXPECTED_SCORE: e.mean,
            record.EXPECTED_LOW: e.interval.low,
            record.EXPECTED_HIGH: e.interval.high,
        }
        mlflow.set_tag(record.EXPECTED_SOURCE_TAG, pick.seed_variance.source)
    mlflow.log_metrics(metrics)
    _tag_settings(tuner, parent_id)
    log.info("search stopped: %s", stop_reason)
    if race:
        mlflow.set_tags({"race.untold": ",".join(race["untold"]), "race.equivalent": ",".join(race["equivalent"])})
    fits = sum(len(m) for m in results.values())
    return SearchResult(
        parent_id, spec.id, spec.policy, pick, len(results), fits, data.baseline_accuracy, stop_reason, race
    )


def _tag_settings(tuner, parent_id: str) -> None:
    """An intensifying search's setting runs say where each setting stands: incumbent,
    challenger, rejected (after k shared seeds, by x points) or untried."""
    intensifier = tuner.oracle.intensifier
    if intensifier is None:
        return
    client = mlflow.MlflowClient()
    for run in record.children(parent_id, record.TRIAL):
        setting = intensifier.settings.get(run.data.tags.get("trial_id"))
        if setting is None:
            continue
        tags = {"intensify_status": setting.status, "intensify_seeds": str(len(setting.scores))}
        if setting.rejected_after is not None:
            tags |= {"intensify_rejected_after": str(setting.rejected_after),
                     "intensify_rejected_by": f"{100 * setting.rejected_by:+.2f}"}  # fmt: skip
        for key, value in tags.items():
            client.set_tag(run.info.run_id, key, value)


def _retrain_best(cfg: SearchRunConfig, result: SearchResult, data, hypermodel, cache) -> SearchResult:
    """Retrain the best (and the configured) values with `search.retrain_seeds` seeds."""
    best_cfg = with_values(cfg, result.best)
    # The trials' caches serve the retrains too: none is loaded a second time.
    wanted = {"best": (result.best, hypermodel.cache_serving(best_cfg, fit_plan(best_cfg)))}
    if cfg.search.reference:
        wanted["reference"] = (configured(cfg), cache)
    retrained = {}
    for label, (values, served) in wanted.items():
        r = Retrained(tuple(retrain(cfg, values, label, data, served, result.parent_run_id)))
        mlflow.log_metrics(
            {
                f"{label}_test_accuracy_mean": r.mean,
                f"{label}_test_accuracy_sd": r.sd,
                f"{label}_test_lift_over_baseline": r.mean - data.baseline_accuracy,
            }
        )
        retrained[f"{label}_test"] = r
    return dataclasses.replace(result, **retrained)
