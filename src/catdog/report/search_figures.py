"""A search's figures on the review page: its trials across the searched settings, the
pick's trial score against its retrained one, a rough importance, and a race seed by seed."""

from __future__ import annotations

import numpy as np

from catdog.plots import percent_axis, plt
from catdog.report.figures import HIGHLIGHT, MUTED, TRAINING, wrap


def importance(names: list[str], values: list[float], title: str):
    """Hyperparameter importances as horizontal bars (0 to 1)."""
    fig, ax = plt.subplots(figsize=(4.8, 0.5 * len(names) + 1.2))
    ax.barh(names, values, color="#8fb4d9")
    ax.set(xlabel="importance (random forest, impurity)", xlim=(0, 1))
    ax.set_title(wrap(title, 40), fontsize=9)
    fig.tight_layout()
    return fig


def parallel_trials(rows: list[dict], names: list[str], objective: str):
    """One line per scored trial across the searched settings, coloured by its score;
    learning rates on log axes as they were sampled, choices as evenly spaced levels."""
    scored = [r for r in rows if r.get("score") is not None and r["score"] == r["score"]]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2.4, 3.8))
    columns = []
    for name in names:
        values = [r.get(name) for r in scored]
        try:
            numbers = np.array(values, dtype=float)
            if name.endswith("learning_rate"):
                numbers = np.log10(numbers)
            labels = None
        except (TypeError, ValueError):
            levels = sorted({str(v) for v in values})
            numbers, labels = np.array([levels.index(str(v)) for v in values], float), levels
        low, high = np.nanmin(numbers), np.nanmax(numbers)
        columns.append((numbers - low) / (high - low) if high > low else np.full(len(numbers), 0.5))
        if high > low:
            ax.annotate(_fmt(name, high, labels), (len(columns) - 1, 1.04), ha="center", fontsize=7)
        ax.annotate(_fmt(name, low, labels), (len(columns) - 1, -0.1), ha="center", fontsize=7)
    scores = np.array([r["score"] for r in scored])
    colors = plt.cm.viridis((scores - scores.min()) / (np.ptp(scores) or 1))
    data = np.array(columns).T
    for line, color in zip(data, colors):
        ax.plot(range(len(names)), line, color=color, alpha=0.8)
    ax.set_xticks(range(len(names)), [n + (" (log)" if n.endswith("learning_rate") else "") for n in names], fontsize=8)
    ax.set(yticks=[], ylim=(-0.15, 1.15))
    mappable = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(scores.min(), scores.max()))
    fig.colorbar(mappable, ax=ax, label=objective)
    fig.tight_layout()
    return fig


def _fmt(name: str, value: float, labels) -> str:
    if labels is not None:
        return labels[int(round(value))]
    return f"{10**value:.1e}" if name.endswith("learning_rate") else f"{value:.3g}"


def trial_against_retrained(points: list[dict]):
    """POINTS: {"label", "trial": the search's score, "retrained": per-seed validation}.
    Below the diagonal: the winner shrinks when trained again with fresh seeds."""
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    values = [p["trial"] for p in points] + [v for p in points for v in p["retrained"]]
    low, high = min(values) - 0.02, max(values) + 0.02
    ax.plot([low, high], [low, high], color=MUTED, linestyle="--", linewidth=1, label="no shrinkage")
    for point in points:
        ax.scatter([point["trial"]] * len(point["retrained"]), point["retrained"], s=14, color=MUTED)
        ax.scatter([point["trial"]], [np.mean(point["retrained"])], marker="D", color=HIGHLIGHT, label=point["label"])
    ax.set(
        xlim=(low, high), ylim=(low, high), xlabel="trial's validation score", ylabel="retrained validation accuracy"
    )
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def race(settings: list[dict], title: str):
    """SETTINGS' running mean validation accuracy with its 95% interval, seed by seed; a
    dropped setting's line ends at the seed it was dropped after; the leader in red."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    offsets = np.linspace(-0.15, 0.15, max(len(settings), 1))
    for offset, setting in zip(offsets, settings):
        running = setting["running"]
        x = np.array([r["seeds"] for r in running]) + offset
        mean = np.array([r["mean"] for r in running])
        err = [mean - [r["low"] for r in running], [r["high"] for r in running] - mean]
        color = HIGHLIGHT if setting["leader"] else (MUTED if setting["dropped"] else TRAINING)
        ax.errorbar(x, mean, yerr=err, color=color, marker="o", markersize=3, capsize=2, linewidth=1,
                    alpha=1.0 if setting["leader"] else 0.7, zorder=3 if setting["leader"] else 2)  # fmt: skip
        if setting["dropped"]:
            ax.scatter(x[-1:], mean[-1:], marker="x", color=MUTED, s=40, zorder=4)
    ax.set(xlabel="seeds run", ylabel="mean validation accuracy", title=wrap(f"{title}: the race", 60))
    ax.xaxis.get_major_locator().set_params(integer=True)
    percent_axis(ax.yaxis)
    handles = [
        plt.Line2D([], [], color=HIGHLIGHT, marker="o", label="leader"),
        plt.Line2D([], [], color=TRAINING, marker="o", label="ran every seed"),
        plt.Line2D([], [], color=MUTED, marker="x", linestyle="", label="dropped"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
