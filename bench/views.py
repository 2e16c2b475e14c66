"""How many stored augmented views per training image the feature cache needs: `transfer`
trained on 1, 3, 6, ... cached views per image against fresh augmentation every epoch (the
plain pipeline, features.enabled=false), the same seeds for each, on the full data.

Each setting runs as one `catdog-train` multirun over the seeds into the experiment
`views-study` of the project's store (its wall time includes building that setting's views,
one backbone pass per view); then validation and test accuracy (mean, 95% t-interval over
seeds) and the train - validation gap of the last epoch (overfitting) are printed per setting,
and the experiment is recorded in the test split's ledger (it scores and prints test).
Usage: python bench/views.py [--views 1,3,6,10] [--seeds 0,1,2] [--epochs 20] [--no-plain]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXPERIMENT = "views-study"


def sweep(name: str, overrides: list[str], seeds: str, epochs: int, cache_dir: str) -> float:
    """Run one multirun; returns its wall time in seconds."""
    command = [
        str(Path(sys.executable).parent / "catdog-train"),
        "-m",
        "model=transfer",
        f"seed={seeds}",
        f"train.epochs={epochs}",
        "train.verbose=0",
        f"tracking.experiment={EXPERIMENT}",
        f"features.cache_dir={cache_dir}",
        f"hydra.sweep.dir=multirun/views-{name}-{time.strftime('%Y%m%d-%H%M%S')}",
        *overrides,
    ]
    print(f"running {name}: {' '.join(command[2:])}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def summarize(label: str, runs, wall: float) -> str:
    from catdog.stats import seed_t_interval
    from catdog.tracking.record import MODEL_VAL_ACCURACY, TEST_ACCURACY

    val = [r.data.metrics[MODEL_VAL_ACCURACY] for r in runs]
    test = [r.data.metrics[TEST_ACCURACY] for r in runs]
    gap = [r.data.metrics["accuracy"] - r.data.metrics["val_accuracy"] for r in runs]

    def fmt(values):
        # Seeds alone: this bench compares pipelines on the same test images, not variants on new data.
        interval = seed_t_interval(values)
        mean = statistics.fmean(values)
        return f"{100 * mean:.1f}% [{100 * interval.low:.1f}, {100 * interval.high:.1f}]" if interval else "-"

    return (
        f"| {label} | {len(runs)} | {fmt(val)} | {fmt(test)} | {100 * statistics.fmean(gap):+.1f} pts | "
        f"{wall / 60:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", default="1,3,6,10")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--no-plain", action="store_true", help="skip fresh augmentation (the slow rows)")
    args = parser.parse_args()

    import mlflow

    from catdog.config import load
    from catdog.tracking import record

    settings = [(f"{v} cached view(s)", [f"features.train_views={v}"]) for v in args.views.split(",")]
    if not args.no_plain:
        settings.append(("fresh augmentation (plain)", ["features.enabled=false", "train.log_model=false"]))
    results = []
    with tempfile.TemporaryDirectory(prefix="catdog-views-") as cache_dir:  # every setting starts cold
        for label, overrides in settings:
            started = int(time.time() * 1000)
            wall = sweep(label.split()[0], overrides, args.seeds, args.epochs, cache_dir)
            results.append((label, started, wall))
    cfg = load("train", [])
    mlflow.set_tracking_uri(cfg.tracking.uri)
    print(f"\n## features.train_views, transfer, {args.epochs} epochs, seeds {args.seeds} ({os.cpu_count()} cores)\n")
    print(
        "| training views | runs | val acc (95% interval) | test acc (95% interval) | last-epoch train - val "
        "| wall min (views + runs) |"
    )
    print("|---|---|---|---|---|---|")
    finished = record.find([mlflow.get_experiment_by_name(EXPERIMENT).experiment_id], status=record.FINISHED)
    for label, started, wall in results:
        runs = [r for r in finished if started <= r.info.start_time <= started + wall * 1000]
        print(summarize(label, runs, wall))
    # It prints test accuracies that docs quote: the test split's ledger counts this look.
    from catdog.report import ledger
    from catdog.report.runs import load_study

    counts = ledger.in_store(load_study(EXPERIMENT))
    ledger.record(cfg.paths.ledger, EXPERIMENT, counts, by="bench/views.py")
    print(f"\nrecorded in the test split's ledger: {counts['runs']} runs of {EXPERIMENT}")


if __name__ == "__main__":
    main()
