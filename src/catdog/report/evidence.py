"""What a reviewer asks for after the decision: how each variant differs from the control,
per-class precision and recall, and calibration (statistics.md, section 6)."""

from __future__ import annotations

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_fscore_support

from catdog import stats
from catdog.report.runs import RunRecord
from catdog.report.summary import Scores

# Settings that name, place or log a run rather than change what it learns.
NOT_HYPERPARAMETERS = ("model.name", "model.backbone.weights", "data.dir", "data.url", "data.cache_dir", "seed")
HYPERPARAMETER_PREFIXES = ("model.", "train.", "data.image_size", "features.train_views")
NOT_HYPERPARAMETER_PREFIXES = ("train.verbose", "train.log_model")


def hyperparameters(record: RunRecord) -> dict[str, str]:
    return {
        k: _short(v)
        for k, v in record.run.data.params.items()
        if k.startswith(HYPERPARAMETER_PREFIXES)
        and k not in NOT_HYPERPARAMETERS
        and not k.startswith(NOT_HYPERPARAMETER_PREFIXES)
    }


def _short(value: str) -> str:
    """A logged float as 3 significant digits (0.0961, not 0.0960547686314343)."""
    try:
        return f"{float(value):.3g}" if "." in value else value
    except ValueError:
        return value


def differences(groups: dict[str, list[RunRecord]], reference: str) -> dict[str, dict[str, tuple[str, str]]]:
    """Per variant, the settings in which it differs from REFERENCE's: {key: (its, reference's)}."""
    base = hyperparameters(groups[reference][0])
    out = {}
    for group, records in groups.items():
        own = hyperparameters(records[0])
        out[group] = {
            k: (own.get(k, "-"), base.get(k, "-")) for k in sorted(set(own) | set(base)) if own.get(k) != base.get(k)
        }
    return out


def per_class(scores: Scores) -> list[dict]:
    """Precision and recall of each class, mean over the variant's runs."""
    labels = list(range(len(scores.classes)))
    per_run = [
        precision_recall_fscore_support(scores.labels, predicted, labels=labels, zero_division=0)[:2]
        for predicted in scores.predicted
    ]
    precision, recall = np.mean([p for p, _ in per_run], axis=0), np.mean([r for _, r in per_run], axis=0)
    return [
        {"class": c, "precision": float(p), "recall": float(r)} for c, p, r in zip(scores.classes, precision, recall)
    ]


def calibration(scores: Scores, bins: int = 10) -> dict:
    """Brier score with its interval over seeds and images (primary), ECE over equal-mass
    bins (mean over runs; secondary: biased upward on a few hundred images) and the
    reliability curve of all runs' predictions together."""
    y = (scores.labels == 1).astype(float)
    ece = float(np.mean([stats.expected_calibration_error(y, p, bins) for p in scores.probability]))
    observed, predicted = calibration_curve(
        np.tile(y, len(scores.records)), scores.probability.ravel(), n_bins=bins, strategy="quantile"
    )
    return {"brier": stats.estimate(scores.brier), "ece": ece, "curve": (predicted, observed)}
