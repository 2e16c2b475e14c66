"""Naive reference pipeline vs ours, measured in one run on the full data.

naive: image_dataset_from_directory + prefetch(AUTOTUNE), decoding every image every epoch,
       the whole model run on every batch (what the reference study does).
ours:  images decoded once into memory, fixed prefetch; for the frozen-backbone variant,
       backbone features computed once and only the head trained. "cold": the feature
       cache starts empty (its build is timed in); "warm": a second run reusing it, as every
       later run and search trial does.

Each pipeline runs in its own process so that its peak RSS is its own.
Usage: python bench/pipeline.py [--transfer-epochs 20] [--cnn-epochs 3]
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


def _cfg(variant: str, epochs: int, cache_dir: str, seed: int = 0):
    from catdog.config import load

    return load("train", [f"model={variant}", f"train.epochs={epochs}", "train.verbose=0",
                          f"features.cache_dir={cache_dir}", f"seed={seed}"])


class EpochTimer:
    def __init__(self):
        import keras

        class _Timer(keras.callbacks.Callback):
            def on_epoch_begin(inner, epoch, logs=None):
                inner.start = time.perf_counter()

            def on_epoch_end(inner, epoch, logs=None):
                self.seconds.append(time.perf_counter() - inner.start)

        self.seconds: list[float] = []
        self.callback = _Timer()


def run_naive(variant: str, epochs: int, cache_dir: str) -> dict:
    import keras
    import tensorflow as tf

    from catdog.data import resolve_root
    from catdog.training import compile_model
    from catdog.models import build_model

    cfg = _cfg(variant, epochs, cache_dir)
    keras.utils.set_random_seed(0)
    root = resolve_root(cfg.data)
    load = lambda split: keras.utils.image_dataset_from_directory(  # noqa: E731
        root / split, image_size=(160, 160), batch_size=32, shuffle=True, seed=0, verbose=False)
    train, val = load("train"), load("validation")
    n_val = sum(1 for _ in val.unbatch())
    test_batches = val.cardinality() // 5  # the reference carves test out of validation batches
    val = val.skip(test_batches)
    train, val = train.prefetch(tf.data.AUTOTUNE), val.prefetch(tf.data.AUTOTUNE)
    model = compile_model(build_model(cfg.model, (160, 160)), cfg.train)
    timer = EpochTimer()
    start = time.perf_counter()
    history = model.fit(train, validation_data=val, epochs=epochs, verbose=0, callbacks=[timer.callback])
    total = time.perf_counter() - start
    return {"total_s": total, "epoch_s": timer.seconds, "val_history": history.history["val_accuracy"],
            "images": 2000 + n_val - int(test_batches) * 32}


def run_ours(variant: str, epochs: int, cache_dir: str, seed: int = 0) -> dict:
    import keras

    from catdog import features, training
    from catdog.data import load_study_data

    cfg = _cfg(variant, epochs, cache_dir, seed)
    start = time.perf_counter()
    data = load_study_data(cfg.data)
    decode_s = time.perf_counter() - start
    cache = features.FeatureCache(data, cfg.model, cfg.features) if features.usable(cfg) else None
    feature_s = 0.0
    if cache is not None:
        t = time.perf_counter()
        cache.prepare(cfg.model)
        feature_s = time.perf_counter() - t
    keras.utils.set_random_seed(seed)  # as training.train does: seed after the features
    model = training.trainable_model(cfg, data, cfg.model, cache)
    timer = EpochTimer()
    history = training.fit_variant(cfg, data, model, cfg.model, cache, callbacks=[timer.callback])
    total = time.perf_counter() - start
    return {"total_s": total, "epoch_s": timer.seconds, "decode_s": decode_s, "feature_s": feature_s,
            "val_history": history.history["val_accuracy"], "images": len(data.train) + len(data.val)}


def child(pipeline: str, variant: str, epochs: int, cache_dir: str, seed: int) -> None:
    if pipeline == "naive":
        result = run_naive(variant, epochs, cache_dir)
    else:
        result = run_ours(variant, epochs, cache_dir, seed)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print("RESULT " + json.dumps(result), flush=True)


def measure(pipeline: str, variant: str, epochs: int, cache_dir: str, seed: int = 0) -> dict:
    print(f"running {pipeline} {variant}, {epochs} epochs, seed {seed} ...", flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, __file__, "--child", pipeline, variant, str(epochs), cache_dir, str(seed)],
                         capture_output=True, text=True, env=env, check=False)
    lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
        sys.exit(f"{pipeline} {variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfer-epochs", type=int, default=20)
    parser.add_argument("--cnn-epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the warm-cache transfer runs")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.child[3], int(args.child[4]))
        return
    rows = []
    for variant, epochs in (("transfer", args.transfer_epochs), ("cnn", args.cnn_epochs)):
        cache_dir = tempfile.mkdtemp(prefix="catdog-bench-features-")
        runs = {"naive": measure("naive", variant, epochs, cache_dir)}
        runs["ours, cold cache"] = measure("ours", variant, epochs, cache_dir)
        if variant == "transfer":
            runs["ours, warm cache"] = measure("ours", variant, epochs, cache_dir)
            seeds = [runs["ours, warm cache"]] + [measure("ours", variant, epochs, cache_dir, s) for s in range(1, args.seeds)]
        rows.append((variant, epochs, runs))
    median = lambda r: sorted(r["epoch_s"])[len(r["epoch_s"]) // 2]  # noqa: E731
    print(f"\n## Benchmark {date.today()} ({os.cpu_count()} cores), full data, batch 32, 160x160\n")
    print("| variant | epochs | pipeline | total s | median epoch s | img/s per epoch (train+val) | val acc: last epoch / mean of last 5 | peak RSS GB | speed-up vs naive (total / epoch) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for variant, epochs, runs in rows:
        naive = runs["naive"]
        for name, r in runs.items():
            detail = f" (decode {r['decode_s']:.0f} s, features {r['feature_s']:.0f} s)" if "decode_s" in r else ""
            ratio = "" if r is naive else f"{naive['total_s'] / r['total_s']:.1f}x / {median(naive) / median(r):.1f}x"
            print(f"| {variant} | {epochs} | {name}{detail} | {r['total_s']:.0f} | {median(r):.2f} | "
                  f"{r['images'] / median(r):.0f} | {r['val_history'][-1]:.3f} / {statistics.fmean(r['val_history'][-5:]):.3f} | "
                  f"{r['peak_rss_gb']:.2f} | {ratio} |")
    print("\nSeed 0 for every row; validation = 800 images (naive: the reference's split of validation batches).")
    if args.seeds > 1:
        late = [statistics.fmean(r["val_history"][-5:]) for r in seeds]
        naive_late = statistics.fmean(rows[0][2]["naive"]["val_history"][-5:])
        print(f"transfer, ours over seeds 0-{args.seeds - 1} (warm cache): val acc mean of last 5 epochs "
              f"{statistics.fmean(late):.3f} ± {statistics.stdev(late):.3f} (sd), seconds per run "
              f"{statistics.fmean(r['total_s'] for r in seeds):.0f}; naive, seed 0: {naive_late:.3f}")


if __name__ == "__main__":
    main()
