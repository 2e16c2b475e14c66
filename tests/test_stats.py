"""The statistics against values computed independently: textbook formulas by hand."""

import math

import numpy as np
import pytest

from catdog import stats

Z = 1.959963984540054  # the standard normal's 97.5% quantile


def test_wilson_interval_matches_the_formula():
    k, n = 8, 10
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    ci = stats.wilson(k, n)
    assert (ci.low, ci.high) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert (ci.low, ci.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # published value for 8/10


def test_t_interval_over_seeds():
    mean, sd, ci = stats.mean_interval([0.90, 0.92, 0.94])
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, df=2) from a t-table
    assert (mean, sd) == pytest.approx((0.92, 0.02))
    assert (ci.low, ci.high) == pytest.approx((0.92 - half, 0.92 + half))
    assert stats.mean_interval([0.7]) == (0.7, None, None)


def test_exact_binomial_test_against_the_baseline():
    by_hand = sum(math.comb(100, i) for i in range(60, 101)) / 2**100
    assert stats.above_baseline_p(60, 100, 0.5) == pytest.approx(by_hand)
    assert stats.above_baseline_p(50, 100, 0.5) > 0.5


def test_exact_mcnemar_on_discordant_pairs():
    a = np.array([1] * 20 + [1] * 1 + [0] * 9 + [0] * 5, bool)  # 1 image only A gets right
    b = np.array([1] * 20 + [0] * 1 + [1] * 9 + [0] * 5, bool)  # 9 only B gets right
    by_hand = 2 * (math.comb(10, 0) + math.comb(10, 1)) / 2**10
    assert stats.mcnemar_exact(a, b) == pytest.approx(by_hand)
    assert stats.mcnemar_exact(a, a) == 1.0


def test_paired_t_test_on_seeds():
    # d = 1, 2, 3: t = 2 / (1 / sqrt 3); with 2 degrees of freedom P(|T| > t) = 1 - t / sqrt(t^2 + 2).
    t = 2 * math.sqrt(3)
    p = stats.paired_seed_test({"0": 11, "1": 12, "2": 13}, {"0": 10, "1": 10, "2": 10, "3": 1})
    assert p == pytest.approx(1 - t / math.sqrt(t**2 + 2))
    assert stats.paired_seed_test({"0": 1.0}, {"0": 0.5}) is None
    # The same lead on every seed (floats that differ in the last bit): no t-test, p is not 0.
    assert stats.paired_seed_test({"0": 0.99, "1": 0.985, "2": 0.97}, {"0": 0.985, "1": 0.98, "2": 0.965}) is None


def test_holm_matches_the_textbook_steps():
    # Sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06.
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_paired_bootstrap_agrees_with_the_normal_approximation():
    rng = np.random.default_rng(1)
    a = (rng.random(4000) < 0.8).astype(float)
    b = (rng.random(4000) < 0.7).astype(float)
    diff, ci = stats.paired_bootstrap(a, b, seed=0, n_resamples=4000)
    d = a - b
    half = Z * d.std(ddof=1) / math.sqrt(len(d))
    assert diff == pytest.approx(d.mean())
    assert (ci.low, ci.high) == pytest.approx((d.mean() - half, d.mean() + half), abs=0.004)
    same = stats.paired_bootstrap(a, a)
    assert same[0] == 0 and (same[1].low, same[1].high) == (0, 0)


def test_paired_permutation_is_exact_for_small_samples():
    # Ten images all favouring A: of the 2^10 sign flips only all-plus and all-minus are as extreme.
    assert stats.paired_permutation(np.ones(10), np.zeros(10)) == pytest.approx(2 / 2**10)
    assert stats.paired_permutation(np.ones(5), np.ones(5)) == 1.0


def test_verdicts_name_the_better_variant_only_when_it_is_detectable():
    rng = np.random.default_rng(0)
    truth_a = (rng.random(200) < 0.95).astype(float)
    truth_b = (rng.random(200) < 0.55).astype(float)
    correct = {"good": {"0": truth_a}, "coin": {"0": truth_b}, "twin": {"0": truth_b.copy()}}
    accuracy = {g: {s: float(c.mean()) for s, c in seeds.items()} for g, seeds in correct.items()}
    verdicts = {(c.a, c.b): c for c in stats.compare_variants(correct, accuracy)}
    assert verdicts[("good", "coin")].verdict == "good > coin"
    assert verdicts[("coin", "twin")].verdict == "no detectable difference"
    assert verdicts[("good", "coin")].test == "exact McNemar"
    assert verdicts[("good", "coin")].p_holm == pytest.approx(min(1.0, 3 * verdicts[("good", "coin")].p_value))


def test_the_same_lead_on_every_seed_is_tested_on_the_images():
    behind = np.zeros(200)
    behind[:190] = 1
    ahead = behind.copy()
    ahead[190] = 1  # one image more, on each of three seeds
    correct = {"ahead": dict.fromkeys("012", ahead), "behind": dict.fromkeys("012", behind)}
    accuracy = {g: {s: float(c.mean()) for s, c in seeds.items()} for g, seeds in correct.items()}
    (c,) = stats.compare_variants(correct, accuracy)
    assert (c.test, c.verdict) == ("paired permutation test", "no detectable difference")
    assert c.p_value > 0.9  # one image of 200 (the t-test on seeds would say p 0)
