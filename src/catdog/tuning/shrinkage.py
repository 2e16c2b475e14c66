"""The pick's honest score: a search reports the best of many noisy scores, which overstates
what the pick scores on fresh seeds and new images (the winner's curse). Tweedie's formula
(Efron 2011, "Tweedie's formula and selection bias") corrects it with no model of how the
settings' true scores spread: for a score x with noise variance s^2, the expected truth is
x + s^2 d/dx log f(x), f the density of the search's scores. Near the top of a search the
density falls away, so the correction pulls the pick down by as much as its neighbours'
scarcity says luck lifted it; and a Bayes estimate does not care how the pick was selected.
The density is the scores' kernel estimate with a bandwidth of the noise itself (a Gaussian
kernel of sd s). bench/replay.py measures the estimate's bias against fresh seeds on images
the search did not see (docs/benchmarks.md); a normal prior toward the grand mean, tried
first, over-corrected there, since a few bad settings drag the mean down."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from catdog.stats import ALPHA, Interval


@dataclass(frozen=True)
class Shrunk:
    """The pick's SCORE corrected for selection: `mean`, with its 95% interval."""

    mean: float
    raw: float
    noise: float  # the pick's noise variance (one fit's seed variance over its seeds)
    se: float
    interval: Interval


def shrunk(means, pick: int, noise: float, image_var: float = 0.0) -> Shrunk:
    """MEANS: every setting's mean score in the search; PICK: the index of the pick among
    them; NOISE: the variance of the pick's mean around its true score (one fit's variance
    between seeds over the pick's seeds); IMAGE_VAR: the variance of the pick's score from
    the images drawn, added to the interval for images the search did not see."""
    x = np.asarray(means, float)
    score = float(x[pick])
    h2 = noise if noise > 0 else 1e-12
    offsets = x - score
    weights = np.exp(-0.5 * offsets**2 / h2)
    first = float((weights * offsets).sum() / weights.sum()) / h2  # d/dx log f at the pick
    mean = score + noise * first
    # The noise itself, not Tweedie's narrower posterior variance (s^2 (1 + s^2 d2/dx2 log f)):
    # from a kernel density of a few dozen scores its second derivative is too rough to
    # narrow an interval on; and the images' share, for images the search did not see.
    se = math.sqrt(noise + image_var)
    half = float(scipy_stats.norm.ppf(1 - ALPHA / 2)) * se
    return Shrunk(mean, score, noise, se, Interval(mean - half, mean + half))
