"""What a run records, named once, and the questions other rooms ask of the store: a run's
per-image results, the runs under a search or a setting. Code outside tracking/ asks here
instead of writing MLflow filter strings or artifact paths of its own."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import numpy as np

from catdog import RunFailure

# Artifacts: one row per image (file, true and predicted class, each class's probability,
# its log loss), on the validation and on the test split.
VAL_PREDICTIONS = "predictions/val.json"
TEST_PREDICTIONS = "predictions/test.json"
CONFIG = "config.yaml"  # a run's whole resolved config: what `catdog reproduce` trains again
LEADERBOARD = "leaderboard.json"  # a search run's table of its settings
RACE_OUTCOME = "race.json"  # a racing setting's looks and running mean, seed by seed


def val_predictions(execution: int = 0) -> str:
    """Where a trial's EXECUTION-th fit (after the first) keeps its validation table."""
    return VAL_PREDICTIONS if not execution else VAL_PREDICTIONS.replace(".json", f"-{execution}.json")


# Metrics the review page, the MLflow UI and `catdog reproduce` read.
MODEL_VAL_ACCURACY = "model_val_accuracy"  # the kept weights' validation accuracy
MODEL_VAL_LOSS = "model_val_loss"
TEST_ACCURACY = "test_accuracy"
TEST_CORRECT = "test_correct"
TEST_LOSS = "test_loss"
N_TEST = "n_test"  # test images scored
MODEL_EPOCH = "model_epoch"  # the epoch whose weights the run keeps
BASELINE_ACCURACY = "baseline_accuracy"  # always guessing the larger class, on test
LIFT_OVER_BASELINE = "lift_over_baseline"
SKIPPED_IMAGES = "skipped_images"  # unusable image files left out of the splits
FINE_TUNE_START_EPOCH = "fine_tune_start_epoch"  # a two-stage run's first fine-tuning epoch
FINE_TUNE_LEARNING_RATE = "fine_tune_learning_rate"
INIT_WEIGHTS_DIGEST = "init_weights_digest"  # a param: a hash of the initial weights
# What a run cost: the fit's wall time and rate, the process's peak memory, and the
# machine's load around it.
FIT_SECONDS = "fit_seconds"
TRAIN_IMAGES_PER_S = "train_images_per_s"
PEAK_RSS_MB = "peak_rss_mb"
LOAD_AVG_START, LOAD_AVG_END = "load_avg_1m_start", "load_avg_1m_end"
# The backbone's pass before a run opens: its seconds, and the image views it computed (0:
# every view came from the cache).
FEATURES_SECONDS = "features_seconds"
FEATURES_COMPUTED = "features_computed"
# A search's parent run: one fit's validation accuracy between seeds (and its degrees of
# freedom), and the pick's expected score on fresh seeds with its interval.
SEED_VARIANCE = "seed_variance"
SEED_VARIANCE_DF = "seed_variance_df"
EXPECTED_SCORE, EXPECTED_LOW, EXPECTED_HIGH = "expected_val_accuracy", "expected_low", "expected_high"
EXPECTED_SOURCE_TAG = "expected.seed_variance"  # where the expected score's seed variance came from
TRIAL_SCORE = "score"  # a trial's (or a setting's) objective, on its run
# Run kinds (the `kind` tag: lets reports pick the runs they mean).
KIND_TAG = "kind"
SEARCH, TRIAL, SEED, TRAIN, RETRAIN = "search", "trial", "seed", "train", "retrain"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the run a nested run hangs under
FINISHED = "FINISHED"


def where(*, tags: dict | None = None, params: dict | None = None, status: str | None = None,
          scored: str | None = None) -> str:  # fmt: skip
    """An MLflow filter string: runs with these TAGS and PARAMS (equal, as strings), this
    STATUS, and a value of the metric SCORED (any value)."""
    parts = [f"tags.`{k}` = '{v}'" for k, v in (tags or {}).items()]
    parts += [f"params.`{k}` = '{v}'" for k, v in (params or {}).items()]
    if status:
        parts.append(f"attributes.status = '{status}'")
    if scored:
        parts.append(f"metrics.`{scored}` > -1e300")
    return " and ".join(parts)


def find(experiment_ids: list[str] | None = None, *, everywhere: bool = False, newest_first: bool = False,
         max_results: int | None = None, **criteria) -> list:  # fmt: skip
    """Runs matching CRITERIA (`where`'s arguments): in EXPERIMENT_IDS (default: the active
    experiment), or in every experiment of the store (EVERYWHERE); NEWEST_FIRST by start."""
    kwargs = {"filter_string": where(**criteria), "output_format": "list"}
    kwargs |= {"search_all_experiments": True} if everywhere else {"experiment_ids": experiment_ids}
    if newest_first:
        kwargs["order_by"] = ["attributes.start_time DESC"]
    if max_results:
        kwargs["max_results"] = max_results
    return mlflow.search_runs(**kwargs)


def children(parent_run_id: str, kind: str | None = None, experiment_ids: list[str] | None = None, **tags) -> list:
    """The runs directly under PARENT_RUN_ID, of KIND when given, with TAGS."""
    wanted = {PARENT_TAG: parent_run_id, **({KIND_TAG: kind} if kind else {}), **tags}
    return find(experiment_ids, tags=wanted)


def validation_correct(runs) -> dict[str, np.ndarray]:
    """Each finished run's 0/1 results on the validation images, ordered by image, from its
    per-image table; one read of the store for all of them."""
    runs = [r for r in runs if r.info.status == FINISHED]
    out: dict[str, np.ndarray] = {}
    by_experiment: dict[str, list[str]] = {}
    for run in runs:
        by_experiment.setdefault(run.info.experiment_id, []).append(run.info.run_id)
    client = mlflow.MlflowClient()
    for experiment_id, run_ids in by_experiment.items():
        table = client.load_table(experiment_id, VAL_PREDICTIONS, run_ids=run_ids, extra_columns=["run_id"])
        for run_id, rows in table.groupby("run_id"):
            out[run_id] = rows.sort_values("image")["correct"].to_numpy(dtype=float)
    return out


def seed_results(setting_run_id: str) -> dict[int, np.ndarray]:
    """A racing or intensifying setting's finished seed runs: each one's 0/1 results on the
    validation images (`validation_correct`), by its seed index."""
    runs = [r for r in children(setting_run_id, SEED) if r.info.status == FINISHED]
    correct = validation_correct(runs)
    # A race pairs settings seed by seed: a finished seed without its results would leave
    # a gap that pairs one setting's seed with another's next.
    lost = [r.info.run_id for r in runs if r.info.run_id not in correct]
    if lost:
        raise RunFailure(
            f"seed run {lost[0]} is FINISHED without its {VAL_PREDICTIONS}, so the race cannot pair its seeds: "
            "start the search over with search.overwrite=true"
        )
    return {int(r.data.tags["seed_index"]): correct[r.info.run_id] for r in runs}


@dataclass(frozen=True)
class SearchFits:
    """A search's fits as the store has them: every setting's 0/1 validation results by its
    trial id (seeds x images) and each finished fit's wall time."""

    correct: dict[str, np.ndarray]
    seconds: list[float]


def search_fits(parent_run_id: str) -> SearchFits:
    """Every fit of a search. A setting's fits are the seed runs under its run (racing,
    intensifying), or its own run (a plain trial)."""
    settings = children(parent_run_id, TRIAL)
    if not settings:
        return SearchFits({}, [])
    experiments = sorted({r.info.experiment_id for r in settings})
    ids = {r.info.run_id: r.data.tags.get("trial_id", r.info.run_id) for r in settings}
    seeds = [r for r in find(experiments, tags={KIND_TAG: SEED}) if r.data.tags.get(PARENT_TAG) in ids]
    correct = validation_correct(seeds + settings)
    out: dict[str, list] = {}
    fits = []
    for run in sorted(seeds, key=lambda r: int(r.data.tags.get("seed_index", 0))):
        if run.info.run_id in correct:
            out.setdefault(ids[run.data.tags[PARENT_TAG]], []).append(correct[run.info.run_id])
            fits.append(run)
    for run in settings:
        if ids[run.info.run_id] not in out and run.info.run_id in correct:
            out[ids[run.info.run_id]] = [correct[run.info.run_id]]
            fits.append(run)
    seconds = [(r.info.end_time - r.info.start_time) / 1000 for r in fits if r.info.end_time]
    return SearchFits({key: np.array(rows) for key, rows in out.items()}, seconds)
