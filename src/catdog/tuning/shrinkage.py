"""The pick's honest score: a search reports the best of many noisy scores, which overstates
what the pick scores on fresh seeds (the winner's curse). Empirical Bayes (Efron 2011,
"Tweedie's formula and selection bias") corrects it at no cost: each setting's mean over its
n seeds is its true score plus noise of variance seed_var / n; the true scores spread around
the search's grand mean with a variance estimated from how much more the means spread than
their noise explains; and the pick's expected score is its own pulled toward the grand mean
by the share of its distance that noise explains. A Bayes estimate does not care how the
pick was selected, so this is the estimate a reader should compare settings with.
bench/replay.py measures its bias against fresh seeds on images the search did not see."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from catdog.stats import ALPHA, Interval


@dataclass(frozen=True)
class Shrunk:
    """The pick's SCORE shrunk toward the grand mean: `mean`, with its 95% interval."""

    mean: float
    raw: float
    grand_mean: float
    factor: float  # the share of the raw score's distance from the grand mean that is kept
    between: float  # variance of the settings' true scores (method of moments, >= 0)
    se: float
    interval: Interval


def shrunk(means, counts, pick: int, seed_var: float, extra=None, image_var: float = 0.0) -> Shrunk:
    """MEANS and COUNTS: every setting's mean score and seeds in the search; PICK: the
    index of the pick among them; SEED_VAR: the variance of one fit's score between seeds;
    EXTRA: each setting's noise that seeds do not average away (its own errors on these
    images, `interaction`); IMAGE_VAR: the variance of the pick's score from the images
    drawn, added to the interval for images the search did not see."""
    means, counts = np.asarray(means, float), np.asarray(counts, float)
    grand = float(means.mean())
    noise = seed_var / counts + (0.0 if extra is None else np.asarray(extra, float))
    between = max(0.0, float(means.var(ddof=1)) - float(noise.mean())) if len(means) > 1 else 0.0
    own = float(noise[pick])
    factor = between / (between + own) if between + own > 0 else 0.0
    mean = grand + factor * (float(means[pick]) - grand)
    # The posterior's variance, the grand mean's own and the images'.
    grand_var = float(means.var(ddof=1)) / len(means) if len(means) > 1 else own
    se = math.sqrt(factor * own + (1 - factor) ** 2 * grand_var + image_var)
    half = float(scipy_stats.norm.ppf(1 - ALPHA / 2)) * se
    return Shrunk(mean, float(means[pick]), grand, factor, between, se, Interval(mean - half, mean + half))


def interaction(per_image) -> np.ndarray:
    """Each setting's own noise on these images: the variance over images of its per-image
    mean correctness minus all settings' (settings x images in, one value per setting),
    over the number of images. A seed does not average it away: it is the setting's luck
    with these particular images."""
    c = np.asarray(per_image, float)
    return (c - c.mean(axis=0)).var(axis=1, ddof=1) / c.shape[1]
