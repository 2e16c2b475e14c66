"""A `transfer` head fit on cached backbone features, as a search trial runs it: where its
time goes, and levers that could make it cheaper with the same numerics (the same weights
after the same steps), all measured in one run with rounds interleaved (A B A B: these
machines are noisy; compare within a run, never across runs).

Profile, 160 px, the reference head (Flatten -> Dense(64) -> logits) on 2,000 cached
training views and 800 validation features, batch 32: input (iterating the training
batches alone), train steps (fit without validation or callbacks), validation (one
evaluate pass), MLflow's per-epoch logging (the callback trials use, into a real SQLite
store) and what a whole epoch as a trial fits it costs.

Levers, each from the same seeded head and batches: one train step per call into
TensorFlow (the fit before 2026-12-06), 8 steps per call, a whole epoch per call (the
project's fit since), and validation in batches of 256 on top. A lever counts only if the
weights after the fit are identical to the baseline's.
Usage: python bench/head_fit.py [--epochs 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def setup(root: str):
    from catdog.config import load
    from catdog.data import load_study_data
    from catdog.training import features
    from catdog.training.plan import fit_plan

    weights = os.environ.get("CATDOG_BACKBONE_WEIGHTS", "imagenet")
    overrides = ["model=transfer", f"model.backbone.weights={weights}", "train.verbose=0", f"paths.mlruns_dir={root}"]
    cfg = load("train", overrides)
    data = load_study_data(cfg.data)
    started = time.perf_counter()
    cached = features.cache_for(None, data, cfg, fit_plan(cfg)).features(cfg)
    print(f"decoded and cached features in {time.perf_counter() - started:.0f} s (not counted below)")
    return cfg, data, cached


def fit_once(cfg, data, cached, epochs: int, lever: dict):
    """A seeded head fit as `fitting.fit` runs it; LEVER: {"steps_per_execution": K,
    "validation_batch_size": B}, inside an MLflow run as a trial's. Returns (seconds, weights)."""
    import mlflow
    from omegaconf import OmegaConf

    from catdog.training import fitting, seeding
    from catdog.training.plan import fit_plan

    seeding.seed_run(0)
    run_cfg = OmegaConf.merge(cfg, {"train": {"epochs": epochs}})
    plan = fit_plan(run_cfg)
    trainable = fitting.build(run_cfg, data, plan, cached)
    if lever.get("steps_per_execution"):
        fitting.compile_model(trainable.model, run_cfg.train, steps=lever["steps_per_execution"])
    extra = {k: v for k, v in lever.items() if k == "validation_batch_size"}
    with mlflow.start_run():
        started = time.perf_counter()
        fitting.fit(run_cfg, data, plan, trainable, cached, **extra)
        seconds = time.perf_counter() - started
    return seconds, trainable.model.get_weights()


def profile(cfg, data, cached) -> dict[str, float]:
    """Seconds per epoch of each part, one epoch each after a warm-up."""
    import keras
    import mlflow

    from catdog.data import batches
    from catdog.training import fitting, seeding
    from catdog.training.features import view_dataset
    from catdog.training.plan import fit_plan

    plan = fit_plan(cfg)
    seeding.seed_run(0)
    model = fitting.build(cfg, data, plan, cached).model
    size = cfg.data.batch_size
    train = view_dataset(cached.train, data.train.labels, size, seed=0)
    val = batches(cached.val, data.val.labels, size)
    out = {}

    def timed(name, work, repeat: int = 3):
        work()  # warm-up: tracing
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        out[name] = statistics.median(times)

    timed("input (training batches alone)", lambda: [None for _ in train])
    timed("train steps (fit, no validation or callbacks)", lambda: model.fit(train, epochs=1, verbose=0))
    timed("validation (one evaluate pass)", lambda: model.evaluate(val, verbose=0))
    with mlflow.start_run():
        callback = fitting.EpochMetricsCallback()
        callback.set_model(model)
        callback.on_train_begin()
        logs = {"loss": 0.1, "accuracy": 0.9, "val_loss": 0.1, "val_accuracy": 0.9}
        epoch = iter(range(10**6))
        timed("MLflow logging (one epoch's metrics)", lambda: callback.on_epoch_end(next(epoch), logs))
    timed(
        "whole epoch as a trial fits it",
        lambda: model.fit(train, validation_data=val, epochs=1, verbose=0, callbacks=[keras.callbacks.History()]),
    )
    out["steps per epoch"] = fitting.epoch_steps(cfg, data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per lever measurement (a trial's)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per lever")
    args = parser.parse_args()
    import mlflow
    import numpy as np

    root = tempfile.mkdtemp(prefix="catdog-head-bench-")
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    mlflow.set_experiment("head-bench")
    cfg, data, cached = setup(root)
    parts = profile(cfg, data, cached)
    steps = parts.pop("steps per epoch")
    print(f"\n| part | seconds per epoch | ms per step ({steps} steps) |\n|---|---|---|")
    for name, seconds in parts.items():
        print(f"| {name} | {seconds:.3f} | {1000 * seconds / steps:.1f} |")

    baseline = "one step per call (the fit before 2026-12-06)"
    levers = {
        baseline: {"steps_per_execution": 1},
        "8 steps per call": {"steps_per_execution": 8},
        f"the project's fit: an epoch ({steps} steps) per call": {},
        "an epoch per call, validation in batches of 256": {"validation_batch_size": 256},
    }
    times = {name: [] for name in levers}
    weights = {}
    for _ in range(args.rounds):
        for name, lever in levers.items():
            seconds, w = fit_once(cfg, data, cached, args.epochs, lever)
            times[name].append(seconds)
            weights.setdefault(name, w)
    base = statistics.median(times[baseline])
    head = f"lever ({args.epochs} epochs, median of {args.rounds})"
    print(f"\n| {head} | seconds | speed-up | weights after the same steps |\n|---|---|---|---|")
    for name in levers:
        same = all(np.array_equal(a, b) for a, b in zip(weights[name], weights[baseline]))
        median = statistics.median(times[name])
        rounds = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"| {name} | {median:.2f} ({rounds}) | {base / median:.2f}x | {'identical' if same else 'DIFFER'} |")


if __name__ == "__main__":
    main()
