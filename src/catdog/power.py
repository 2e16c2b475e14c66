"""Planned power: the smallest difference a design detects at 80% power, and the seeds or
images a stated difference needs. Never the power at an observed gap (which restates the
p-value); t quantiles at the design's degrees of freedom, not 2.8 (docs/review.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from catdog.stats import ALPHA, Comparison, welch_df

POWER = 0.8
PLANNED_DIFFERENCES = (0.01, 0.02)  # what the page plans for: 1 and 2 points
MAX_SEEDS = 50  # seeds per variant a plan may ask for before it says "not with seeds alone"


def power_quantile(df: float) -> float:
    """t_{1-alpha/2, df} + t_{power, df}: a difference this many standard errors wide is
    detected 80% of the time at alpha 0.05 two-sided (3.7 at 4 df; 2.8 only as df grows)."""
    return float(stats.t.ppf(1 - ALPHA / 2, df) + stats.t.ppf(POWER, df))


@dataclass(frozen=True)
class Plan:
    """What it takes to detect a stated difference at 80% power: seeds per variant at the
    current images, images at the current seeds, and seeds and images together (the fewest
    seeds with every held-out image, `supply`); None where that cannot, `note` says why."""

    difference: float
    seeds: int | None
    images: int | None
    joint_seeds: int | None = None  # seeds each with all `supply` held-out images
    supply: int = 0
    note: str = ""


def detectable(c: Comparison, k: int | None = None, n: int | None = None) -> float | None:
    """The smallest difference C's design detects (alpha 0.05 two-sided, 80% power) with K
    seeds each (default: its own) and N images; None when the seed variance is unknown and
    K > 1."""
    k, n = k or min(c.seeds), n or c.n
    if c.checkpoints and k > 1:
        return None
    seed_df = k - 1 if c.matched else 2 * (k - 1)
    df = welch_df([(c.seed_var / k, seed_df), (c.image_var / n, n - 1)])
    return power_quantile(df) * math.sqrt(c.seed_var / k + c.image_var / n)


def seeds_needed(c: Comparison, difference: float, n: int | None = None) -> int | None:
    """The fewest seeds per variant (2 to MAX_SEEDS) at which C detects DIFFERENCE on its
    images, or on N images."""
    return next((k for k in range(2, MAX_SEEDS + 1) if detectable(c, k, n) <= difference), None)


def images_needed(c: Comparison, difference: float, k: int, supply: int) -> int | None:
    """The fewest images (at most SUPPLY) at which C detects DIFFERENCE with K seeds each."""
    if detectable(c, k, supply) > difference:
        return None
    low, high = 1, supply
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if detectable(c, k, mid) <= difference else (mid + 1, high)
    return low


def plan(c: Comparison, difference: float, supply: int) -> Plan:
    """Seeds each at C's images; images at its seeds (at most SUPPLY: what the data holds);
    and, jointly, the fewest seeds each with all SUPPLY images, to detect DIFFERENCE."""
    if c.checkpoints:
        return Plan(difference, None, None, note="seed variance unknown: run at least 2 seeds of each")
    k = seeds_needed(c, difference)
    n = images_needed(c, difference, min(c.seeds), supply)
    joint = seeds_needed(c, difference, supply) if supply > c.n else k
    note = "" if joint is not None else f"not with {MAX_SEEDS} seeds each, even with all {supply:,} held-out images"
    return Plan(difference, k, n, joint, supply, note)
