"""The report's figures: curves over seeds, confusion matrices, the error gallery and
hyperparameter importance. Each function returns a matplotlib Figure."""

from __future__ import annotations

import numpy as np

from catdog.plots import draw_confusion, plt


def curves_by_variant(curves: dict[str, dict[str, list[list[float]]]], baseline: float):
    """CURVES[group]["accuracy" | "val_accuracy"]: one history per seed. Mean over seeds as
    a line, min-max over seeds as a band, the baseline dashed."""
    n = len(curves)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows), squeeze=False, sharey=True)
    for ax, (group, by_key) in zip(axes.flat, curves.items()):
        for key, label, color in (("accuracy", "training", "#1f77b4"), ("val_accuracy", "validation", "#ff7f0e")):
            histories = by_key.get(key) or []
            length = min((len(h) for h in histories), default=0)
            if not length:
                continue
            values = np.array([h[:length] for h in histories])
            epochs = np.arange(1, length + 1)
            ax.plot(
                epochs,
                values.mean(axis=0),
                color=color,
                marker="o" if length < 3 else None,
                label=f"{label} (mean of {len(values)})",
            )
            ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2, linewidth=0)
        ax.axhline(baseline, color="grey", linestyle="--", label=f"baseline {baseline:.0%}")
        ax.set(title=group, xlabel="epoch", ylim=(0.3, 1.02))
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_grid(matrices: dict[str, np.ndarray], class_names):
    """Test confusion counts per group, summed over its runs."""
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False)
    for ax, (group, matrix) in zip(axes[0], matrices.items()):
        draw_confusion(ax, matrix, class_names, group)
    axes[0][0].set_ylabel("true")
    fig.tight_layout()
    return fig


def gallery(items: list[dict], columns: int = 6):
    """ITEMS: {"image": uint8 array, "title": str}; one captioned thumbnail each."""
    rows = max(1, int(np.ceil(len(items) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, items):
        ax.imshow(item["image"])
        ax.set_title(item["title"], fontsize=7.5)
    fig.tight_layout()
    return fig


def importance(names: list[str], values: list[float], title: str):
    fig, ax = plt.subplots(figsize=(4.8, 0.5 * len(names) + 1.2))
    ax.barh(names, values, color="#8fb4d9")
    ax.set(xlabel="importance (random forest, impurity)", title=title, xlim=(0, 1))
    fig.tight_layout()
    return fig


def accuracy_by_variant(rows: list[dict]):
    """Mean test accuracy per group with its 95% interval, every run as a dot."""
    fig, ax = plt.subplots(figsize=(1.7 * max(len(rows), 2) + 1.5, 4))
    x = np.arange(len(rows))
    means = np.array([r["test_accuracy_mean"] for r in rows])
    err = np.array([[m - r["test_ci"].low, r["test_ci"].high - m] for m, r in zip(means, rows)]).T
    ax.bar(x, means, yerr=err, capsize=6, color="#8fb4d9", label="mean test accuracy, 95% interval")
    for i, row in enumerate(rows):
        ax.scatter([i] * len(row["test_accuracies"]), row["test_accuracies"], color="black", s=14, zorder=3)
    ax.axhline(
        rows[0]["baseline_accuracy"], color="grey", linestyle="--", label=f"baseline {rows[0]['baseline_accuracy']:.0%}"
    )
    long_names = max(len(r["variant"]) for r in rows) > 12
    ax.set_xticks(
        x, [r["variant"] for r in rows], rotation=20 if long_names else 0, ha="right" if long_names else "center"
    )
    ax.set(ylabel="test accuracy", ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
