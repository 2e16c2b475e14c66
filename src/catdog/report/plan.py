"""`catdog plan`: what a budget buys and what a difference needs, from a store's measured
runs of a variant (its cost per run, its seed variance and its test images' variance) and
from a search's own fits (cost per fit, seed variance, validation images), under each policy.
Planned power (a stated difference, t quantiles), never the power of an observed gap; a
variance that one run cannot measure is said to be unknown, not guessed."""

from __future__ import annotations

import math
import statistics

import mlflow
import numpy as np

from catdog import CatdogError, power, stats
from catdog.report.runs import load_study
from catdog.report.summary import per_image_scores, variant_rows
from catdog.schema.search import POLICIES, SearchConfig
from catdog.tracking.record import FINISHED, KIND_TAG, SEARCH, SearchFits, find, search_fits


def _design(seed_var: float, seeds: int, image_var: float, n: int) -> stats.Comparison:
    """A comparison of two settings not yet run: only the variances and sizes matter."""
    return stats.Comparison(
        "A", "B", 0.0, 0.0, math.inf, stats.Interval(0, 0), 1.0, 0.5, (seeds, seeds), n, False, seed_var, image_var
    )


def plan(experiment: str, variant: str | None, budget_minutes: float | None, differences) -> list[dict]:
    """For VARIANT (default: every variant of EXPERIMENT): its measured cost and variances,
    what BUDGET_MINUTES buys, and what each of DIFFERENCES (fractions) needs to be detected
    between two of its settings at 80% power; from its training runs, else from the
    experiment's searches (`plan_searches`)."""
    try:
        study = load_study(experiment)
    except CatdogError as exc:
        searches = plan_searches(experiment, variant, budget_minutes, differences)
        if not searches:
            raise CatdogError(f"{exc}, nor a finished search to plan from") from exc
        return searches
    scores = per_image_scores(study)
    rows = variant_rows(study, scores, priors={})
    if variant is not None:
        rows = [r for r in rows if r.variant == variant]
        if not rows:
            raise CatdogError(f"{experiment!r} has no finished runs of variant {variant!r}")
    supply = rows[0].n_val + rows[0].n_test
    return [_one(row, scores, budget_minutes, differences, supply) for row in rows]


def _one(row, scores: dict, budget_minutes, differences, supply: int) -> dict:
    p = row.test_accuracy_mean
    own = scores.get(row.variant)
    if own is not None and len(own.records) >= 2:
        # Two seeds of one setting disagree image by image about as two close settings
        # would: the mean over pairs of seeds of the per-image difference's variance.
        c = own.correct
        pairs = [(i, j) for i in range(len(c)) for j in range(i + 1, len(c))]
        image_var = float(np.mean([np.var(c[i] - c[j], ddof=1) for i, j in pairs]))
        image_note = "per-image variance of the difference between two of its seeds (a stand-in for two close settings)"
    else:
        image_var, image_note = 2 * p * (1 - p), "2p(1-p), the bound for two settings that err independently"
    out = {
        "variant": row.variant,
        "runs": row.runs,
        "minutes_per_run": row.wall_minutes,
        "test_accuracy": p,
        "n_test": row.n_test,
        "image_var": image_var,
        "image_note": image_note,
        "seed_var": None,
        "buys": None,
        "needs": [],
    }
    if budget_minutes:
        runs = int(budget_minutes // row.wall_minutes)
        out["buys"] = {"runs": runs, "settings_by_seeds": {k: runs // k for k in (1, 2, 3, 5)}}
    if row.runs < 2:
        out["needs"] = [{"difference": d, "note": "seed variance unknown: one run of it here"} for d in differences]
        return out
    seed_var = row.seed_variance.var  # measured here: it ran twice or more
    out["seed_var"] = seed_var
    design = _design(2 * seed_var, row.runs, image_var, row.n_test)  # two settings, each its own seeds
    out["detectable_now"] = power.detectable(design)
    for d in differences:
        out["needs"].append(
            {
                "difference": d,
                "seeds": power.seeds_needed(design, d),
                "images": power.images_needed(design, d, row.runs, supply),
            }
        )
    out["supply"] = supply
    return out


def plan_searches(experiment: str, variant: str | None, budget_minutes: float | None, differences) -> list[dict]:
    """Each finished search of EXPERIMENT (of VARIANT when given): its cost per fit and seed
    variance from its own fits, what BUDGET_MINUTES buys under each policy, and the seeds
    two of its settings need for each of DIFFERENCES at 80% power on its validation images."""
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return []
    tags = {KIND_TAG: SEARCH} | ({"variant": variant} if variant else {})
    out = []
    for run in find([found.experiment_id], tags=tags):
        fits = search_fits(run.info.run_id)
        if run.info.status != FINISHED or not fits.seconds:
            continue
        out.append(_one_search(run, fits, budget_minutes, differences))
    return out


def _one_search(run, fits: SearchFits, budget_minutes, differences) -> dict:
    matrices = list(fits.correct.values())
    n = matrices[0].shape[1]
    seed = stats.pooled_seed_variance(matrices)
    # The per-image disagreement of two fits: two seeds of one setting where a setting ran
    # two, else two settings' single fits: the image term of a comparison of two settings.
    pairs = [m[:2] for m in matrices if len(m) > 1] or [np.array([a[0], b[0]]) for a, b in zip(matrices, matrices[1:])]
    image_var = float(np.mean([np.var(p[0] - p[1], ddof=1) for p in pairs])) if pairs else None
    minutes = statistics.median(fits.seconds) / 60
    out = {
        "search": run.info.run_id,
        "variant": run.data.tags.get("variant", "?"),
        "policy": run.data.tags.get("policy", "racing" if run.data.params.get("search.racing") == "True" else "plain"),
        "settings": len(matrices),
        "fits": sum(len(m) for m in matrices),
        "minutes_per_fit": minutes,
        "n_val": n,
        "seed_var": seed.var if seed else None,
        "image_var": image_var,
        "buys": None,
        "policies": [],
    }
    budget_fits = int(budget_minutes // minutes) if budget_minutes else None
    if budget_fits is not None:
        out["buys"] = {"fits": budget_fits}
    # What each policy does with the budget, as settings tried (fewest, most) and the seeds
    # the pick has: plain gives each setting one; racing up to `search.max_seeds`, fewer to
    # settings it drops; intensify up to that cap to the incumbent, fewer to rejected ones.
    cap = int(run.data.params.get("search.max_seeds", SearchConfig.max_seeds))
    for name in POLICIES:
        k = 1 if name == "plain" else cap
        row = {"policy": name, "pick_seeds": k}
        if budget_fits is not None:
            row["settings"] = [budget_fits // k, budget_fits - k + 1] if k > 1 else [budget_fits, budget_fits]
        if seed is not None and image_var is not None:
            design = _design(2 * seed.var, k, image_var, n)
            row["detectable"] = power.detectable(design) if k > 1 else None
            row["needs"] = [{"difference": d, "seeds": power.seeds_needed(design, d)} for d in differences]
        out["policies"].append(row)
    return out


def search_lines(p: dict) -> list[str]:
    """A search's plan as lines for the terminal."""
    out = [
        f"search {p['search']} ({p['variant']}, {p['policy']}): {p['settings']} settings, {p['fits']} fits, "
        f"{p['minutes_per_fit']:.2f} min a fit, {p['n_val']} validation images"
    ]
    if p["seed_var"] is None:
        out.append("  seed variance unknown: no setting ran two seeds (search.policy=intensify measures it)")
    else:
        out.append(f"  seed sd {100 * math.sqrt(p['seed_var']):.2f} pts (one fit, between seeds)")
    if p["buys"]:
        out.append(f"  the budget buys {p['buys']['fits']} fits:")
    for row in p["policies"]:
        settings = row.get("settings")
        text = f"    {row['policy']}: the pick with {row['pick_seeds']} seed{'s' if row['pick_seeds'] > 1 else ''}"
        if settings:
            low, high = settings
            text += f", {low} settings" if low == high else f", {low} to {high} settings"
        for need in row.get("needs", []):
            seeds = need["seeds"] or f"more than {power.MAX_SEEDS}"
            text += f"; {100 * need['difference']:g} pt between two settings needs {seeds} seeds each"
        out.append(text)
    return out


def lines(planned: list[dict]) -> list[str]:
    """The plans as lines for the terminal."""
    out = []
    for p in planned:
        if "search" in p:
            out += search_lines(p)
            continue
        out.append(
            f"{p['variant']}: {p['runs']} run{'s' if p['runs'] != 1 else ''} here, "
            f"{p['minutes_per_run']:.1f} min a run, "
            f"test accuracy {100 * p['test_accuracy']:.1f}% on {p['n_test']} images"
        )
        if p["buys"]:
            buys = ", ".join(
                f"{n} settings x {k} seed{'s' if k > 1 else ''}" for k, n in p["buys"]["settings_by_seeds"].items()
            )
            out.append(f"  the budget buys {p['buys']['runs']} runs: {buys}")
        if p["seed_var"] is None:
            out.append("  seed variance unknown (one run): run 2 or more seeds of it before planning power")
        else:
            out.append(f"  seed sd {100 * math.sqrt(p['seed_var']):.2f} pts; image term: {p['image_note']}")
        for need in p["needs"]:
            points = 100 * need["difference"]
            head = f"  to detect {points:g} pt{'s' if points != 1 else ''} at 80% power: "
            if "note" in need:
                out.append(head + need["note"])
                continue
            seeds = (
                f"{need['seeds']} seeds per setting at {p['n_test']} test images"
                if need["seeds"]
                else f"more than {power.MAX_SEEDS} seeds per setting at {p['n_test']} test images"
            )
            images = (
                f"{need['images']:,} test images at {p['runs']} seeds"
                if need["images"]
                else f"more than the {p['supply']:,} held-out images the data has, at {p['runs']} seeds"
            )
            out.append(f"{head}{seeds}; or {images}")
    return out
