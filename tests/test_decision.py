"""The review page's decision rule and what a published page may show, on rows built by hand."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from catdog import PROJECT_ROOT, CatdogError
from catdog.config import load
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
    assert choice.recommended.variant == "256 px" and set(choice.equivalent) == {"256 px", "288 px"}
    assert 0 in choice.losses[0].interval
    assert choice.reason.startswith("equivalent on validation: ") and choice.reason.endswith(
        "chose 256 px: the cheapest run"
    )
    # Wall times that do not tell the two apart: the incumbent stays, else the lower loss.
    walls = {"288 px": [24.0, 40.0, 31.0], "256 px": [30.0, 22.0, 36.0]}
    noisy = [replace(r, wall_seconds=walls[r.variant]) for r in rows]
    assert decision.recommend(noisy, val, incumbent="256 px").recommended.variant == "256 px"
    assert decision.recommend(noisy, val, incumbent="288 px").reason.endswith("chose 288 px: the incumbent stays")
    lower = decision.recommend(noisy, val)
    assert lower.recommended.variant == "288 px" and lower.reason.endswith(
        "the lower validation loss of the equally cheap"
    )
    # Without per-image validation results and with one run each, neither loss nor cost has an
    # interval: as cheap, so the lower loss decides.
    single = [row("a", [791], 0.04, 0.5), row("b", [792], 0.03, 0.2)]
    assert decision.recommend(single).recommended.variant == "b" and decision.recommend(single).losses == []


def test_the_control_is_the_incumbent_then_the_reference_model_unless_named():
    rows = [row("cnn", [480], 0.6), row("transfer", [770], 0.1), row("frozen-256-linear", [792], 0.05)]
    assert decision.choose_control(rows, rows[2])[0].variant == "transfer"
    assert decision.choose_control(rows, rows[1])[0].variant == "cnn"
    assert decision.choose_control(rows, rows[2], "cnn")[0].variant == "cnn"
    incumbent, note = decision.choose_control(rows, rows[1], incumbent="frozen-256-linear")
    assert incumbent.variant == "frozen-256-linear" and "incumbent" in note
    assert decision.incumbent_variant() == load("train", ["experiment=best"]).model.name
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
