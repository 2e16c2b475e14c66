"""The review page's decision rule and what a published page may show, on rows built by hand."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from catdog import PROJECT_ROOT, CatdogError
from catdog.report import decision
from catdog.report.paths import shown
from catdog.report.summary import Scores
from helpers import variant_row as row

pytestmark = pytest.mark.unit


def val_scores(rng, right_per_seed, loss_level, n=800) -> Scores:
    """Seeds x images of validation results with RIGHT_PER_SEED images right and per-image
    losses around LOSS_LEVEL (small where right, large where wrong)."""
    k = len(right_per_seed)
    correct = np.zeros((k, n), bool)
    for seed, right in enumerate(right_per_seed):
        correct[seed, rng.permutation(n)[:right]] = True
    labels = np.zeros(n, int)
    losses = np.where(correct, rng.exponential(loss_level, (k, n)), rng.exponential(1.5, (k, n)))
    return Scores(
        [None] * k, [str(i) for i in range(n)], ["cats", "dogs"], labels, np.where(correct, 0, 1), 1 - correct, losses
    )


def test_a_clear_leader_on_validation_is_recommended():
    rows = [row("cnn", [480, 500, 470], 0.6), row("transfer", [770, 773, 771], 0.12)]
    choice = decision.recommend(rows)
    assert choice.recommended.variant == "transfer" and choice.tied == ["transfer"] and choice.equivalent == []
    assert choice.reason.startswith("highest mean validation accuracy, +") and "over cnn" in choice.reason
    assert choice.validation[0].interval.low > 0


def test_a_tie_on_accuracy_goes_to_a_loss_that_its_interval_resolves():
    rng = np.random.default_rng(0)
    rows = [row("224 px", [792, 792, 790], 0.052), row("288 px", [790, 792, 791], 0.030)]
    val = {"224 px": val_scores(rng, [792, 792, 790], 0.05), "288 px": val_scores(rng, [790, 792, 791], 0.02)}
    rows = [replace(r, val_losses=list(val[r.variant].losses.mean(axis=1))) for r in rows]
    choice = decision.recommend(rows, val)
    assert set(choice.tied) == {"224 px", "288 px"} and choice.recommended.variant == "288 px"
    [loss] = choice.losses
    assert loss.a == "288 px" and loss.interval.high < 0  # resolved: the interval excludes 0
    assert "the lower validation loss, resolved from each" in choice.reason


def test_a_tie_on_accuracy_and_loss_goes_to_the_cheaper_run_then_the_incumbent():
    # The old rule's case: 288 px "won" on a bare loss gap of 0.0015 that no interval supports.
    rng = np.random.default_rng(1)
    spec = {"256 px": ([791, 793, 793], 0.0455, 0.4), "288 px": ([790, 792, 791], 0.0440, 0.6)}
    val = {v: val_scores(rng, right, 0.04) for v, (right, _, _) in spec.items()}
    rows = [row(v, right, loss, minutes) for v, (right, loss, minutes) in spec.items()]
    choice = decision.recommend(rows, val)
    assert choice.recommended.variant == "256 px" and set(choice.untold) == {"256 px", "288 px"}
    assert 0 in choice.losses[0].interval
    assert choice.reason.startswith("tied on validation accuracy and loss: ") and "chose 256 px: the cheapest run" in (
        choice.reason
    )
    [cost] = choice.costs  # 288 px minus the chosen, in seconds, with its interval
    assert cost.a == "288 px" and cost.difference == pytest.approx(12.0)
    # Wall times that do not tell the two apart: the incumbent stays, else the lower loss.
    walls = {"288 px": [24.0, 40.0, 31.0], "256 px": [30.0, 22.0, 36.0]}
    noisy = [replace(r, cost_seconds=walls[r.variant]) for r in rows]
    assert decision.recommend(noisy, val, incumbent="256 px").recommended.variant == "256 px"
    assert "chose 288 px: the incumbent stays" in decision.recommend(noisy, val, incumbent="288 px").reason
    lower = decision.recommend(noisy, val)
    assert lower.recommended.variant == "288 px" and "the lower validation loss of the not materially dearer" in (
        lower.reason
    )
    # Without per-image validation results and with one run each, neither loss nor cost has an
    # interval: not dearer, so the lower loss decides.
    single = [row("a", [791], 0.04, 0.5), row("b", [792], 0.03, 0.2)]
    assert decision.recommend(single).recommended.variant == "b" and decision.recommend(single).losses == []


def test_a_second_of_cost_does_not_decide_however_sure_it_is():
    """8.1 s against 9.1 s a run, resolved by a tight interval, is below the material margin
    (5 s here): the incumbent stays. A difference above it decides."""
    rng = np.random.default_rng(2)
    spec = {"256 px": [791, 793, 793], "288 px": [790, 792, 791]}
    val = {v: val_scores(rng, right, 0.04) for v, right in spec.items()}
    costs = {"256 px": [8.0, 8.1, 8.2], "288 px": [9.0, 9.1, 9.2]}
    rows = [replace(row(v, right, 0.045), cost_seconds=costs[v]) for v, right in spec.items()]
    choice = decision.recommend(rows, val, incumbent="288 px")
    [cost] = choice.costs
    assert cost.interval.low < 0 and choice.recommended.variant == "288 px"  # resolved, yet not material
    assert decision.cost_margin(rows[0]) == 5.0 and "none dearer beyond it" in choice.reason
    dear = [replace(r, cost_seconds=[3 * c for c in r.cost_seconds]) if r.variant == "288 px" else r for r in rows]
    assert decision.recommend(dear, val, incumbent="288 px").recommended.variant == "256 px"


def test_equivalence_is_claimed_only_where_two_one_sided_tests_pass():
    rng = np.random.default_rng(3)
    close = {"a": [792, 793, 792, 791, 792], "b": [792, 791, 793, 792, 792]}
    val = {v: val_scores(rng, right, 0.04) for v, right in close.items()}
    # Two close settings of one backbone err on nearly the same images: b is a with, per
    # seed, one image it got right now wrong and one it got wrong now right.
    predicted = val["a"].predicted.copy()
    for seed in range(len(predicted)):
        right, wrong = np.flatnonzero(predicted[seed] == 0), np.flatnonzero(predicted[seed] == 1)
        flip = [rng.choice(right), rng.choice(wrong)]
        predicted[seed, flip] = 1 - predicted[seed, flip]
    val["b"] = replace(val["a"], predicted=predicted, losses=val["b"].losses)
    rows = [row(v, right, 0.04) for v, right in close.items()]
    choice = decision.recommend(rows, val)
    [c] = choice.against_tied
    assert c.equivalent(0.01) and choice.equivalent == [c.b] and choice.words(c.b) == "equivalent within +-1 pt"
    assert "equivalent within +-1 pt (90% interval inside the margin)" in choice.reason
    # Few images, two seeds: tied, but the interval is too wide to show equivalence.
    few = {v: val_scores(rng, [r // 10 for r in right[:2]], 0.04, n=80) for v, right in close.items()}
    rows = [row(v, [r // 10 for r in right[:2]], 0.04, n_val=80) for v, right in close.items()]
    loose = decision.recommend(rows, few)
    assert (
        loose.equivalent == []
        and loose.undistinguished
        and loose.words(loose.undistinguished[0]) == ("not distinguished")
    )


def test_the_control_is_the_incumbent_then_the_reference_model_unless_named():
    rows = [row("cnn", [480], 0.6), row("transfer", [770], 0.1), row("frozen-256-linear", [792], 0.05)]
    assert decision.choose_control(rows, rows[2])[0].variant == "transfer"
    assert decision.choose_control(rows, rows[1])[0].variant == "cnn"
    assert decision.choose_control(rows, rows[2], "cnn")[0].variant == "cnn"
    incumbent, note = decision.choose_control(rows, rows[1], incumbent="frozen-256-linear")
    assert incumbent.variant == "frozen-256-linear" and "incumbent" in note
    with pytest.raises(CatdogError, match="--control 'vgg' is not a variant"):
        decision.choose_control(rows, rows[2], "vgg")


def test_pages_show_no_local_paths_and_no_passwords():
    assert shown(f"sqlite:///{PROJECT_ROOT}/mlruns/mlflow.db") == "sqlite:///mlruns/mlflow.db"
    assert shown(f"{Path.home()}/.keras/datasets/cats_and_dogs_filtered") == "~/.keras/datasets/cats_and_dogs_filtered"
    assert (
        shown("file:///srv/data/archives/cats_and_dogs_filtered.zip")
        == "file://.../archives/cats_and_dogs_filtered.zip"
    )
    assert shown("postgresql://mlflow:secret@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    assert shown("http://tracking-host:5000") == "http://tracking-host:5000"


def test_a_label_is_suspect_only_where_two_strong_variants_are_confidently_wrong_in_every_run():
    from catdog.report.build import suspect_labels

    labels = np.array([0, 1, 0, 1])

    def scores(p_dog) -> Scores:  # runs x images: the probability of dogs (class 1)
        p = np.array(p_dog, float)
        return Scores([None] * len(p), ["a", "b", "c", "d"], ["cats", "dogs"], labels, (p > 0.5).astype(int), p)

    # Image 0 (a cat): both strong variants say dog with 0.97+ in every run; image 1 (a dog):
    # one strong variant is unsure in one run; image 2: only the weak variant is wrong.
    strong_a = scores([[0.97, 0.9, 0.1, 0.9], [0.98, 0.05, 0.1, 0.9]])
    strong_b = scores([[0.99, 0.05, 0.1, 0.9], [0.97, 0.04, 0.2, 0.9]])
    weak = scores([[0.99, 0.01, 0.99, 0.9]])
    rows = [row("a", [790, 792], 0.1), row("b", [791, 793], 0.1), row("weak", [592], 0.6)]
    flags = suspect_labels({"a": strong_a, "b": strong_b, "weak": weak}, rows)
    assert flags.tolist() == [True, False, False, False]
    assert suspect_labels({"a": strong_a, "weak": weak}, rows) is None  # one strong witness is not enough


def test_a_variant_whose_cache_was_built_before_the_study_is_never_called_cheapest():
    """Every run of 256 px found its feature cache built (its whole cost unknown: 7 s of
    wall time hides a build the others paid): cost cannot call it cheapest, nor dearer; the
    reason says so, and among the rest cost decides as before."""
    rng = np.random.default_rng(4)
    spec = {"224 px": [792, 792, 790], "256 px": [791, 793, 793], "288 px": [790, 792, 791]}
    val = {v: val_scores(rng, right, 0.04) for v, right in spec.items()}
    costs = {"224 px": [24.0, 7.0, 7.2], "256 px": [7.0, 7.1, 6.9], "288 px": [36.0, 9.0, 9.2]}
    builds = {"224 px": 17.0, "256 px": None, "288 px": 27.0}
    rows = [replace(row(v, r, 0.045), cost_seconds=[c + (builds[v] or 0) for c in costs[v][1:]] * 2,
                    cached=True, cache_seconds=builds[v]) for v, r in spec.items()]  # fmt: skip
    choice = decision.recommend(rows, val)
    assert "whole cost unknown (the cache built before these runs): 256 px" in choice.reason
    assert "256 px 7 s without its cache build" in choice.reason
    assert "dearer beyond it: 288 px" in choice.reason and choice.because != "the cheapest run"
    assert decision.recommend(rows, val, incumbent="256 px").recommended.variant == "256 px"
