"""Real searches against the replay's spread (`make bench-search`): does the replay tell the
truth about real searches?

For each search seed and each policy (`search.policy`: plain, intensify; racing with
`--policies racing`), a real Keras Tuner random search over `transfer`'s default space (or
the mission's, `--mission-space`: dropout, rotation factor, dense size) with the feature
cache, stopped after `--fits` fits (`tuner.max_trials`; racing, whose trials are settings,
by `--budget-minutes`). Its pick is trained again with fresh seeds (the trials' epochs,
seeds no search used) and scored on the validation images: its optimism is its score in the
search minus that fresh mean. Each search's optimism is then placed in the replay's spread
for its policy and fits, replayed as these searches ran (choosing and scored on all 800
validation images, bench/replay.py `--no-split`), and so is the mean over searches. The
cache of every rotation and pooling setting is built before the clock starts. Test is never
looked at.
Usage: python bench/search.py [--policies plain,intensify] [--search-seeds 5] [--fits 12] [--fresh-seeds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def compose(root: str, args, *extra: str):
    from catdog.config import load

    weights = os.environ.get("CATDOG_BACKBONE_WEIGHTS", "imagenet")
    mission = ["search.learning_rate=null", "search.pooling=null"] if args.mission_space else []
    return load(
        "tune",
        [
            "model=transfer",
            f"model.backbone.weights={weights}",
            f"paths.mlruns_dir={root}",
            f"tracking.uri=sqlite:///{root}/mlflow.db",
            "train.verbose=0",
            "tuner=random",
            f"tuner.epochs={args.epochs}",
            "search.retrain_seeds=0",
            "search.reference=false",
            f"search.max_seeds={args.max_seeds}",
            *mission,
            *extra,
        ],
    )


def warm_cache(cfg) -> None:
    """Every rotation and pooling setting's cached features, so that no search pays for them."""
    from omegaconf import OmegaConf

    from catdog.data import load_study_data
    from catdog.training import features
    from catdog.training.plan import fit_plan

    data = load_study_data(cfg.data)
    space = cfg.search.rotation_factor
    poolings = list(cfg.search.pooling) if cfg.search.pooling is not None else [cfg.model.pooling]
    steps = round((space.max - space.min) / space.step) + 1
    for pooling in poolings:
        for i in range(steps):
            run_cfg = OmegaConf.merge(
                cfg, {"model": {"rotation_factor": space.min + i * space.step, "pooling": pooling}}
            )
            features.cache_for(None, data, run_cfg, fit_plan(run_cfg)).features(run_cfg)


def fresh_scores(cfg, values: dict, seeds: list[int]) -> list[float]:
    """VALUES trained as a trial trains them, once per seed: the kept weights' validation
    accuracy, image by image."""
    from omegaconf import OmegaConf

    from catdog.data import load_study_data
    from catdog.training import features, fitting, seeding
    from catdog.training.plan import fit_plan
    from catdog.tuning.space import with_values

    run_cfg = OmegaConf.merge(with_values(cfg, values), {"train": {"epochs": cfg.tuner.epochs}})
    data = load_study_data(run_cfg.data)
    plan = fit_plan(run_cfg)
    cached = features.cache_for(None, data, run_cfg, plan).features(run_cfg)
    out = []
    for seed in seeds:
        seeding.seed_run(seed)
        seeded = OmegaConf.merge(run_cfg, {"seed": seed})
        trainable = fitting.build(seeded, data, plan, cached)
        fitting.fit(seeded, data, plan, trainable, cached)
        out.append(fitting.validate(seeded, data, trainable, cached)["accuracy"])
    return out


def arm(root: str, args, search_seed: int, policy: str) -> dict:
    from catdog.tuning import tune

    stop = [f"search.budget_minutes={args.budget_minutes}", "tuner.max_trials=500"] if policy == "racing" else [
        f"tuner.max_trials={args.fits}"
    ]  # fmt: skip
    cfg = compose(root, args, f"seed={search_seed}", f"tuner.seed={search_seed}", f"search.policy={policy}", *stop,
                  f"tracking.experiment=bench-{policy}")  # fmt: skip
    started = time.perf_counter()
    result = tune(cfg)
    seconds = time.perf_counter() - started
    fresh = fresh_scores(cfg, result.best, [100_000 + i for i in range(args.fresh_seeds)])
    expected = result.pick.expected
    return {
        "policy": policy,
        "search_seed": search_seed,
        "settings": result.settings,
        "fits": result.fits,
        "minutes": seconds / 60,
        "pick": result.best,
        "score": result.best_score,
        "expected": expected.mean if expected else float("nan"),
        "fresh": statistics.fmean(fresh),
        "optimism": result.best_score - statistics.fmean(fresh),
    }


def replayed(policy: str, fits: int, replays: int) -> np.ndarray:
    """Per replayed search of POLICY at FITS fits, choosing and scored on all validation
    images as these searches do: its optimism."""
    path = Path(__file__).with_name("replay.py")
    spec = importlib.util.spec_from_file_location("replay", path)
    replay = sys.modules["replay"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay)
    table = replay.Table.load(str(Path(__file__).with_name("fits.npz")))
    name = {"plain": "plain", "racing": "racing (3 seeds)", "intensify": "intensify (cap 3)"}[policy]
    return replay.replay_all(table, replays, [fits], split=False, only=[name])[fits][name][:, 0]


def report(rows: list[dict], args) -> None:
    print("\n| search seed | policy | settings | fits | minutes | pick's search score | expected on fresh seeds | "
          f"fresh mean ({args.fresh_seeds} seeds) | optimism | place in the replay's spread |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    spread = {}
    for r in rows:
        fits = round(statistics.fmean(x["fits"] for x in rows if x["policy"] == r["policy"]))
        if r["policy"] not in spread:
            spread[r["policy"]] = replayed(r["policy"], fits, args.replays)
        place = (spread[r["policy"]] < r["optimism"]).mean()
        print(
            f"| {r['search_seed']} | {r['policy']} | {r['settings']} | {r['fits']} | {r['minutes']:.1f} | "
            f"{100 * r['score']:.2f}% | {100 * r['expected']:.2f}% | {100 * r['fresh']:.2f}% | "
            f"{100 * r['optimism']:+.2f} pts | {100 * place:.0f}th percentile |"
        )
    print("\n| policy | searches | mean optimism | replay: mean optimism, 95% of single searches | "
          "replay: 95% range of a mean over this many searches |")  # fmt: skip
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for policy, sims in spread.items():
        own = [r["optimism"] for r in rows if r["policy"] == policy]
        means = rng.choice(sims, (4000, len(own))).mean(axis=1)
        lo, hi = np.percentile(sims, [2.5, 97.5])
        mlo, mhi = np.percentile(means, [2.5, 97.5])
        print(f"| {policy} | {len(own)} | {100 * statistics.fmean(own):+.2f} pts | {100 * sims.mean():+.2f} pts "
              f"[{100 * lo:+.2f}, {100 * hi:+.2f}] | [{100 * mlo:+.2f}, {100 * mhi:+.2f}] |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", default="plain,intensify")
    parser.add_argument("--search-seeds", type=int, default=5)
    parser.add_argument("--fits", type=int, default=12, help="fits a search spends (plain, intensify)")
    parser.add_argument("--budget-minutes", type=float, default=3.0, help="racing's budget")
    parser.add_argument("--fresh-seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10, help="epochs a trial (and a fresh fit) trains")
    parser.add_argument("--max-seeds", type=int, default=3)
    parser.add_argument("--replays", type=int, default=2000)
    parser.add_argument("--mission-space", action="store_true", help="dropout, rotation, dense size only")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="catdog-search-bench-")
    policies = args.policies.split(",")
    try:
        started = time.perf_counter()
        warm_cache(compose(root, args))
        print(f"cached every rotation and pooling setting's features in {time.perf_counter() - started:.0f} s "
              "(not counted)", flush=True)  # fmt: skip
        rows = []
        for s in range(args.search_seeds):
            for policy in policies if s % 2 == 0 else reversed(policies):
                rows.append(arm(root, args, s, policy))
                r = rows[-1]
                print(f"seed {s} {policy}: {r['settings']} settings, {r['fits']} fits, {r['minutes']:.1f} min; pick "
                      f"{r['pick']}: search {100 * r['score']:.2f}%, fresh {100 * r['fresh']:.2f}%, optimism "
                      f"{100 * r['optimism']:+.2f} pts", flush=True)  # fmt: skip
        report(rows, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
