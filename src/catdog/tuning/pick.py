"""A search's pick and the score it should be expected to have on fresh seeds.

The pick: plain, the best trial; racing, the race's leader; intensifying, the incumbent.
Its search score is the mean over the seeds it ran, on the images that chose it, and so
overstates what it scores anew; `expected` is that score corrected for selection by
Tweedie's formula over the scores of every setting the search ran (tuning.shrinkage), from
each fit's per-image results in the store. The
seed variance is the search's own where settings ran two or more seeds, else borrowed from
the latest earlier search of the variant on the same data that measured one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catdog import stats, tracking
from catdog.tracking import record
from catdog.tuning.shrinkage import Shrunk, shrunk


@dataclass(frozen=True)
class Pick:
    """What a search recommends: KEY (its trial, or its setting's first trial), VALUES, its
    SCORE over SEEDS seeds in the search, and the score EXPECTED on fresh seeds and images
    (None: no seed variance known)."""

    key: str
    values: dict
    score: float
    seeds: int
    expected: Shrunk | None = None
    seed_variance: stats.SeedVariance | None = None


def borrowed(variant: str, data_hash: str, exclude: str) -> stats.SeedVariance | None:
    """The latest seed variance measured by another search of VARIANT on the same data."""
    runs = record.find(everywhere=True, tags={tracking.KIND_TAG: record.SEARCH, "variant": variant},
                       params={"data_hash": data_hash}, scored=record.SEED_VARIANCE, newest_first=True)  # fmt: skip
    for run in runs:
        if run.info.run_id != exclude:
            df = int(run.data.metrics.get(record.SEED_VARIANCE_DF, 1))
            return stats.SeedVariance(run.data.metrics[record.SEED_VARIANCE], df, f"search run {run.info.run_id}")
    return None


def with_expected(pick: Pick, results: dict[str, np.ndarray], seed_variance: stats.SeedVariance | None) -> Pick:
    """PICK with its expected score, from every setting's RESULTS (seeds x images)."""
    if seed_variance is None or pick.key not in results:
        return Pick(pick.key, pick.values, pick.score, pick.seeds, None, seed_variance)
    keys = [pick.key] + [k for k in results if k != pick.key]
    means = [float(results[k].mean()) for k in keys]
    own = results[pick.key].mean(axis=0)
    image_var = float(own.var(ddof=1)) / len(own)
    expected = shrunk(means, 0, seed_variance.var / len(results[pick.key]), image_var=image_var)
    return Pick(pick.key, pick.values, pick.score, pick.seeds, expected, seed_variance)
