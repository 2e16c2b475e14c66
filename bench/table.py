"""The table of fits the search replay draws from (`make bench-table`, made once, committed).

Every setting of a Latin hypercube over `transfer`'s default search space (dropout, dense
units, rotation factor, learning rate, pooling: `schema.SEARCHED`'s rows that apply) is
fitted with every one of the table's seeds, exactly as a search trial fits it: the feature
cache, `tuner.epochs` epochs, the kept weights scored on the 800 validation images, image by
image. Test is never looked at. Each fit's 0/1 results, per-image log loss and wall time go
into one compressed file (`bench/fits.npz`), with how it was made; the file is written after
every setting, and a second launch goes on from the settings it already has.
Usage: python bench/table.py [--settings 48] [--seeds 8] [--out bench/fits.npz]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

TABLE_SEED = 20261207  # draws the settings and derives the fits' seeds


def compose(root: str, epochs: int | None):
    from catdog.config import load

    weights = os.environ.get("CATDOG_BACKBONE_WEIGHTS", "imagenet")
    overrides = ["model=transfer", f"model.backbone.weights={weights}", f"paths.mlruns_dir={root}", "train.verbose=0"]
    cfg = load("tune", overrides)
    from omegaconf import OmegaConf

    return OmegaConf.merge(cfg, {"train": {"epochs": epochs or cfg.tuner.epochs}})


def settings(cfg, n: int) -> list[dict]:
    """N settings of the search space, one Latin hypercube stratum per setting on every axis:
    continuous ranges at their stratum's point, stepped ones rounded to the step, log ranges
    on the log scale, choices by stratum."""
    from scipy.stats import qmc

    from catdog.schema import CHOICE, LOG, SEARCHED, hp_names

    rows = [h for h in SEARCHED if h.name in hp_names(cfg)]
    points = qmc.LatinHypercube(d=len(rows), seed=np.random.default_rng(TABLE_SEED)).random(n)
    out = []
    for point in points:
        values = {}
        for h, u in zip(rows, point):
            space = cfg.search[h.name]
            if h.kind == CHOICE:
                values[h.name] = list(space)[min(int(u * len(space)), len(space) - 1)]
            elif h.kind == LOG:
                values[h.name] = float(np.exp(np.log(space.min) + u * (np.log(space.max) - np.log(space.min))))
            else:
                value = space.min + u * (space.max - space.min)
                if space.get("step"):
                    value = space.min + round((value - space.min) / space.step) * space.step
                values[h.name] = round(float(value), 6)
        out.append(values)
    return out


def fit(cfg, data, cache_holder: dict, values: dict, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """VALUES fitted with SEED as a trial fits them: 0/1 results and log losses on the
    validation images (in the split's order), and the fit's seconds (build, fit, score)."""
    from omegaconf import OmegaConf

    from catdog.training import features, fitting, seeding
    from catdog.training.plan import fit_plan
    from catdog.tuning.space import with_values

    run_cfg = OmegaConf.merge(with_values(cfg, values), {"seed": seed})
    plan = fit_plan(run_cfg)
    cache = cache_holder[plan] = features.cache_for(cache_holder.get(plan), data, run_cfg, plan)
    cached = cache.features(run_cfg)
    import keras

    keras.backend.clear_session()  # as Keras Tuner does before each trial; without it memory grows fit by fit
    started = time.perf_counter()
    seeding.seed_run(seed)
    trainable = fitting.build(run_cfg, data, plan, cached)
    fitting.fit(run_cfg, data, plan, trainable, cached)
    scores = fitting.validate(run_cfg, data, trainable, cached)
    seconds = time.perf_counter() - started
    return (scores["predicted"] == data.val.labels).astype(np.uint8), scores["losses"].astype(np.float16), seconds


def made_how(cfg, args) -> dict:
    from catdog.tracking.environment import environment

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "command": "python bench/table.py " + " ".join(sys.argv[1:]),
        "commit": commit,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "variant": cfg.model.name,
        "epochs": int(cfg.train.epochs),
        "image_size": list(cfg.data.image_size),
        "table_seed": TABLE_SEED,
        "design": f"Latin hypercube of {args.settings} settings (scipy.stats.qmc), {args.seeds} seeds each",
        "split": "validation (800 images); test never scored",
        "machine": platform.machine(),
        **environment(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", type=int, default=48)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=None, help="default: the search's tuner.epochs")
    parser.add_argument("--out", default=str(Path(__file__).with_name("fits.npz")))
    parser.add_argument("--force", action="store_true", help="replace an OUT made with another design")
    args = parser.parse_args()

    from catdog.data import load_study_data
    from catdog.training import seeding

    root = os.environ.get("CATDOG_TABLE_CACHE") or tempfile.mkdtemp(prefix="catdog-table-")
    cfg = compose(root, args.epochs)
    data = load_study_data(cfg.data)
    grid = settings(cfg, args.settings)
    seeds = [seeding.derive(TABLE_SEED, k) for k in range(args.seeds)]
    shape = (len(grid), len(seeds), len(data.val))
    correct, losses = np.zeros(shape, np.uint8), np.zeros(shape, np.float16)
    seconds, done = np.zeros(shape[:2], np.float32), np.zeros(len(grid), bool)
    out = Path(args.out)
    if out.exists():  # go on from an earlier launch with the same design
        with np.load(out) as old:
            if json.loads(str(old["settings"])) == grid and list(old["seeds"]) == seeds:
                correct, losses, seconds, done = (old[k].copy() for k in ("correct", "losses", "seconds", "done"))
            elif not args.force:  # a committed table took hours: never replaced by accident
                raise SystemExit(f"{out} holds another design (settings or seeds): --force to replace it")
    # Settings that share features run together: each rotation and pooling is cached once.
    order = sorted(range(len(grid)), key=lambda i: (grid[i].get("pooling", ""), grid[i].get("rotation_factor", 0)))
    started, caches = time.perf_counter(), {}
    for i in (o for o in order if not done[o]):
        for k, seed in enumerate(seeds):
            correct[i, k], losses[i, k], seconds[i, k] = fit(cfg, data, caches, grid[i], seed)
        done[i] = True
        np.savez_compressed(
            out.with_suffix(".tmp.npz"),
            settings=json.dumps(grid),
            seeds=np.array(seeds, np.int64),
            images=np.array([str(x) for x in data.val.ids]),
            labels=data.val.labels.astype(np.uint8),
            correct=correct,
            losses=losses,
            seconds=seconds,
            done=done,
            made=json.dumps(made_how(cfg, args)),
        )
        os.replace(out.with_suffix(".tmp.npz"), out)
        left = int((~done).sum())
        minutes = (time.perf_counter() - started) / 60
        print(
            f"setting {i} {grid[i]}: {100 * correct[i].mean():.2f}% over {len(seeds)} seeds "
            f"(sd {100 * correct[i].mean(axis=1).std(ddof=1):.2f} pts), {seconds[i].mean():.1f} s a fit; "
            f"{left} settings left, {minutes:.1f} min so far",
            flush=True,
        )


if __name__ == "__main__":
    main()
