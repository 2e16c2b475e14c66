"""A study's numbers: one row per variant and one comparison per pair of variants."""

from __future__ import annotations

import numpy as np

from catdog import stats
from catdog.report.runs import RunRecord, Study, predictions


def variant_row(group: str, records: list[RunRecord], baseline: float) -> dict:
    """Mean, sd and 95% interval over seeds (a Wilson interval for a single run), the lift
    over the baseline, and the worst seed's exact binomial p against the baseline. The best
    run is chosen by validation accuracy: the test split reports, it never chooses."""
    tests = [r.test_accuracy for r in records]
    vals = [r.val_accuracy for r in records]
    test_mean, test_sd, test_ci = stats.mean_interval(tests)
    val_mean, val_sd, val_ci = stats.mean_interval(vals)
    # A t-interval over few seeds can reach past 0 or 1; accuracy cannot.
    test_ci = stats.wilson(records[0].test_correct, records[0].n_test) if test_ci is None else test_ci.clip(0.0, 1.0)
    val_ci = None if val_ci is None else val_ci.clip(0.0, 1.0)
    p_values = [stats.above_baseline_p(r.test_correct, r.n_test, baseline) for r in records]
    best = max(records, key=lambda r: r.val_accuracy)
    return {
        "variant": group,
        "runs": len(records),
        "seeds": [r.seed for r in records],
        "val_accuracy_mean": val_mean,
        "val_accuracy_sd": val_sd,
        "val_ci": val_ci,
        "test_accuracy_mean": test_mean,
        "test_accuracy_sd": test_sd,
        "test_ci": test_ci,
        "test_accuracies": tests,
        "baseline_accuracy": baseline,
        "lift_mean": test_mean - baseline,
        "lift_ci": stats.Interval(test_ci.low - baseline, test_ci.high - baseline),
        "p_vs_baseline": max(p_values),
        "not_above_baseline": [r.id for r, p in zip(records, p_values) if p >= stats.ALPHA],
        "n_test": records[0].n_test,
        "best_run_id": best.id,
        "best_val_accuracy": best.val_accuracy,
    }


def variant_rows(study: Study) -> list[dict]:
    return [variant_row(group, records, study.baseline) for group, records in study.groups.items()]


def per_image(study: Study) -> dict[str, dict[str, object]]:
    """Each run's per-image predictions, keyed group -> seed -> DataFrame indexed by image.
    Runs without a predictions table are left out."""
    out: dict[str, dict] = {}
    for group, records in study.groups.items():
        seeds = [r.seed for r in records]
        for record in records:
            table = predictions(record)
            # A seed run twice (a study repeated) pairs with nothing: key it by run.
            key = record.seed if seeds.count(record.seed) == 1 else f"{record.seed}/{record.id[:8]}"
            if table is not None:
                out.setdefault(group, {})[key] = (record, table.set_index("image"))
    return out


def pairwise(study: Study, tables: dict) -> list[stats.Comparison]:
    """Every pair of groups, compared on the test images all their runs scored."""
    if len(tables) < 2:
        return []
    images = sorted(set.intersection(*(set(t.index) for runs in tables.values() for _, t in runs.values())))
    correct = {
        g: {s: t.loc[images, "correct"].to_numpy(dtype=float) for s, (_, t) in runs.items()}
        for g, runs in tables.items()
    }
    accuracy = {g: {s: float(np.mean(c)) for s, c in seeds.items()} for g, seeds in correct.items()}
    return stats.compare_variants(correct, accuracy)


COLUMNS = [
    "variant",
    "runs",
    "val accuracy",
    "test accuracy",
    "test 95% CI",
    "lift (95% CI)",
    "p vs baseline",
    "best run (by val)",
]


def _cells(row) -> list[str]:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"
    with_sd = lambda m, sd: pct(m) + ("" if sd is None else f" ± {pct(sd)}")
    ci, lift = row["test_ci"], row["lift_ci"]
    p = row["p_vs_baseline"]
    return [
        row["variant"],
        str(row["runs"]),
        with_sd(row["val_accuracy_mean"], row["val_accuracy_sd"]),
        with_sd(row["test_accuracy_mean"], row["test_accuracy_sd"]),
        f"[{100 * ci.low:.1f}, {100 * ci.high:.1f}]",
        f"{100 * row['lift_mean']:+.1f} pts [{100 * lift.low:+.1f}, {100 * lift.high:+.1f}]",
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
    """Rows with intervals as [low, high] lists, ready for json.dumps."""
    return [{k: ([v.low, v.high] if isinstance(v, stats.Interval) else v) for k, v in row.items()} for row in rows]
