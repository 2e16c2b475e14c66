"""A racing search on the review page: each setting's seeds, running mean with its interval
and status, read back from the setting runs' `race.json` and the search run's tags."""

from __future__ import annotations

import json

import mlflow
from mlflow.exceptions import MlflowException

from catdog.report.runs import short
from catdog.stats import Interval
from catdog.tracking.record import RACE_OUTCOME, TRIAL, children


def race(run) -> dict | None:
    """RUN's settings (seeds run, mean validation with its interval, status) and a summary;
    None for a search that did not race."""
    trials = children(run.info.run_id, TRIAL, [run.info.experiment_id])
    settings = [r for r in trials if r.data.tags.get("race_status")]
    if not settings:
        return None
    verdicts = _verdicts(run)
    out = []
    for setting in sorted(settings, key=lambda r: int(r.data.tags.get("trial_id", 0))):
        try:
            record = json.loads(mlflow.artifacts.load_text(f"runs:/{setting.info.run_id}/{RACE_OUTCOME}"))
        except (MlflowException, OSError):
            continue
        out.append(_row(setting, record, verdicts))
    return {"settings": out, "summary": _summary(run, out, verdicts)}


def _verdicts(run) -> dict:
    """What the search concluded: its leader, the settings it cannot tell from the leader,
    those equivalent to it, and the margin."""
    tags, split = run.data.tags, lambda key: set(filter(None, run.data.tags.get(key, "").split(",")))
    return {
        "leader": tags.get("best.trial"),
        "untold": split("race.untold"),
        "same": split("race.equivalent"),
        "margin": run.data.params.get("search.equivalence_margin", "?"),
    }


def _status(trial: str, record: dict, verdicts: dict) -> str:
    if trial == verdicts["leader"]:
        return "leader: best mean over every seed"
    if record["status"] == "dropped":
        look = record["looks"][-1]
        return (
            f"dropped after seed {look['seeds']} at {100 * look['difference']:+.1f} pts "
            f"[{100 * look['low']:+.1f}, {100 * look['high']:+.1f}] (one-sided p {look['p']:.2g})"
        )
    if record["status"] == "stopped":
        return f"stopped by the budget after {record['seeds']} seeds"
    if trial in verdicts["same"]:
        return f"equivalent to the leader within {verdicts['margin']} pts"
    if trial in verdicts["untold"]:
        return "cannot be told apart from the leader"
    return "ran every seed; resolved below the leader"


def _row(setting, record: dict, verdicts: dict) -> dict:
    trial = setting.data.tags.get("trial_id", "?")
    last = record["running"][-1]
    values = {k: v for k, v in setting.data.params.items() if not k.startswith("tuner/")}
    shown = ", ".join(f"{k}={short(v)}" for k, v in values.items())
    return {
        "trial": trial,
        "label": f"trial {trial}: {shown}",
        "seeds": record["seeds"],
        "mean": last["mean"],
        "interval": Interval(last["low"], last["high"]),
        "status": _status(trial, record, verdicts),
        "leader": trial == verdicts["leader"],
        "dropped": record["status"] == "dropped",
        "running": record["running"],
    }


def _summary(run, rows: list[dict], verdicts: dict) -> str:
    untold, same = sorted(verdicts["untold"]), sorted(verdicts["same"])
    return (
        f"Racing: {len(rows)} settings, {sum(r['seeds'] for r in rows)} seeded fits; "
        f"{sum(r['dropped'] for r in rows)} dropped before their last seed, stopped by "
        f"{run.data.tags.get('stop_reason', 'max_trials')}. The recommendation is the leader, trial "
        f"{verdicts['leader']}; it cannot be told apart from {', '.join(untold) or 'no other setting'} "
        f"(equivalent within {verdicts['margin']} pts: {', '.join(same) or 'none'})."
    )
