"""A Keras Tuner search in the report: leaderboard, trials across the space, the winner
retrained, and a rough importance estimate."""

from __future__ import annotations

import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from catdog import stats
from catdog.report import assets, races, search_figures
from catdog.tracking import record

LEADERBOARD_ROWS = 50  # the page says so when a search has more trials


def leaderboard(run) -> list[dict]:
    """The search run's logged leaderboard rows ([] when it has none)."""
    try:
        table = MlflowClient().load_table(run.info.experiment_id, record.LEADERBOARD, run_ids=[run.info.run_id])
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


def section(run, out_dir, link, rows: list) -> dict:
    """A search's part of the page. LINK(run_id): the run's page in the MLflow UI, or
    None; ROWS: the study's variant rows, among them the search's retrained groups."""
    tags = run.data.tags
    board = leaderboard(run)
    names = [k[len("best.") :] for k in tags if k.startswith("best.") and k not in ("best.trial", "best.seeds")]
    search_id = tags.get("search_id", run.info.run_id[:8])
    # A search run again from scratch (search.overwrite=true) keeps its id: its figures and
    # anchor are named for the parent run too, so the two sections never share them.
    key = f"{search_id}-{run.info.run_id[:8]}"
    objective = run.data.params.get("tuner.objective", "val_accuracy")
    scored = [r for r in board if r.get("score") is not None and r["score"] == r["score"]]
    retrained = [r for r in rows if r.variant.endswith(f"of search {run.info.run_id[:8]})")]
    best_score = scored[0]["score"] if scored else None
    raced = races.race(run)
    weights = importance(board, names)
    drawn = {
        "parallel": scored and names and search_figures.parallel_trials(board, names, objective),
        "shrinkage": _shrinkage(retrained, best_score),
        "race": raced and search_figures.race(raced["settings"], search_id),
        "importance": weights
        and search_figures.importance(list(weights), list(weights.values()), f"{search_id}: importance"),
    }
    names_of = {"parallel": "trials", "shrinkage": "retrained", "race": "race", "importance": "importance"}
    figs = {k: assets.figure(f, f"search-{key}-{names_of[k]}.png", out_dir) for k, f in drawn.items() if f}
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
        "best_score": run.data.metrics.get(f"best_{objective}", best_score),
        "pick": _pick(run, raced),
        "figures": figs,
        "importance": weights,
        "retrained": retrained,
        "stop_reason": tags.get("stop_reason"),
        "race": raced,
    }


def _pick(run, raced) -> dict:
    """How the search chose (its policy), the seeds behind the pick's score, and the score
    to expect of it on fresh seeds and images (None for searches made before it was kept)."""
    metrics, tags = run.data.metrics, run.data.tags
    expected = None
    if record.EXPECTED_SCORE in metrics:
        expected = {
            "mean": metrics[record.EXPECTED_SCORE],
            "interval": stats.Interval(metrics[record.EXPECTED_LOW], metrics[record.EXPECTED_HIGH]),
            "source": tags.get(record.EXPECTED_SOURCE_TAG, "this search"),
        }
    return {
        "policy": tags.get("policy", "racing" if raced else "plain"),
        "seeds": int(tags.get("best.seeds", 1)),
        "expected": expected,
    }


def _shrinkage(retrained: list, best_score: float | None):
    """The winning trial's score against its retrained validation accuracy, or None."""
    points = [
        {"label": r.variant.split(" (")[1].split(" of")[0], "trial": best_score, "retrained": r.val_accuracies}
        for r in retrained
        if "(best of" in r.variant and best_score is not None
    ]
    return search_figures.trial_against_retrained(points) if points else None


def _number(tag: str | None):
    """Tags are strings; show numbers as numbers (0.127, not 0.1271432756232983)."""
    try:
        return float(tag) if "." in str(tag) else int(tag)
    except (TypeError, ValueError):
        return tag
