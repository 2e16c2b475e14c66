"""The study's statistics: intervals, tests against the baseline, and paired comparisons
of variants on the same test images. scipy.stats does the work wherever it can."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

ALPHA = 0.05
LEVEL = 1 - ALPHA


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def clip(self, low: float, high: float) -> Interval:
        return Interval(min(max(self.low, low), high), max(min(self.high, high), low))


def wilson(correct: int, n: int) -> Interval:
    """Wilson score interval of a proportion (one run's test accuracy)."""
    ci = stats.binomtest(int(correct), int(n)).proportion_ci(confidence_level=LEVEL, method="wilson")
    return Interval(float(ci.low), float(ci.high))


def mean_interval(values) -> tuple[float, float | None, Interval | None]:
    """Mean, sample sd and t-interval of the mean over seeds (None for one value)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None, None
    sd = float(values.std(ddof=1))
    if sd == 0.0:
        return mean, 0.0, Interval(mean, mean)
    ci = stats.ttest_1samp(values, mean).confidence_interval(LEVEL)
    return mean, sd, Interval(float(ci.low), float(ci.high))


def above_baseline_p(correct: int, n: int, baseline: float) -> float:
    """Exact one-sided binomial test: could a constant guesser have scored this well?"""
    return float(stats.binomtest(int(correct), int(n), baseline, alternative="greater").pvalue)


def mcnemar_exact(correct_a, correct_b) -> float:
    """Exact McNemar test (two-sided) of two classifiers on the same images: a binomial
    test on the images exactly one of them got right."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_seed_test(acc_a: dict, acc_b: dict) -> float | None:
    """Paired t-test on per-seed accuracies over the seeds both variants ran. None if
    fewer than two are shared, or if every seed differs by the same amount: the t statistic
    is then infinite (p 0 for a one-image lead on three seeds), so the caller tests images."""
    seeds = sorted(set(acc_a) & set(acc_b))
    if len(seeds) < 2:
        return None
    diffs = np.array([acc_a[s] - acc_b[s] for s in seeds])
    if np.allclose(diffs, diffs[0], rtol=0, atol=1e-9):
        return None
    return float(stats.ttest_rel([acc_a[s] for s in seeds], [acc_b[s] for s in seeds]).pvalue)


def paired_permutation(correct_a, correct_b, seed: int = 0, n_resamples: int = 9999) -> float:
    """Two-sided sign-flip permutation test of the mean per-image difference, for groups
    without two shared seeds (one run against several). Its own generator."""
    diffs = np.asarray(correct_a, float) - np.asarray(correct_b, float)
    if not diffs.any():
        return 1.0
    result = stats.permutation_test(
        (diffs,),
        np.mean,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def paired_bootstrap(correct_a, correct_b, seed: int = 0, n_resamples: int = 9999) -> tuple[float, Interval]:
    """Accuracy difference A - B on the same images, with a percentile bootstrap interval
    from resampling images. CORRECT_*: (n_images,) per-image accuracy, already averaged
    over seeds (0/1 for a single run). Draws from its own generator."""
    a, b = np.asarray(correct_a, float), np.asarray(correct_b, float)
    diff = float(a.mean() - b.mean())
    if np.all(a == b):
        return diff, Interval(diff, diff)
    result = stats.bootstrap(
        (a, b),
        lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis),
        paired=True,
        vectorized=True,
        confidence_level=LEVEL,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return diff, Interval(float(result.confidence_interval.low), float(result.confidence_interval.high))


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (scipy has only BH/BY)."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    difference: float  # accuracy of a minus b, on the shared test images
    interval: Interval
    test: str
    p_value: float
    p_holm: float = float("nan")

    @property
    def verdict(self) -> str:
        if self.p_holm < ALPHA and self.interval.low > 0:
            return f"{self.a} > {self.b}"
        if self.p_holm < ALPHA and self.interval.high < 0:
            return f"{self.b} > {self.a}"
        return "no detectable difference"


def compare_variants(
    correct: dict[str, dict[str, np.ndarray]], accuracy: dict[str, dict[str, float]], seed: int = 0
) -> list[Comparison]:
    """Every pair of variants. CORRECT[variant][seed]: per-image 0/1 on the same test
    images in the same order; ACCURACY[variant][seed]: that run's test accuracy.
    One run each: exact McNemar. Two or more shared seeds whose differences vary: paired
    t-test on per-seed accuracies. Otherwise (one run against several, or the same
    difference on every seed): a paired permutation test on the seed-averaged per-image
    scores."""
    out = []
    for a, b in combinations(correct, 2):
        mean_a = np.mean(list(correct[a].values()), axis=0)
        mean_b = np.mean(list(correct[b].values()), axis=0)
        diff, interval = paired_bootstrap(mean_a, mean_b, seed=seed)
        if len(correct[a]) == len(correct[b]) == 1:
            test, p = "exact McNemar", mcnemar_exact(mean_a, mean_b)
        elif (p := paired_seed_test(accuracy[a], accuracy[b])) is not None:
            test = "paired t-test over seeds"
        else:
            test, p = "paired permutation test", paired_permutation(mean_a, mean_b, seed=seed)
        out.append(Comparison(a, b, diff, interval, test, p))
    adjusted = holm([c.p_value for c in out])
    return [Comparison(c.a, c.b, c.difference, c.interval, c.test, c.p_value, p) for c, p in zip(out, adjusted)]
