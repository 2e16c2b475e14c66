"""A Keras Tuner search in the report: leaderboard, trials across the space, the winner
retrained, and a rough importance estimate."""

from __future__ import annotations

import json

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from catdog.report import assets, figures
from catdog.stats import Interval

LEADERBOARD_ROWS = 50  # the page says so when a search has more trials


def leaderboard(run) -> list[dict]:
    """The search run's logged leaderboard rows ([] when it has none)."""
    try:
        table = MlflowClient().load_table(run.info.experiment_id, "leaderboard.json", run_ids=[run.info.run_id])
    except MlflowException:
        return []
    return table.to_dict("records")


def importance(rows: list[dict], names: list[str], seed: int = 0) -> dict[str, float] | None:
    """How much of the objective's variation each hyperparameter explains: a random
    forest's impurity importances over the scored trials (None with fewer than 4)."""
    from sklearn.ensemble import RandomForestRegressor

    scored = [r for r in rows if r.get("score") is not None and r["score"] == r["score"]]
    varied = [n for n in names if len({r.get(n) for r in scored}) > 1]
    if len(scored) < 4 or not varied:
        return None
    x = np.array([_encoded([r[n] for r in scored]) for n in varied]).T
    y = np.array([r["score"] for r in scored])
    forest = RandomForestRegressor(n_estimators=300, min_samples_leaf=2, random_state=seed).fit(x, y)
    return dict(zip(varied, forest.feature_importances_.tolist()))


def _encoded(values: list) -> list[float]:
    """Numbers as they are; a choice such as pooling as category codes."""
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        codes = {v: i for i, v in enumerate(sorted({str(v) for v in values}))}
        return [float(codes[str(v)]) for v in values]


def race(run) -> dict | None:
    """A racing search's settings: seeds run, mean validation with its interval, and status
    (leader, cannot be told apart, equivalent, dropped after seed k at -x pts [..], or
    stopped by the budget); None for a search that did not race."""
    client = MlflowClient()
    settings = [
        r for r in client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}' and tags.kind = 'trial'",
        )
        if r.data.tags.get("race_status")
    ]  # fmt: skip
    if not settings:
        return None
    tags = run.data.tags
    leader, untold = tags.get("best.trial"), set(filter(None, tags.get("race.untold", "").split(",")))
    same = set(filter(None, tags.get("race.equivalent", "").split(",")))
    margin = run.data.params.get("search.equivalence_margin", "?")
    out = []
    for setting in sorted(settings, key=lambda r: int(r.data.tags.get("trial_id", 0))):
        try:
            record = json.loads(mlflow.artifacts.load_text(f"runs:/{setting.info.run_id}/race.json"))
        except (MlflowException, OSError):
            continue
        trial = setting.data.tags.get("trial_id", "?")
        last = record["running"][-1]
        status = record["status"]
        if trial == leader:
            text = "leader: best mean over every seed"
        elif status == "dropped":
            look = record["looks"][-1]
            text = (
                f"dropped after seed {look['seeds']} at {100 * look['difference']:+.1f} pts "
                f"[{100 * look['low']:+.1f}, {100 * look['high']:+.1f}] (one-sided p {look['p']:.2g})"
            )
        elif status == "stopped":
            text = f"stopped by the budget after {record['seeds']} seeds"
        elif trial in same:
            text = f"equivalent to the leader within {margin} pts"
        elif trial in untold:
            text = "cannot be told apart from the leader"
        else:
            text = "ran every seed; resolved below the leader"
        values = {k: _number(v) for k, v in setting.data.params.items() if not k.startswith("tuner/")}
        label = f"trial {trial}: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                               for k, v in values.items())  # fmt: skip
        interval = Interval(last["low"], last["high"])
        out.append(
            {"trial": trial, "label": label, "seeds": record["seeds"], "mean": last["mean"], "interval": interval,
             "status": text, "leader": trial == leader, "dropped": status == "dropped", "running": record["running"]}
        )  # fmt: skip
    fits = sum(s["seeds"] for s in out)
    dropped = sum(s["dropped"] for s in out)
    summary = (
        f"Racing: {len(out)} settings, {fits} seeded fits; {dropped} dropped before their last seed, "
        f"stopped by {tags.get('stop_reason', 'max_trials')}. The recommendation is the leader, trial {leader}; "
        f"it cannot be told apart from {', '.join(sorted(untold)) or 'no other setting'}"
        f" (equivalent within {margin} pts: {', '.join(sorted(same)) or 'none'})."
    )
    return {"settings": out, "summary": summary}


def section(run, out_dir, link, rows: list) -> dict:
    """A search's part of the page. LINK(run_id): the run's page in the MLflow UI, or
    None; ROWS: the study's variant rows, among them the search's retrained groups."""
    tags = run.data.tags
    board = leaderboard(run)
    names = [k[len("best.") :] for k in tags if k.startswith("best.") and k != "best.trial"]
    search_id = tags.get("search_id", run.info.run_id[:8])
    # A search run again from scratch (search.overwrite=true) keeps its id: its figures and
    # anchor are named for the parent run too, so the two sections never share them.
    key = f"{search_id}-{run.info.run_id[:8]}"
    objective = run.data.params.get("tuner.objective", "val_accuracy")
    scored = [r for r in board if r.get("score") is not None and r["score"] == r["score"]]
    retrained = [r for r in rows if r.variant.endswith(f"of search {run.info.run_id[:8]})")]
    figs = {}
    if scored and names:
        fig = figures.parallel_trials(board, names, objective)
        figs["parallel"] = assets.figure(fig, f"search-{key}-trials.png", out_dir)
    best_score = scored[0]["score"] if scored else None
    points = [
        {"label": r.variant.split(" (")[1].split(" of")[0], "trial": best_score, "retrained": r.val_accuracies}
        for r in retrained
        if "(best of" in r.variant and best_score is not None
    ]
    if points:
        figs["shrinkage"] = assets.figure(
            figures.trial_against_retrained(points), f"search-{key}-retrained.png", out_dir
        )
    raced = race(run)
    if raced:
        fig = figures.race(raced["settings"], search_id)
        figs["race"] = assets.figure(fig, f"search-{key}-race.png", out_dir)
    weights = importance(board, names)
    if weights:
        fig = figures.importance(list(weights), list(weights.values()), f"{search_id}: importance")
        figs["importance"] = assets.figure(fig, f"search-{key}-importance.png", out_dir)
    return {
        "id": search_id,
        "key": key,
        "run_id": run.info.run_id,
        "link": link(run.info.run_id),
        "tuner": tags.get("tuner"),
        "variant": tags.get("variant"),
        "objective": objective,
        "trials": len(board),
        "scored": len(scored),
        "columns": ["trial", "status", "score", *names],
        "leaderboard": board[:LEADERBOARD_ROWS],
        "best": {n: _number(tags.get(f"best.{n}")) for n in names},
        "best_score": best_score,
        "figures": figs,
        "importance": weights,
        "retrained": retrained,
        "stop_reason": tags.get("stop_reason"),
        "race": raced,
    }


def _number(tag: str | None):
    """Tags are strings; show numbers as numbers (0.127, not 0.1271432756232983)."""
    try:
        return float(tag) if "." in str(tag) else int(tag)
    except (TypeError, ValueError):
        return tag
