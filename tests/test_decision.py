"""The review page's decision rule and what a published page may show, on rows built by hand."""

from pathlib import Path

import numpy as np
import pytest

from catdog import PROJECT_ROOT, CatdogError
from catdog.report import decision
from catdog.report.paths import shown

pytestmark = pytest.mark.unit


def row(variant, val_right, val_loss, minutes=1.0, n_val=800):
    return {
        "variant": variant,
        "seeds": [str(s) for s in range(len(val_right))],
        "val_accuracies": [v / n_val for v in val_right],
        "val_accuracy_mean": float(np.mean(val_right)) / n_val,
        "n_val": n_val,
        "val_loss_mean": val_loss,
        "wall_minutes": minutes,
    }


def test_a_clear_leader_on_validation_is_recommended():
    rows = [row("cnn", [480, 500, 470], 0.6), row("transfer", [770, 773, 771], 0.12)]
    chosen, reason, tied, differences = decision.recommend(rows)
    assert chosen["variant"] == "transfer" and tied == ["transfer"]
    assert reason.startswith("highest mean validation accuracy, +") and "over cnn" in reason
    assert differences[0].interval.low > 0


def test_a_tie_on_validation_goes_to_the_lower_loss_then_the_cheaper_run():
    # 256 px leads by one image a seed: inside the interval, so the lower validation loss decides.
    rows = [
        row("224 px", [792, 792, 790], 0.052),
        row("256 px", [791, 793, 793], 0.046),
        row("288 px", [790, 792, 791], 0.044),
    ]
    chosen, reason, tied, _ = decision.recommend(rows)
    assert set(tied) == {"224 px", "256 px", "288 px"} and chosen["variant"] == "288 px"
    assert "the lowest validation loss (0.0440)" in reason
    rows = [row("slow", [791, 793, 793], 0.046, minutes=2.5), row("fast", [791, 792, 793], 0.046, minutes=0.2)]
    chosen, reason, _, _ = decision.recommend(rows)
    assert chosen["variant"] == "fast" and reason.endswith("shared with slow, and the cheaper run")


def test_the_control_is_the_reference_model_unless_named():
    rows = [row("cnn", [480], 0.6), row("transfer", [770], 0.1), row("frozen-256-linear", [792], 0.05)]
    assert decision.choose_control(rows, rows[2])[0]["variant"] == "transfer"
    assert decision.choose_control(rows, rows[1])[0]["variant"] == "cnn"
    assert decision.choose_control(rows, rows[2], "cnn")[0]["variant"] == "cnn"
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
