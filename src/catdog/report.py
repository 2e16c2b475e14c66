"""Comparing finished training runs by variant, from the tracking store."""

from __future__ import annotations

import json
import statistics

import mlflow

from catdog import CatdogError
from catdog.tracking import KIND_TAG

VARIANT_ORDER = ["cnn", "augmented", "preprocessed", "transfer"]


def _mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarize(experiment: str, kind: str = "train") -> list[dict]:
    """One row per variant over its FINISHED runs. The best run is picked by validation
    accuracy: the test split only reports, it never chooses."""
    if mlflow.get_experiment_by_name(experiment) is None:
        raise CatdogError(f"no experiment named {experiment!r} in {mlflow.get_tracking_uri()}")
    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=f"tags.{KIND_TAG} = '{kind}' and attributes.status = 'FINISHED'",
        output_format="list",
    )
    by_variant: dict[str, list] = {}
    for run in runs:
        if "test_accuracy" in run.data.metrics:
            by_variant.setdefault(run.data.tags.get("variant", "?"), []).append(run)
    order = sorted(by_variant, key=lambda v: (VARIANT_ORDER.index(v) if v in VARIANT_ORDER else len(VARIANT_ORDER), v))
    rows = []
    for variant in order:
        group = by_variant[variant]
        metric = lambda name: [r.data.metrics.get(name) for r in group]  # noqa: E731
        val_mean, val_sd = _mean_sd(metric("val_accuracy"))
        test_mean, test_sd = _mean_sd(metric("test_accuracy"))
        lift_mean, lift_sd = _mean_sd(metric("lift_over_baseline"))
        baseline_mean, _ = _mean_sd(metric("baseline_accuracy"))
        best = max(group, key=lambda r: r.data.metrics.get("val_accuracy", float("-inf")))
        rows.append(
            {
                "variant": variant,
                "runs": len(group),
                "seeds": sorted(r.data.tags.get("seed", "?") for r in group),
                "val_accuracy_mean": val_mean,
                "val_accuracy_sd": val_sd,
                "test_accuracy_mean": test_mean,
                "test_accuracy_sd": test_sd,
                "test_accuracies": metric("test_accuracy"),
                "baseline_accuracy": baseline_mean,
                "lift_mean": lift_mean,
                "lift_sd": lift_sd,
                "n_test": int(sum(int(v) for k, v in best.data.params.items() if k.startswith("n_test_"))),
                "best_run_id": best.info.run_id,
            }
        )
    return rows


def _pct(mean, sd=None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.1%}" + (f" ± {sd:.1%}" if sd is not None else "")


COLUMNS = ["variant", "runs", "val accuracy", "test accuracy", "lift over baseline", "best run (by val)"]


def _cells(row) -> list[str]:
    lift = "-" if row["lift_mean"] is None else f"{row['lift_mean'] * 100:+.1f} pts"
    return [
        row["variant"],
        str(row["runs"]),
        _pct(row["val_accuracy_mean"], row["val_accuracy_sd"]),
        _pct(row["test_accuracy_mean"], row["test_accuracy_sd"]),
        lift,
        row["best_run_id"],
    ]


def to_text(rows) -> str:
    table = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_markdown(rows) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def to_json(rows) -> str:
    return json.dumps(rows, indent=2)


def footnote(rows) -> str:
    if not rows:
        return "No finished runs."
    baseline = rows[0]["baseline_accuracy"]
    return (
        f"Mean ± sd over runs (seeds); test split of {rows[0]['n_test']} images; "
        f"majority-class baseline {baseline:.1%} on that split."
    )
