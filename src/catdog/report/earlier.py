"""What earlier studies in the store lend a study: the seed variance of a variant run once
here, and the feature cache's build time of a variant whose cache every run here found
built. Runs outside the study, of the same variant and settings, on the same data."""

from __future__ import annotations

from datetime import UTC, datetime

import mlflow

from catdog.report.runs import RunRecord, Study
from catdog.tracking.record import FEATURES_COMPUTED, FEATURES_SECONDS, FINISHED, KIND_TAG, TEST_ACCURACY, TRAIN, find


def earlier_cache_build(study: Study, group: str) -> float | None:
    """The feature cache's build time of GROUP's variant, measured by a run outside this
    study with its settings on the same data that built it (`features_computed` > 0): what
    a variant whose cache every run here found built costs a user from scratch; None when
    no such run is in the store."""
    records = study.groups[group]
    data_id, settings = study.param("data_id"), records[0].hyperparameters
    if not data_id:
        return None
    variant = records[0].run.data.tags.get("variant")
    runs = find(everywhere=True, tags={"variant": variant}, params={"data_id": data_id}, status=FINISHED,
                scored=FEATURES_COMPUTED)  # fmt: skip
    built = [
        r.data.metrics[FEATURES_SECONDS]
        for r in runs
        if r.data.metrics.get(FEATURES_COMPUTED, 0) > 0 and RunRecord(r, group).hyperparameters == settings
    ]
    return max(built) if built else None


def earlier_seed_variance(study: Study, group: str):
    """The seed variance of test accuracy from the latest earlier study of GROUP's variant:
    FINISHED training runs outside this study with its settings, on the same data, at least
    two seeds. Lends a variant run once here an honest interval; None when there is none."""
    from catdog import stats

    records = study.groups[group]
    data_id, settings = study.param("data_id"), records[0].hyperparameters
    if not data_id:
        return None
    own = {r.id for r in study.records}
    variant = records[0].run.data.tags.get("variant")
    runs = find(everywhere=True, tags={"variant": variant, KIND_TAG: TRAIN}, params={"data_id": data_id},
                       status=FINISHED, scored=TEST_ACCURACY)  # fmt: skip
    peers = [RunRecord(r, group) for r in runs if r.info.run_id not in own]
    peers = [r for r in peers if r.hyperparameters == settings]
    by_study: dict[tuple, list[RunRecord]] = {}
    for record in peers:
        tags = record.run.data.tags
        by_study.setdefault((record.run.info.experiment_id, tags.get("sweep", "")), []).append(record)
    usable = [rs for rs in by_study.values() if len({r.seed for r in rs}) > 1]
    if not usable:
        return None
    latest = max(usable, key=lambda rs: max(r.run.info.start_time for r in rs))
    name = mlflow.get_experiment(latest[0].run.info.experiment_id).name
    when = datetime.fromtimestamp(latest[0].run.info.start_time / 1000, UTC).strftime("%Y-%m-%d")
    return stats.seed_variance([r.test_accuracy for r in latest], f"{name} ({len(latest)} runs, {when})")
