"""Naive reference pipeline vs ours, measured in one run on the full data.

naive: image_dataset_from_directory + prefetch(AUTOTUNE), decoding every image every epoch,
       the whole model run on every batch (what the reference study does).
ours:  images decoded once into memory, fixed prefetch; for the frozen-backbone variant,
       backbone features computed once and only the head trained. "cold": the feature
       cache starts empty (its build is timed in); "warm": a second run reusing it, as every
       later run and search trial does.
       For `finetuned`, both stages: naive fine-tunes the whole network on every batch (the
       tutorial's way), ours trains the top and head from the partial cache, built cold.
bf16:  ours with train.precision=mixed_bfloat16 beside ours in float32, same seeds.

Each pipeline runs in its own process so that its peak RSS is its own; temporary feature
caches are removed at the end. The last `make study` in the project's store is reported too.
Usage: python bench/pipeline.py [--transfer-epochs 20] [--cnn-epochs 3] [--seeds 3] [--finetune-epochs 10]
       [--only finetuned]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date


def _cfg(variant: str, epochs: int, cache_dir: str, seed: int = 0, precision: str = "float32"):
    from catdog.config import load

    return load(
        "train",
        [
            f"model={variant}",
            f"train.epochs={epochs}",
            "train.verbose=0",
            f"features.cache_dir={cache_dir}",
            f"seed={seed}",
            f"train.precision={precision}",
        ],
    )


def _epoch_timer(seconds: list[float]):
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    return EpochTimer()


def run_naive(variant: str, epochs: int, cache_dir: str, seed: int, precision: str) -> dict:
    import keras
    import tensorflow as tf

    from catdog.data import resolve_root
    from catdog.models import backbone_cut
    from catdog.models.variants import backbone_layer, build_model
    from catdog.training import seeding
    from catdog.training.fitting import compile_model, fine_tune_learning_rate

    cfg = _cfg(variant, epochs, cache_dir, seed)
    seeding.seed_run(seed)
    root = resolve_root(cfg.data)
    size, batch = tuple(cfg.data.image_size), cfg.data.batch_size

    def load(split):
        return keras.utils.image_dataset_from_directory(
            root / split, image_size=size, batch_size=batch, shuffle=True, seed=seed, verbose=False
        )

    train, val = load("train"), load("validation")
    test_batches = int(val.cardinality()) // 5  # the reference carves test out of validation batches
    n_images = len(train.file_paths) + len(val.file_paths) - test_batches * batch
    val = val.skip(test_batches)
    train, val = train.prefetch(tf.data.AUTOTUNE), val.prefetch(tf.data.AUTOTUNE)
    model = compile_model(build_model(cfg.model, size), cfg.train)
    seconds: list[float] = []
    start = time.perf_counter()
    fit = dict(validation_data=val, verbose=0, callbacks=[_epoch_timer(seconds)])
    val_history = model.fit(train, epochs=epochs, **fit).history["val_accuracy"]
    cut = cfg.model.backbone.fine_tune_at if cfg.model.backbone else None
    if cut is not None:  # the tutorial's second stage, on the whole network every batch
        backbone = backbone_layer(model)
        backbone_cut.unfreeze(backbone, backbone.layers[cut].name)
        compile_model(model, cfg.train, fine_tune_learning_rate(cfg.train))
        more = model.fit(train, initial_epoch=epochs, epochs=epochs + cfg.train.fine_tune.epochs, **fit)
        val_history += more.history["val_accuracy"]
    total = time.perf_counter() - start
    return {"total_s": total, "epoch_s": seconds, "val_history": val_history, "images": n_images}


def run_ours(variant: str, epochs: int, cache_dir: str, seed: int, precision: str) -> dict:
    from catdog import training
    from catdog.data import load_study_data
    from catdog.training import features, fitting, seeding
    from catdog.training.plan import fit_plan

    cfg = _cfg(variant, epochs, cache_dir, seed, precision)
    start = time.perf_counter()
    data = load_study_data(cfg.data)
    decode_s = time.perf_counter() - start
    plan = fit_plan(cfg)
    cache = features.cache_for(None, data, cfg, plan)
    t = time.perf_counter()
    cached = cache.features(cfg) if cache is not None else None
    feature_s = time.perf_counter() - t
    seconds: list[float] = []
    with training.precision(precision):
        seeding.seed_run(seed)  # as training.train does: seed after the features
        trainable = fitting.build(cfg, data, plan, cached)
        history = fitting.fit(cfg, data, plan, trainable, cached, callbacks=[_epoch_timer(seconds)])
    total = time.perf_counter() - start
    return {
        "total_s": total,
        "epoch_s": seconds,
        "decode_s": decode_s,
        "feature_s": feature_s,
        "val_history": history.history["val_accuracy"],
        "images": len(data.train) + len(data.val),
        "cached": cache is not None,
    }


def child(pipeline: str, variant: str, epochs: int, cache_dir: str, seed: int, precision: str) -> None:
    run = run_naive if pipeline == "naive" else run_ours
    result = run(variant, epochs, cache_dir, seed, precision)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print("RESULT " + json.dumps(result), flush=True)


def measure(pipeline: str, variant: str, epochs: int, cache_dir: str, seed: int = 0, precision: str = "float32"):
    print(f"running {pipeline} {variant} ({precision}), {epochs} epochs, seed {seed} ...", flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = [sys.executable, __file__, "--child", pipeline, variant, str(epochs), cache_dir, str(seed), precision]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    results = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not results:
        sys.exit(f"{pipeline} {variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(results[-1][len("RESULT ") :])


def last_study() -> str | None:
    """Wall time of the last `make study` recorded in the project's store."""
    import mlflow

    from catdog.config import load
    from catdog.tracking import record

    cfg = load("train", ["experiment=reference"])
    mlflow.set_tracking_uri(cfg.tracking.uri)
    experiment = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return None
    # `make study` tags each run with its sweep (the Makefile's STUDY_ID).
    trained = record.find([experiment.experiment_id], tags={record.KIND_TAG: record.TRAIN})
    runs = [r for r in trained if "sweep" in r.data.tags]
    if not runs:
        return None
    sweep = max(runs, key=lambda r: r.info.start_time).data.tags["sweep"]
    mine = [r for r in runs if r.data.tags["sweep"] == sweep]
    wall = (max(r.info.end_time or r.info.start_time for r in mine) - min(r.info.start_time for r in mine)) / 60000
    seeds = sorted({r.data.tags["seed"] for r in mine})
    states = {r.info.status for r in mine}
    return (
        f"`make study` {sweep}: {len(mine)} runs ({len(seeds)} seeds x {len(mine) // max(len(seeds), 1)} variants, "
        f"{', '.join(sorted(states))}), {wall:.1f} min from the first run's start to the last run's end"
    )


def _row(variant, epochs, name, r, reference) -> str:
    median = lambda rr: statistics.median(rr["epoch_s"])
    detail = ""
    if r.get("cached"):
        detail = f" (decode {r['decode_s']:.0f} s, features {r['feature_s']:.0f} s)"
    elif "decode_s" in r:
        detail = f" (decode {r['decode_s']:.0f} s)"
    ratio = (
        "" if r is reference else f"{reference['total_s'] / r['total_s']:.1f}x / {median(reference) / median(r):.1f}x"
    )
    late = statistics.fmean(r["val_history"][-5:])
    return (
        f"| {variant} | {epochs} | {name}{detail} | {r['total_s']:.0f} | {median(r):.2f} | "
        f"{r['images'] / median(r):.0f} | {r['val_history'][-1]:.3f} / {late:.3f} | {r['peak_rss_gb']:.2f} | {ratio} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfer-epochs", type=int, default=20)
    parser.add_argument("--cnn-epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the warm-cache transfer and the bf16 runs")
    parser.add_argument("--finetune-epochs", type=int, default=10, help="first-stage epochs of finetuned")
    parser.add_argument("--only", choices=["finetuned"], help="run only these rows")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        pipeline, variant, epochs, cache_dir, seed, precision = args.child
        child(pipeline, variant, int(epochs), cache_dir, int(seed), precision)
        return
    tables, notes = [], []
    with tempfile.TemporaryDirectory(prefix="catdog-bench-features-") as cache_dir:
        tables.append(bench_finetuned(args.finetune_epochs, cache_dir, notes))
        if args.only:
            _print(tables, notes)
            return
        runs = {"naive": measure("naive", "transfer", args.transfer_epochs, cache_dir)}
        runs["ours, cold cache"] = measure("ours", "transfer", args.transfer_epochs, cache_dir)
        runs["ours, warm cache"] = measure("ours", "transfer", args.transfer_epochs, cache_dir)
        seeds = [runs["ours, warm cache"]]
        seeds += [measure("ours", "transfer", args.transfer_epochs, cache_dir, s) for s in range(1, args.seeds)]
        tables.append(("transfer", args.transfer_epochs, runs, runs["naive"]))
        late = [statistics.fmean(r["val_history"][-5:]) for r in seeds]
        if len(late) > 1:
            notes.append(
                f"transfer, ours over seeds 0-{args.seeds - 1} (warm cache): val acc mean of last 5 epochs "
                f"{statistics.fmean(late):.3f} ± {statistics.stdev(late):.3f} (sd), seconds per run "
                f"{statistics.fmean(r['total_s'] for r in seeds):.0f}; naive, seed 0: "
                f"{statistics.fmean(runs['naive']['val_history'][-5:]):.3f}"
            )
        cnn = {
            "naive": measure("naive", "cnn", args.cnn_epochs, cache_dir),
            "ours": measure("ours", "cnn", args.cnn_epochs, cache_dir),
        }
        tables.append(("cnn", args.cnn_epochs, cnn, cnn["naive"]))
        # Mixed bfloat16 beside float32, same seeds, on the variant that dominates `make study`.
        pairs = [
            (
                measure("ours", "preprocessed", args.cnn_epochs, cache_dir, s),
                measure("ours", "preprocessed", args.cnn_epochs, cache_dir, s, "mixed_bfloat16"),
            )
            for s in range(args.seeds)
        ]
        for s, (fp32, bf16) in enumerate(pairs):
            tables.append(
                (
                    "preprocessed",
                    args.cnn_epochs,
                    {f"ours float32, seed {s}": fp32, f"ours mixed_bfloat16, seed {s}": bf16},
                    fp32,
                )
            )
        speed = [p[0]["total_s"] / p[1]["total_s"] for p in pairs]
        val_gap = [p[1]["val_history"][-1] - p[0]["val_history"][-1] for p in pairs]
        notes.append(
            f"preprocessed, mixed_bfloat16 vs float32 over {len(pairs)} seeds: {statistics.fmean(speed):.2f}x "
            f"faster per run; last-epoch val acc difference (bf16 - fp32) {statistics.fmean(val_gap):+.3f} "
            f"(per seed {', '.join(f'{g:+.3f}' for g in val_gap)})"
        )
    _print(tables, notes)
    study = last_study()
    print(study or "No `make study` in the project's store yet: run it to time the main job.")


def bench_finetuned(epochs: int, cache_dir: str, notes: list[str]):
    """The tutorial's fine-tuning, whole network every batch, against ours from the partial
    cache, which starts cold (the bottom's activations are computed inside the timed run)."""
    runs = {"naive (plain fine-tuning)": measure("naive", "finetuned", epochs, cache_dir)}
    runs["ours, partial cache, cold"] = measure("ours", "finetuned", epochs, cache_dir)
    naive, ours = runs.values()
    notes.append(
        f"finetuned, {epochs} + 10 fine-tuning epochs: ours {naive['total_s'] / ours['total_s']:.1f}x faster "
        f"({ours['total_s'] / 60:.1f} min against {naive['total_s'] / 60:.1f} min), best val acc "
        f"{max(ours['val_history']):.3f} against {max(naive['val_history']):.3f}, last epoch "
        f"{ours['val_history'][-1]:.3f} against {naive['val_history'][-1]:.3f}"
    )
    return ("finetuned", f"{epochs}+10", runs, naive)


def _print(tables, notes) -> None:
    print(f"\n## Benchmark {date.today()} ({os.cpu_count()} cores), full data\n")
    print(
        "| variant | epochs | pipeline | total s | median epoch s | img/s per epoch (train+val) | "
        "val acc: last epoch / mean of last 5 | peak RSS GB | speed-up vs first row (total / epoch) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for variant, epochs, runs, reference in tables:
        for name, r in runs.items():
            print(_row(variant, epochs, name, r, reference))
    print("\nValidation = 800 images (naive: the reference's split of validation batches).")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
