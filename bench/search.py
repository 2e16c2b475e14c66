"""Racing against plain search, at the same wall-clock budget, in one run on one machine.

For each search seed: a plain Keras Tuner random search (one seed per trial) and a racing
search (`search.racing=true`) over the mission's space (dropout, rotation factor, dense
size) on `transfer` with the feature cache, each stopped by the same `search.budget_minutes`;
the arms alternate which goes first. Each arm's pick is then trained with fresh seeds (the
trials' own epochs, seeds no search used) and scored on validation: its optimism is its
score in the search minus that fresh mean (the winner's curse). The cache of every
rotation setting is built before the clock starts. Test is never looked at.
Usage: python bench/search.py [--search-seeds 5] [--budget-minutes 3] [--fresh-seeds 5]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import tempfile
import time


def compose(root: str, args, *extra: str):
    from catdog.config import load

    weights = os.environ.get("CATDOG_BACKBONE_WEIGHTS", "imagenet")
    return load(
        "tune",
        [
            "model=transfer",
            f"model.backbone.weights={weights}",
            f"paths.mlruns_dir={root}",
            f"tracking.uri=sqlite:///{root}/mlflow.db",
            "train.verbose=0",
            "tuner=random",
            "tuner.max_trials=500",
            f"tuner.epochs={args.epochs}",
            "search.learning_rate=null",  # the mission's space: dropout, rotation factor, dense size
            "search.pooling=null",
            "search.retrain_seeds=0",
            "search.reference=false",
            f"search.max_seeds={args.max_seeds}",
            *extra,
        ],
    )


def warm_cache(cfg) -> None:
    """Every rotation setting's cached views, so that neither arm pays for building them."""
    from omegaconf import OmegaConf

    from catdog.data import load_study_data
    from catdog.training import features
    from catdog.training.plan import fit_plan

    data = load_study_data(cfg.data)
    space = cfg.search.rotation_factor
    steps = round((space.max - space.min) / space.step) + 1
    for i in range(steps):
        run_cfg = OmegaConf.merge(cfg, {"model": {"rotation_factor": space.min + i * space.step}})
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


def arm(root: str, args, search_seed: int, racing: bool) -> dict:
    import mlflow

    from catdog.tuning import tune

    name = "racing" if racing else "plain"
    cfg = compose(
        root, args, f"seed={search_seed}", f"tuner.seed={search_seed}", f"search.racing={str(racing).lower()}",
        f"search.budget_minutes={args.budget_minutes}", f"tracking.experiment=bench-{name}",
    )  # fmt: skip
    started = time.perf_counter()
    summary = tune(cfg)
    seconds = time.perf_counter() - started
    settings = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{summary['parent_run_id']}' and tags.kind = 'trial'",
        output_format="list",
    )
    fits = sum(int(r.data.tags.get("race_seeds", 1)) for r in settings)
    fresh = fresh_scores(cfg, summary["best"], [100_000 + i for i in range(args.fresh_seeds)])
    score = float(summary["best_score"])
    return {
        "arm": name,
        "search_seed": search_seed,
        "settings": summary["trials"],
        "fits": fits,
        "stop": summary["stop_reason"],
        "minutes": seconds / 60,
        "pick": summary["best"],
        "score": score,
        "fresh": statistics.fmean(fresh),
        "fresh_sd": statistics.stdev(fresh) if len(fresh) > 1 else 0.0,
        "optimism": score - statistics.fmean(fresh),
    }


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over search seeds (each value is already one search's)."""
    from catdog.stats import seed_t_interval

    interval = seed_t_interval(values)
    return statistics.fmean(values), *((interval.low, interval.high) if interval else (math.nan, math.nan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search-seeds", type=int, default=5)
    parser.add_argument("--budget-minutes", type=float, default=3.0)
    parser.add_argument("--fresh-seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10, help="epochs a trial (and a fresh fit) trains")
    parser.add_argument("--max-seeds", type=int, default=3)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="catdog-search-bench-")
    try:
        started = time.perf_counter()
        warm_cache(compose(root, args))
        print(f"cached every rotation setting's features in {time.perf_counter() - started:.0f} s (not counted)")
        rows = []
        for s in range(args.search_seeds):
            for racing in (False, True) if s % 2 == 0 else (True, False):
                rows.append(arm(root, args, s, racing))
                r = rows[-1]
                print(
                    f"seed {s} {r['arm']}: {r['settings']} settings, {r['fits']} fits, stopped by {r['stop']} after "
                    f"{r['minutes']:.1f} min; pick {r['pick']}: search {100 * r['score']:.2f}%, fresh "
                    f"{100 * r['fresh']:.2f}% (sd {100 * r['fresh_sd']:.2f}), optimism {100 * r['optimism']:+.2f} pts",
                    flush=True,
                )
        report(rows, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report(rows: list[dict], args) -> None:
    print(f"\n| search seed | arm | settings | fits | stopped by | minutes | search score | fresh mean "
          f"({args.fresh_seeds} seeds) | optimism |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['search_seed']} | {r['arm']} | {r['settings']} | {r['fits']} | {r['stop']} | {r['minutes']:.1f} | "
            f"{100 * r['score']:.2f}% | {100 * r['fresh']:.2f}% | {100 * r['optimism']:+.2f} pts |"
        )
    by_arm = {a: [r for r in rows if r["arm"] == a] for a in ("plain", "racing")}
    print("\n| arm | mean optimism, 95% interval over search seeds | mean fresh score | settings | fits |")
    print("|---|---|---|---|---|")
    for name, rs in by_arm.items():
        m, low, high = t_interval([r["optimism"] for r in rs])
        fresh = statistics.fmean(r["fresh"] for r in rs)
        settings = statistics.fmean(r["settings"] for r in rs)
        fits = statistics.fmean(r["fits"] for r in rs)
        print(f"| {name} | {100 * m:+.2f} pts [{100 * low:+.2f}, {100 * high:+.2f}] | {100 * fresh:.2f}% | "
              f"{settings:.1f} | {fits:.1f} |")  # fmt: skip
    seeds = sorted({r["search_seed"] for r in rows})
    pair = {(r["search_seed"], r["arm"]): r for r in rows}
    gain = [pair[s, "racing"]["fresh"] - pair[s, "plain"]["fresh"] for s in seeds]
    m, low, high = t_interval(gain)
    plain_opt = statistics.fmean(r["optimism"] for r in by_arm["plain"])
    racing_opt = statistics.fmean(r["optimism"] for r in by_arm["racing"])
    ratio = racing_opt / plain_opt if plain_opt else math.nan
    interval = f"[{100 * low:+.2f}, {100 * high:+.2f}]"
    print(f"\nracing minus plain, fresh validation of the picks: {100 * m:+.2f} pts {interval} "
          f"(paired over {len(seeds)} search seeds)")  # fmt: skip
    print(f"racing's mean optimism is {ratio:.2f} of plain search's (target: at most 0.5)")


if __name__ == "__main__":
    main()
