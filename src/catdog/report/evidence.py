"""What a reviewer asks for after the decision: how each variant differs from the control,
per-class precision and recall, and calibration (docs/review.md, "The statistics")."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from catdog import stats
from catdog.report.runs import RunRecord
from catdog.report.summary import Scores


def differences(groups: dict[str, list[RunRecord]], reference: str) -> dict[str, dict[str, tuple[str, str]]]:
    """Per variant, the settings in which it differs from REFERENCE's: {key: (its, reference's)}."""
    base = groups[reference][0].hyperparameters
    out = {}
    for group, records in groups.items():
        own = records[0].hyperparameters
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
    curve = reliability_bins(np.tile(y, len(scores.records)), scores.probability.ravel(), bins)
    return {"brier": stats.estimate(scores.brier), "ece": ece, "curve": curve}


def reliability_bins(y, p, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What `reliability` draws for outcomes Y (0/1) and predicted probabilities P: per bin
    of equal width across [0, 1], the mean predicted probability, the fraction of positives
    and the number of predictions; the means are NaN in a bin that holds none. Equal-width bins, not
    equal-mass ones: with equal mass a near-perfect model has every bin in a corner and
    nothing shows that the middle is empty."""
    y, p = np.asarray(y, float).ravel(), np.asarray(p, float).ravel()
    index = np.clip((p * bins).astype(int), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(index, weights=p, minlength=bins) / counts
        observed = np.bincount(index, weights=y, minlength=bins) / counts
    return predicted, observed, counts
