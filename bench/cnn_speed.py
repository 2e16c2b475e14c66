"""One plain-CNN epoch on this machine: where its time goes, and levers that could make it
faster with the same numerics, all measured in one run (the machines are noisy: compare
within a run, never across runs).

Profile, the reference `preprocessed` variant (batch 32, 160 px, float32, real images):
input (iterating the batches alone), augmentation (the flip and rotation layers alone),
forward (the whole model, training mode), train step (forward, backward, update), validation
(predicting the 800 validation images) and logging (one MLflow log_metrics call per epoch).

Levers, each on the same seeded model and batches, rounds interleaved: the project's fit as
it is; validation in batches of 128; several train steps per call (`steps_per_execution`).
(Thread settings were measured before: one process with 2 threads is fastest here.) A
lever is measured on training steps plus a validation pass, and its numerics are checked:
the weights after the same steps must match the baseline's.

It prints training images/s and the fraction of the CPU's float32 peak that the model's
FLOPs reach: FLOPs counted from the layers (a training step about 3x the forward pass),
the peak from the cores, clock and vector width (FMA units x lanes x 2).
Usage: python bench/cnn_speed.py [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def cpu_peak_gflops() -> tuple[float, str]:
    """Float32 peak of this CPU: cores x GHz x FLOPs per cycle (2 FMA units x lanes x 2)."""
    info = Path("/proc/cpuinfo").read_text()
    flags = next(line for line in info.splitlines() if line.startswith("flags")).split()
    mhz = statistics.fmean(float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz"))
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    cores = os.cpu_count() or 1
    peak = cores * mhz / 1000 * 2 * lanes * 2
    return peak, f"{cores} cores x {mhz / 1000:.2f} GHz x 2 FMA x {lanes} lanes x 2 = {peak:.0f} GFLOP/s"


def forward_flops(model) -> float:
    """FLOPs of one image's forward pass: convolutions and dense layers (2 per multiply-add)."""
    import keras

    total = 0.0
    for layer in _leaves(model):
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            k_h, k_w = layer.kernel_size
            total += 2 * h * w * c_out * k_h * k_w * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return total


def _leaves(model):
    for layer in model.layers:
        yield from _leaves(layer) if hasattr(layer, "layers") else [layer]


def setup(seed: int = 0):
    from catdog.config import load
    from catdog.data import load_study_data
    from catdog.models.variants import build_model
    from catdog.training import seeding
    from catdog.training.fitting import compile_model

    cfg = load("train", ["model=preprocessed", f"seed={seed}", "train.verbose=0"])
    data = load_study_data(cfg.data)

    def model(steps_per_execution: int = 1):
        seeding.seed_run(seed)
        built = compile_model(build_model(cfg.model, data.image_size, len(data.class_names)), cfg.train)
        built.compile(
            optimizer=built.optimizer, loss=built.loss, metrics=["accuracy"], steps_per_execution=steps_per_execution
        )
        return built

    return cfg, data, model


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def profile(cfg, data, make_model, steps: int) -> dict[str, float]:
    """Seconds per training image for each part, over STEPS batches."""
    import mlflow

    from catdog.data import to_dataset
    from catdog.models.variants import augmentation_layers

    batches = list(to_dataset(data.train, cfg.data.batch_size, shuffle_seed=0).take(steps))
    images = steps * cfg.data.batch_size
    import tensorflow as tf

    model = make_model()
    augment = augmentation_layers(cfg.model, seed=0)
    # Compiled as fit compiles them (a graph, not op by op), each traced once outside the timings.
    forward = tf.function(lambda x: model(x, training=True))
    augmented = tf.function(lambda x: _apply(augment, x))
    model.train_on_batch(*batches[0])
    forward(batches[0][0])
    augmented(batches[0][0])
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/bench.db")
        with mlflow.start_run():
            logging = timed(lambda: [mlflow.log_metrics({"accuracy": 0.5, "val_accuracy": 0.5}, step=1)])
    train = to_dataset(data.train, cfg.data.batch_size, shuffle_seed=0)
    parts = {
        "input": timed(lambda: list(train.take(steps))),
        "augmentation": timed(lambda: [augmented(x) for x, _ in batches]),
        "forward": timed(lambda: [forward(x) for x, _ in batches]),
        "train step": timed(lambda: [model.train_on_batch(x, y) for x, y in batches]),
    }
    per_image = {k: v / images for k, v in parts.items()}
    val = to_dataset(data.val, cfg.data.batch_size)
    per_image["validation (per training image of an epoch)"] = timed(lambda: model.predict(val, verbose=0)) / len(
        data.train
    )
    per_image["logging (per training image of an epoch)"] = logging / len(data.train)
    return per_image


def _apply(layers, x):
    for layer in layers:
        x = layer(x, training=True)
    return x


LEVERS = {
    "baseline (the project's fit)": {},
    "validation in batches of 128": {"val_batch": 128},
    "8 steps per execution": {"steps_per_execution": 8},
}


def run_lever(cfg, data, make_model, steps: int, lever: dict) -> tuple[float, object]:
    """Seconds for STEPS training steps and one validation pass; the weights after them."""
    from catdog.data import to_dataset

    model = make_model(lever.get("steps_per_execution", 1))
    train = to_dataset(data.train, cfg.data.batch_size, shuffle_seed=cfg.seed).take(steps)
    val = to_dataset(data.val, lever.get("val_batch", cfg.data.batch_size))
    seconds = timed(lambda: model.fit(train, validation_data=val, epochs=1, verbose=0, shuffle=False))
    return seconds, model.get_weights()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per lever")
    args = parser.parse_args()
    import numpy as np

    cfg, data, make_model = setup()
    flops = forward_flops(make_model())
    peak, peak_text = cpu_peak_gflops()
    print(f"CPU float32 peak: {peak_text}")
    print(f"Model FLOPs per image: forward {flops / 1e9:.3f} GFLOP, training step about {3 * flops / 1e9:.3f} GFLOP")
    parts = profile(cfg, data, make_model, args.steps)
    # An epoch: its input, train steps (forward and augmentation are inside them), validation, logging.
    epoch = sum(v for k, v in parts.items() if k not in ("forward", "augmentation"))
    print("\n| part | ms per training image | share of an epoch |\n|---|---|---|")
    for name, seconds in parts.items():
        print(f"| {name} | {1000 * seconds:.2f} | {seconds / epoch:.0%} |")
    train_rate = 1 / parts["train step"]
    print(
        f"\nTraining: {train_rate:.1f} images/s, {3 * flops * train_rate / 1e9:.1f} GFLOP/s = "
        f"{3 * flops * train_rate / 1e9 / peak:.0%} of float32 peak"
    )
    times = {name: [] for name in LEVERS}
    weights = {}
    for _ in range(args.rounds):  # interleaved: a slow moment of the machine hits every lever alike
        for name, lever in LEVERS.items():
            seconds, weights[name] = run_lever(cfg, data, make_model, args.steps, lever)
            times[name].append(seconds)
    base = statistics.median(times["baseline (the project's fit)"])
    images = args.steps * cfg.data.batch_size
    print(
        "\n| lever | median s (steps + validation) | images/s (steps + validation) | speed-up | max weight difference |"
    )
    print("|---|---|---|---|---|")
    for name in LEVERS:
        median = statistics.median(times[name])
        diff = max(float(np.abs(a - b).max()) for a, b in zip(weights[name], weights["baseline (the project's fit)"]))
        print(f"| {name} | {median:.2f} | {images / median:.1f} | {base / median:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
