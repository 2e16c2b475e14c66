"""The study's statistics, for scores of k seeds on the same n images (docs/review.md,
"The statistics", says what each one is for and where it comes from).

A variant's score on new data varies with the seed and with the images drawn; both enter
every interval here (Bouthillier et al. 2021): SE^2 = seed variance / k + image variance /
n, with Welch-Satterthwaite degrees of freedom. A variant's own interval is built on the
logit scale, so it never passes 0 or 100%. A comparison takes its interval, its p-value
and its one-sided p from one t statistic, so they cannot disagree. Planned power lives in
`catdog.power`. scipy.stats does the distributions."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
from scipy import special, stats

ALPHA = 0.05
LEVEL = 1 - ALPHA


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def text(self, points: bool = False, digits: int = 1, scale: float = 100) -> str:
        """The one way the terminal, the decision line and both pages print an interval:
        "[96.0, 99.5]" for an accuracy, "[+0.5, +2.1]" for a difference in points (POINTS:
        signed), "[0.0221, 0.0760]" for a Brier score or a loss (SCALE 1, 4 DIGITS)."""
        sign = "+" if points else ""
        return f"[{scale * self.low:{sign}.{digits}f}, {scale * self.high:{sign}.{digits}f}]"

    def __neg__(self) -> Interval:
        return Interval(-self.high, -self.low)


@dataclass(frozen=True)
class SeedVariance:
    """A variance of per-seed scores and its degrees of freedom (k - 1), with where it was
    measured: this study, or an earlier study of the same variant that lends it to a
    variant run once here."""

    var: float
    df: int
    source: str


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


def seed_variance(per_seed, source: str = "this study") -> SeedVariance | None:
    """The variance of per-seed scores, or None with fewer than two seeds: unknown, not 0."""
    return SeedVariance(_var(per_seed), len(per_seed) - 1, source) if len(per_seed) > 1 else None


def pooled_seed_variance(matrices, source: str = "this search") -> SeedVariance | None:
    """One run's score variance between seeds, pooled over settings that ran two or more
    seeds (each seeds x images), or None when none did."""
    per_seed = [np.asarray(m, float).mean(axis=1) for m in matrices if len(m) > 1]
    df = sum(len(a) - 1 for a in per_seed)
    return SeedVariance(sum(float(((a - a.mean()) ** 2).sum()) for a in per_seed) / df, df, source) if df else None


def _logit_interval(mean: float, se: float, df: float) -> Interval:
    """mean +- t se on the logit scale (delta method): inside (0, 1) whatever the mean."""
    if not 0 < mean < 1:
        return Interval(mean, mean)
    q = float(stats.t.ppf(1 - ALPHA / 2, df))
    centre, half = special.logit(mean), q * se / (mean * (1 - mean))
    return Interval(float(special.expit(centre - half)), float(special.expit(centre + half)))


def estimate(scores, prior: SeedVariance | None = None) -> Estimate:
    """Mean of SCORES (seeds x images: 0/1 correctness, or a per-image score in [0, 1] such
    as the Brier score) with a 95% interval whose variance counts both the seeds and the
    images, built on the logit scale so that it stays inside [0, 1] and is never a point
    for a model that errs. One run borrows PRIOR's seed variance (an earlier study's) when
    given; without one, a 0/1 score keeps the single checkpoint's Wilson interval and says
    the seed variance is unknown. Seeds that agree on every image also get Wilson's."""
    c = _matrix(scores)
    k, n = c.shape
    mean = float(c.mean())
    binary = bool(np.isin(c, (0.0, 1.0)).all())
    image_term = _var(c.mean(axis=0)) / n
    seed = seed_variance(c.mean(axis=1)) or prior
    seed_term = seed.var / k if seed else 0.0
    se = math.sqrt(seed_term + image_term)
    if binary and (seed is None or se == 0 or mean in (0.0, 1.0)):
        label = "one checkpoint; seed variance unknown" if k == 1 else "seeds agree on every image"
        return Estimate(mean, se, math.inf, wilson(round(mean * n), n), f"Wilson ({label})")
    df = welch_df([(seed_term, seed.df if seed else 0), (image_term, n - 1)])
    if seed is None:
        method = "logit t, images (one run; seed variance unknown)"
    elif seed.source == "this study":
        method = "logit t, seeds + images"
    else:
        method = f"logit t, images + seed variance from {seed.source}"
    return Estimate(mean, se, df, _logit_interval(mean, se, df), method)


def estimate_rates(per_seed, n: int, prior: SeedVariance | None = None) -> Estimate:
    """`estimate` from per-seed accuracies on N images whose per-image results are not at
    hand: the images' term is the binomial p(1 - p) / n, an upper bound of the paired one."""
    acc = np.asarray(per_seed, float)
    k, mean = len(acc), float(acc.mean())
    seed = seed_variance(acc) or prior
    seed_term, image_term = (seed.var / k if seed else 0.0), mean * (1 - mean) / n
    if seed is None or mean in (0.0, 1.0):
        return Estimate(mean, math.sqrt(image_term), math.inf, wilson(round(mean * n), n), "Wilson (per-seed rates)")
    df = welch_df([(seed_term, seed.df), (image_term, n - 1)])
    se = math.sqrt(seed_term + image_term)
    return Estimate(mean, se, df, _logit_interval(mean, se, df), "logit t, seeds + binomial images")


def seed_t_interval(values) -> Interval | None:
    """The t-interval over per-seed values alone. For a benchmark's per-seed figures; for a
    variant's accuracy it leaves out the images' own sampling noise (tests show how it
    under-covers)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return None
    half = float(stats.t.ppf(1 - ALPHA / 2, len(values) - 1)) * values.std(ddof=1) / math.sqrt(len(values))
    return Interval(values.mean() - half, values.mean() + half)


def above_baseline_p(correct: int, n: int, baseline: float) -> float:
    """Exact one-sided binomial test: could a constant guesser have scored this well?"""
    return float(stats.binomtest(int(correct), int(n), baseline, alternative="greater").pvalue)


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
    """A minus B on the same images. `seed_var`: the seeds' share of the difference's
    variance for one seed each (divided by k for k seeds); `image_var`: the variance of the
    per-image differences (divided by n); `seed_basis` says where the seed share comes
    from (matched seeds, each side's seeds, a variance borrowed from an earlier study, or
    unknown: two single checkpoints)."""

    a: str
    b: str
    difference: float
    se: float
    df: float
    interval: Interval
    p_value: float
    p_greater: float  # one-sided: the chance of a difference this large if A were no better than B
    seeds: tuple[int, int]
    n: int
    matched: bool
    seed_var: float
    image_var: float
    seed_basis: str = "each side's seeds"
    p_holm: float = float("nan")
    family: int = 1  # how many comparisons Holm corrected over

    @property
    def checkpoints(self) -> bool:
        """Two single runs and no seed variance to lend: only these checkpoints are compared."""
        return self.seed_basis == "unknown"

    @property
    def verdict(self) -> str:
        better, worse = (self.a, self.b) if self.difference > 0 else (self.b, self.a)
        suffix = " (single checkpoints)" if self.checkpoints else ""
        if self.p_holm < ALPHA:
            return f"{better} > {worse}{suffix}"
        if self.p_value < ALPHA:
            return f"{better} ahead (p < {ALPHA}), not after Holm over {self.family}{suffix}"
        return "no detectable difference" + suffix

    def equivalent(self, margin: float) -> bool:
        """Two one-sided tests at alpha: the 90% interval of the difference lies inside
        +-MARGIN, evidence of no difference that matters (not merely no evidence of one)."""
        return abs(self.difference) + float(stats.t.ppf(1 - ALPHA, self.df)) * self.se <= margin


def compare(a, b, seeds_a=None, seeds_b=None, names=("A", "B"), priors=(None, None)) -> Comparison:
    """A minus B, both seeds x images on the same images in the same order (0/1
    correctness, or any per-image score such as log loss). When both ran the same seeds
    (two or more), seeds are matched: the seed term is the variance of the per-seed
    differences. A side with a single run takes its PRIORS entry (a SeedVariance borrowed
    from an earlier study), else the other side's seed variance; two single runs with no
    prior compare checkpoints, with the images' term alone, and say so."""
    a, b = _matrix(a), _matrix(b)
    image_var = _var(a.mean(axis=0) - b.mean(axis=0))
    return _comparison(a.mean(axis=1), b.mean(axis=1), image_var, a.shape[1], seeds_a, seeds_b, names, priors)


def compare_rates(acc_a, acc_b, n: int, seeds_a=None, seeds_b=None, names=("A", "B"), priors=(None, None)):
    """A minus B from per-seed accuracies on the same N images whose per-image results are
    not at hand (runs logged before validation was kept image by image): the images' term
    is p(1 - p) of each side, an upper bound of the paired term whenever the two tend to
    err on the same images."""
    pa, pb = float(np.mean(acc_a)), float(np.mean(acc_b))
    image_var = pa * (1 - pa) + pb * (1 - pb)
    acc_a, acc_b = np.asarray(acc_a, float), np.asarray(acc_b, float)
    return _comparison(acc_a, acc_b, image_var, n, seeds_a, seeds_b, names, priors)


def _comparison(acc_a, acc_b, image_var: float, n: int, seeds_a, seeds_b, names, priors) -> Comparison:
    ka, kb = len(acc_a), len(acc_b)
    difference = float(acc_a.mean() - acc_b.mean())
    matched = seeds_a is not None and list(seeds_a) == list(seeds_b or []) and ka >= 2
    if matched:
        seed_var, basis = _var(acc_a - acc_b), "matched seeds"
        seed_terms = [(seed_var / ka, ka - 1)]
    else:
        side_a, side_b = seed_variance(acc_a) or priors[0], seed_variance(acc_b) or priors[1]
        side_a, side_b = side_a or side_b, side_b or side_a
        if side_a is None:  # two single checkpoints, nothing to borrow
            side_a = side_b = SeedVariance(0.0, 0, "unknown")
        lent = {s.source for s in (side_a, side_b) if s.source not in ("this study", "unknown")}
        basis = (
            "unknown"
            if side_a.source == "unknown"
            else ("seed variance from " + ", ".join(sorted(lent)) if lent else "each side's seeds")
        )
        seed_var = side_a.var + side_b.var
        seed_terms = [(side_a.var / ka, side_a.df), (side_b.var / kb, side_b.df)]
    terms = [*seed_terms, (image_var / n, n - 1)]
    se = math.sqrt(sum(v for v, _ in terms))
    df = welch_df(terms)
    if se == 0:
        p, p_greater, half = (1.0, 0.5, 0.0) if difference == 0 else (0.0, float(difference < 0), 0.0)
    else:
        t = difference / se
        p = float(2 * stats.t.sf(abs(t), df))
        p_greater = float(stats.t.sf(t, df))
        half = float(stats.t.ppf(1 - ALPHA / 2, df)) * se
    interval = Interval(difference - half, difference + half)
    return Comparison(
        *names, difference, se, df, interval, p, p_greater, (ka, kb), n, matched, seed_var, image_var, basis
    )


def corrected(comparisons: list[Comparison]) -> list[Comparison]:
    """The same comparisons with Holm-adjusted p-values over all of them."""
    adjusted = holm([c.p_value for c in comparisons])
    return [replace(c, p_holm=p, family=len(comparisons)) for c, p in zip(comparisons, adjusted)]


def all_pairs(matrices: dict[str, np.ndarray], seeds: dict[str, list], priors=None) -> list[Comparison]:
    """Every pair, Holm-corrected over all of them: exploratory, never the decision."""
    priors = priors or {}
    return corrected(
        [
            compare(matrices[x], matrices[y], seeds[x], seeds[y], (x, y), (priors.get(x), priors.get(y)))
            for x, y in combinations(matrices, 2)
        ]
    )


def expected_calibration_error(y, p, bins: int = 10) -> float:
    """ECE (Guo et al. 2017) of probabilities P for outcomes Y (0/1), over equal-mass bins.
    Biased upward on a few hundred images even when calibrated: secondary to Brier."""
    order = np.argsort(p, kind="stable")
    y, p = np.asarray(y, float)[order], np.asarray(p, float)[order]
    chunks = [c for c in np.array_split(np.arange(len(p)), bins) if len(c)]
    return float(sum(len(c) * abs(y[c].mean() - p[c].mean()) for c in chunks) / len(p))
