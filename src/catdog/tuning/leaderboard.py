"""A search's trials as a table and as plots of the objective."""

from __future__ import annotations

import mlflow

from catdog import plots


def leaderboard(tuner) -> list[dict]:
    """One row per trial (intensifying: per setting, its mean over its seeds), best first by
    the objective's own direction."""
    maximize = tuner.oracle.objective.direction == "max"
    intensifier = tuner.oracle.intensifier
    rows = (
        [
            {
                "trial": s.key,
                "status": s.status,
                "score": s.mean if s.scores else None,
                "seeds": len(s.scores),
                **s.values,
            }
            for s in intensifier.settings.values()
        ]
        if intensifier is not None
        else [
            {
                "trial": trial.trial_id,
                "status": trial.status,
                "score": trial.score,
                **{k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")},
            }
            for trial in tuner.oracle.trials.values()
        ]
    )
    return sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0.0) if maximize else (r["score"] or 0.0)))


def log_search_plots(rows: list[dict], objective, hp_names: list[str]) -> None:
    """OBJECTIVE: Keras Tuner's Objective (name and direction)."""
    scored = sorted((r for r in rows if r["score"] is not None), key=lambda r: int(r["trial"]))
    if not scored:
        return
    scores = [r["score"] for r in scored]
    maximize = objective.direction == "max"
    fig = plots.objective_against(
        [int(r["trial"]) for r in scored], scores, "trial", objective.name, running_best=True, maximize=maximize
    )
    mlflow.log_figure(fig, "plots/objective_vs_trial.png")
    for name in hp_names:
        fig = plots.objective_against([r[name] for r in scored], scores, name, objective.name)
        mlflow.log_figure(fig, f"plots/objective_vs_{name}.png")
    plots.plt.close("all")
