"""The study's statistics, for scores of k seeds on the same n test images.

A variant's accuracy on new data varies with the seed and with the test images drawn; both
enter every interval here (statistics.md, sections 1-2, after Bouthillier et al. 2021):
SE^2 = seed variance / k + image variance / n, with Welch-Satterthwaite degrees of freedom.
A comparison takes its interval, its p-value and its confidence from that one t statistic,
so they cannot disagree. scipy.stats does the distributions."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
from scipy import stats

ALPHA = 0.05
LEVEL = 1 - ALPHA
# Minimum detectable difference at alpha 0.05 two-sided and 80% power: (z_0.975 + z_0.8) SE.
DETECTABLE = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(0.8)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def clip(self, low: float, high: float) -> Interval:
        return Interval(min(max(self.low, low), high), max(min(self.high, high), low))


@dataclass(frozen=True)
class Estimate:
    """A mean score with its 95% interval. `method` says which interval it is."""

    mean: float
    se: float
    df: float
    interval: Interval
    method: str


def wilson(correct: int, n: int) -> Interval:
    """Wilson score interval of a proportion: one checkpoint's accuracy on N images."""
    ci = stats.binomtest(int(correct), int(n)).proportion_ci(confidence_level=LEVEL, method="wilson")
    return Interval(float(ci.low), float(ci.high))


def welch_df(terms: list[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of variance terms (value, its df)."""
    total = sum(v for v, _ in terms)
    denominator = sum(v * v / df for v, df in terms if v > 0 and df > 0)
    return total * total / denominator if denominator > 0 else math.inf


def _matrix(scores) -> np.ndarray:
    return np.atleast_2d(np.asarray(scores, dtype=float))


def _var(values) -> float:
    return float(np.var(values, ddof=1)) if len(values) > 1 else 0.0


def estimate(scores, bounds: tuple[float, float] = (0.0, 1.0)) -> Estimate:
    """Mean of SCORES (seeds x images: 0/1 correctness, or any per-image score such as the
    Brier score) with a 95% t-interval whose variance counts both the seeds and the test
    images. One run of 0/1 scores gets the Wilson interval; so does a set of seeds that
    agree on every image, where no variance is left to estimate (never a zero width)."""
    c = _matrix(scores)
    k, n = c.shape
    mean = float(c.mean())
    binary = bool(np.isin(c, (0.0, 1.0)).all())
    seed_term = _var(c.mean(axis=1)) / k
    image_term = _var(c.mean(axis=0)) / n
    se = math.sqrt(seed_term + image_term)
    if binary and (k == 1 or se == 0):
        label = "Wilson (one run)" if k == 1 else "Wilson (seeds agree on every image)"
        return Estimate(mean, se, math.inf, wilson(round(mean * n), n), label)
    df = welch_df([(seed_term, k - 1), (image_term, n - 1)])
    half = float(stats.t.ppf(1 - ALPHA / 2, df)) * se if se > 0 else 0.0
    interval = Interval(mean - half, mean + half).clip(*bounds)
    return Estimate(mean, se, df, interval, "t, seeds + images" if k > 1 else "t, images (one run)")


def seed_t_interval(values) -> Interval | None:
    """The t-interval over per-seed scores alone, which leaves out the test images' own
    sampling noise: kept only to show, in tests, how it under-covers."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return None
    half = float(stats.t.ppf(1 - ALPHA / 2, len(values) - 1)) * values.std(ddof=1) / math.sqrt(len(values))
    return Interval(values.mean() - half, values.mean() + half)


def above_baseline_p(correct: int, n: int, baseline: float) -> float:
    """Exact one-sided binomial test: could a constant guesser have scored this well?"""
    return float(stats.binomtest(int(correct), int(n), baseline, alternative="greater").pvalue)


def mcnemar_exact(correct_a, correct_b) -> float:
    """Exact McNemar test (two-sided) of two checkpoints on the same images: a binomial
    test on the images exactly one of them got right."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (scipy has only BH/BY)."""
    p = np.asarray(p_values, float)
    adjusted = np.empty(len(p))
    running = 0.0
    for rank, index in enumerate(np.argsort(p)):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class Comparison:
    """A minus B on the same test images. `seed_var`: the seeds' share of the difference's
    variance for one seed each (divided by k for k seeds); `image_var`: the variance of the
    per-image differences (divided by n)."""

    a: str
    b: str
    difference: float
    se: float
    df: float
    interval: Interval
    p_value: float
    confidence: float  # that A beats B on new data: F_t(difference / se)
    seeds: tuple[int, int]
    n: int
    matched: bool
    seed_var: float
    image_var: float
    p_holm: float = float("nan")
    family: int = 1  # how many comparisons Holm corrected over

    @property
    def verdict(self) -> str:
        better, worse = (self.a, self.b) if self.difference > 0 else (self.b, self.a)
        if self.p_holm < ALPHA:
            return f"{better} > {worse}"
        if self.p_value < ALPHA:
            return f"{better} ahead (p < {ALPHA}), not after Holm over {self.family}"
        return "no detectable difference"

    def detectable(self, k: int | None = None, n: int | None = None) -> float:
        """Minimum detectable difference (alpha 0.05, 80% power) at K seeds each, N images."""
        k = k or min(self.seeds)
        return DETECTABLE * math.sqrt(self.seed_var / k + self.image_var / (n or self.n))

    def seeds_needed(self) -> float | None:
        """Seeds per variant at which the observed gap becomes detectable; None when more
        seeds cannot help (the test images' noise alone hides the gap)."""
        room = (self.difference / DETECTABLE) ** 2 - self.image_var / self.n
        if room <= 0:
            return None
        return math.ceil(self.seed_var / room) if self.seed_var > 0 else 1

    def images_needed(self) -> float | None:
        """Test images at the current seeds at which the gap becomes detectable; None when
        the seeds' noise alone hides it."""
        room = (self.difference / DETECTABLE) ** 2 - self.seed_var / min(self.seeds)
        if room <= 0:
            return None
        return math.ceil(self.image_var / room) if self.image_var > 0 else 1


def compare(a, b, seeds_a=None, seeds_b=None, names=("A", "B")) -> Comparison:
    """A minus B, both seeds x images on the same images in the same order. When both ran
    the same seeds (two or more), seeds are matched: the seed term is the variance of the
    per-seed differences. A side with a single run borrows the other side's seed variance;
    two single runs compare checkpoints, with the images' term alone."""
    a, b = _matrix(a), _matrix(b)
    image_var = _var(a.mean(axis=0) - b.mean(axis=0))
    return _comparison(a.mean(axis=1), b.mean(axis=1), image_var, a.shape[1], seeds_a, seeds_b, names)


def compare_rates(acc_a, acc_b, n: int, seeds_a=None, seeds_b=None, names=("A", "B")) -> Comparison:
    """A minus B from per-seed accuracies on the same N images whose per-image results are
    not at hand (validation): the images' term is p(1 - p) of each side, an upper bound
    of the paired term whenever the two tend to err on the same images."""
    pa, pb = float(np.mean(acc_a)), float(np.mean(acc_b))
    image_var = pa * (1 - pa) + pb * (1 - pb)
    return _comparison(np.asarray(acc_a, float), np.asarray(acc_b, float), image_var, n, seeds_a, seeds_b, names)


def _comparison(acc_a, acc_b, image_var: float, n: int, seeds_a, seeds_b, names) -> Comparison:
    ka, kb = len(acc_a), len(acc_b)
    difference = float(acc_a.mean() - acc_b.mean())
    matched = seeds_a is not None and list(seeds_a) == list(seeds_b or []) and ka >= 2
    if matched:
        seed_var = _var(acc_a - acc_b)
        seed_terms = [(seed_var / ka, ka - 1)]
    else:
        var_a, var_b = _var(acc_a), _var(acc_b)
        var_a, var_b = (var_a if ka > 1 else var_b), (var_b if kb > 1 else var_a)
        seed_var = var_a + var_b
        seed_terms = [(var_a / ka, ka - 1 if ka > 1 else kb - 1), (var_b / kb, kb - 1 if kb > 1 else ka - 1)]
    terms = [*seed_terms, (image_var / n, n - 1)]
    se = math.sqrt(sum(v for v, _ in terms))
    df = welch_df(terms)
    if se == 0:
        p, confidence, half = (1.0, 0.5, 0.0) if difference == 0 else (0.0, float(difference > 0), 0.0)
    else:
        t = difference / se
        p = float(2 * stats.t.sf(abs(t), df))
        confidence = float(stats.t.cdf(t, df))
        half = float(stats.t.ppf(1 - ALPHA / 2, df)) * se
    interval = Interval(difference - half, difference + half).clip(-1.0, 1.0)
    return Comparison(*names, difference, se, df, interval, p, confidence, (ka, kb), n, matched, seed_var, image_var)


def corrected(comparisons: list[Comparison]) -> list[Comparison]:
    """The same comparisons with Holm-adjusted p-values over all of them."""
    adjusted = holm([c.p_value for c in comparisons])
    return [replace(c, p_holm=p, family=len(comparisons)) for c, p in zip(comparisons, adjusted)]


def all_pairs(matrices: dict[str, np.ndarray], seeds: dict[str, list]) -> list[Comparison]:
    """Every pair, Holm-corrected over all of them: exploratory, never the decision."""
    return corrected(
        [compare(matrices[x], matrices[y], seeds[x], seeds[y], (x, y)) for x, y in combinations(matrices, 2)]
    )


def two_way_bootstrap(a, b, matched: bool = False, n_resamples: int = 2000, seed: int = 0):
    """The nonparametric check of `compare`: resample images (shared by A and B) and seeds
    (independently per side, or together when matched). Returns (percentile interval,
    two-sided p = 2 min(P(d* <= 0), P(d* >= 0))). Its own generator."""
    a, b = _matrix(a), _matrix(b)
    rng = np.random.default_rng(seed)
    (ka, n), kb = a.shape, b.shape[0]
    images = rng.integers(0, n, size=(n_resamples, 1, n))
    rows_a = rng.integers(0, ka, size=(n_resamples, ka, 1))
    rows_b = rows_a if matched else rng.integers(0, kb, size=(n_resamples, kb, 1))
    d = a[rows_a, images].mean(axis=(1, 2)) - b[rows_b, images].mean(axis=(1, 2))
    low, high = np.quantile(d, [ALPHA / 2, 1 - ALPHA / 2])
    p = min(1.0, 2 * min(float((d <= 0).mean()), float((d >= 0).mean())))
    return Interval(float(low), float(high)), p


def expected_calibration_error(y, p, bins: int = 10) -> float:
    """ECE (Guo et al. 2017) of probabilities P for outcomes Y (0/1), over equal-mass bins.
    Biased upward on a few hundred images even when calibrated: secondary to Brier."""
    order = np.argsort(p, kind="stable")
    y, p = np.asarray(y, float)[order], np.asarray(p, float)[order]
    chunks = [c for c in np.array_split(np.arange(len(p)), bins) if len(c)]
    return float(sum(len(c) * abs(y[c].mean() - p[c].mean()) for c in chunks) / len(p))
