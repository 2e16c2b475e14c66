"""A study's numbers: each variant's per-image test scores and its row of figures."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from catdog.report import stats
from catdog.report.runs import RunRecord, Study, predictions


@dataclass(frozen=True)
class Scores:
    """One variant's test results on the images every run of the study scored, one row
    per run (seeds x images)."""

    records: list[RunRecord]
    images: list[str]
    classes: list[str]
    labels: np.ndarray  # (n,) class index
    predicted: np.ndarray  # (k, n) class index
    probability: np.ndarray  # (k, n) probability of classes[1]

    @property
    def seeds(self) -> list[str]:
        return [r.seed for r in self.records]

    @property
    def correct(self) -> np.ndarray:
        return (self.predicted == self.labels).astype(float)

    @property
    def brier(self) -> np.ndarray:
        """Per-image Brier score (sklearn's binary definition): additive over images."""
        return (self.probability - (self.labels == 1)) ** 2


def per_image_scores(study: Study) -> dict[str, Scores]:
    """Each variant's Scores over the test images that all its runs, and every other
    variant's, scored. Runs logged without a predictions table are left out."""
    tables = {g: [(r, t) for r in records if (t := predictions(r)) is not None] for g, records in study.groups.items()}
    tables = {g: runs for g, runs in tables.items() if runs}
    if not tables:
        return {}
    images = sorted(set.intersection(*(set(t["image"]) for runs in tables.values() for _, t in runs)))
    out = {}
    for group, runs in tables.items():
        frames = [t.set_index("image").loc[images] for _, t in runs]
        classes = [c[len("p_") :] for c in frames[0].columns if c.startswith("p_")]
        index = {name: i for i, name in enumerate(classes)}
        out[group] = Scores(
            records=[r for r, _ in runs],
            images=images,
            classes=classes,
            labels=frames[0]["label"].map(index).to_numpy(),
            predicted=np.array([f["predicted"].map(index).to_numpy() for f in frames]),
            probability=np.array([f[f"p_{classes[1]}"].to_numpy(dtype=float) for f in frames]),
        )
    return out


def variant_row(group: str, records: list[RunRecord], baseline: float, scores: Scores | None) -> dict:
    """Validation per seed (the choosing split), test with an interval over seeds and
    images, lift and the worst seed's exact binomial p against the baseline, Brier score,
    cost and code version. The best run is chosen by validation, never by test."""
    tests = [r.test_accuracy for r in records]
    vals = [r.val_accuracy for r in records]
    if scores is not None:
        test = stats.estimate(scores.correct)
    else:  # runs from before per-image predictions were logged: one checkpoint's interval
        test = stats.Estimate(float(np.mean(tests)), float("nan"), float("inf"), _wilson(records), "Wilson (one run)")
    p_values = [stats.above_baseline_p(r.test_correct, r.n_test, baseline) for r in records]
    best = max(records, key=lambda r: r.val_accuracy)
    return {
        "variant": group,
        "runs": len(records),
        "seeds": [r.seed for r in records],
        "val_accuracy_mean": float(np.mean(vals)),
        "val_accuracy_sd": _sd(vals),
        "val_accuracies": vals,
        "val_correct": [r.val_correct for r in records],
        "n_val": records[0].count("val"),
        "val_loss_mean": _mean([r.val_loss for r in records]),
        "test_accuracy_mean": test.mean,
        "test_accuracy_sd": _sd(tests),
        "test": test,
        "test_ci": test.interval,
        "test_accuracies": tests,
        "test_correct": [r.test_correct for r in records],
        "n_test": records[0].n_test,
        "baseline_accuracy": baseline,
        "lift_mean": test.mean - baseline,
        "lift_ci": stats.Interval(test.interval.low - baseline, test.interval.high - baseline),
        "p_vs_baseline": max(p_values),
        "not_above_baseline": [r.id for r, p in zip(records, p_values) if p >= stats.ALPHA],
        "best_run_id": best.id,
        "best_val_accuracy": best.val_accuracy,
        "brier": stats.estimate(scores.brier) if scores is not None else None,
        "wall_minutes": statistics.fmean(r.wall_seconds for r in records) / 60,
        "epochs": _mean([_epochs(r) for r in records]),
        "images_per_s": _mean([r.metric("train_images_per_s") for r in records]),
        "peak_rss_gb": max((r.metric("peak_rss_mb") or 0) / 1024 for r in records) or None,
        "commits": sorted({r.commit for r in records}),
    }


def _wilson(records: list[RunRecord]) -> stats.Interval:
    best = max(records, key=lambda r: r.val_accuracy)
    return stats.wilson(best.test_correct, best.n_test)


def _sd(values) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _epochs(record: RunRecord) -> float | None:
    """Epochs trained: images/s x fit time / training images (runs log no epoch count)."""
    rate, seconds = record.metric("train_images_per_s"), record.metric("fit_seconds")
    if rate is None or seconds is None:
        return None
    return round(rate * seconds / record.count("train"))


def variant_rows(study: Study, scores: dict[str, Scores] | None = None) -> list[dict]:
    scores = per_image_scores(study) if scores is None else scores
    return [variant_row(g, records, study.baseline, scores.get(g)) for g, records in study.groups.items()]


COLUMNS = ["variant", "runs", "val right per seed", "val loss", "test accuracy (95% CI)", "p vs baseline", "best run"]


def _cells(row) -> list[str]:
    ci, p = row["test_ci"], row["p_vs_baseline"]
    return [
        row["variant"],
        str(row["runs"]),
        f"{', '.join(map(str, row['val_correct']))} of {row['n_val']}",
        "-" if row["val_loss_mean"] is None else f"{row['val_loss_mean']:.3f}",
        f"{100 * row['test_accuracy_mean']:.1f}% [{100 * ci.low:.1f}, {100 * ci.high:.1f}]",
        "< 0.001" if p < 0.001 else f"{p:.3f}",
        row["best_run_id"],
    ]


def to_text(rows: list[dict]) -> str:
    """The variant table as fixed-width text for a terminal."""
    table = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(rows: list[dict]) -> list[dict]:
    """Rows with intervals as [low, high] lists and estimates as objects, for json.dumps."""

    def plain(value):
        if isinstance(value, stats.Interval):
            return [value.low, value.high]
        if isinstance(value, stats.Estimate):
            return {"mean": value.mean, "interval": plain(value.interval), "method": value.method}
        return value

    return [{k: plain(v) for k, v in row.items()} for row in rows]
