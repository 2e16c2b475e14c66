"""Figures people look at instead of reading numbers. Each function returns a Figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files and MLflow, never to a window

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot loads
import numpy as np  # noqa: E402 - kept with the imports above
from matplotlib.ticker import Formatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402 - as above

# Tick steps of 1, 2 or 5 times a power of ten: a step of 2.5 would need one more decimal
# than its neighbours, and labels printed with fewer decimals than the step mis-round.
NICE_STEPS = [1, 2, 5, 10]


class Decimals(Formatter):
    """Tick labels in plain decimals, never scientific notation or an offset, so that every
    axis of a kind reads alike. On a linear axis all ticks share the decimals the tick step
    needs (every 0.5 prints one, every 0.25 two); on a log axis each tick has its own
    (0.0001, 0.2, 10). SCALE and SUFFIX make percentages: Decimals(100, "%")."""

    def __init__(self, scale: float = 1.0, suffix: str = ""):
        self.scale, self.suffix = scale, suffix
        self._decimals: int | None = None

    def set_locs(self, locs):
        super().set_locs(locs)
        log = self.axis is not None and self.axis.get_scale() == "log"
        self._decimals = None if log or not len(locs) else _decimals(np.asarray(locs, float) * self.scale)

    def __call__(self, x, pos=None):
        value = x * self.scale
        decimals = _decimals(np.array([value])) if self._decimals is None else self._decimals
        return f"{value:.{decimals}f}{self.suffix}"


def _decimals(values: np.ndarray) -> int:
    """The fewest decimals that print every one of VALUES exactly (float noise aside: a log
    tick at 3 x 0.1 is 0.30000000000000004)."""
    for decimals in range(13):
        if np.allclose(np.round(values, decimals), values, rtol=1e-9, atol=0):
            return decimals
    return 12


class LogTicks(LogLocator):
    """Major ticks on a log axis that label at least LEAST values however few decades the view
    spans: the sparsest of 1, 1-2-5, 1-2-3-5-7 and 1-1.5-2-3-4-5-7 per decade that puts LEAST
    in view; in a view too narrow for any of them, nice linear steps. Plain LogLocator labels
    only powers of ten, so a view inside one decade shows one label or none."""

    SUBS = ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0, 7.0), (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0))

    def __init__(self, least: int = 3):
        super().__init__(subs=self.SUBS[0])
        self.least = least

    def tick_values(self, vmin, vmax):
        vmin, vmax = sorted((vmin, vmax))
        for subs in self.SUBS:
            self.set_params(subs=subs)
            ticks = super().tick_values(vmin, vmax)
            if ((ticks >= vmin) & (ticks <= vmax)).sum() >= self.least:
                return ticks
        return MaxNLocator(nbins=self.least + 1, steps=NICE_STEPS).tick_values(vmin, vmax)


def percent_axis(axis, nbins: int = 7) -> None:
    """Fractions shown as percentages, ticks every 1, 2 or 5 times a power of ten and printed
    with the decimals that step needs. NBINS bounds the labels so that they fit side by side."""
    axis.set_major_locator(MaxNLocator(nbins=nbins, steps=NICE_STEPS))
    axis.set_major_formatter(Decimals(100, "%"))


def decimal_axis(axis, least: int = 3) -> None:
    """The one tick format of every loss axis, linear or log, and of the other log axes:
    plain decimals on the major ticks (at least LEAST on a log axis), the minor ones
    unlabelled (matplotlib's default labels a log axis's minor ticks in scientific notation
    when it spans less than a decade, beside plain major labels)."""
    log = axis.get_scale() == "log"
    axis.set_major_locator(LogTicks(least) if log else MaxNLocator(nbins="auto", steps=NICE_STEPS))
    axis.set_major_formatter(Decimals())
    axis.set_minor_formatter(NullFormatter())


def accuracy_curves(history: dict, baseline: float | None = None, title: str = ""):
    """Training vs validation accuracy per epoch, with the constant-guess baseline."""
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history["accuracy"]) + 1)
    ax.plot(epochs, history["accuracy"], marker="o", label="training")
    if "val_accuracy" in history:
        ax.plot(epochs, history["val_accuracy"], marker="o", label="validation")
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label=f"baseline {baseline:.0%}")
    if 2 in history.get("stage", ()):
        first = history["stage"].index(2) + 1
        ax.axvline(first - 0.5, color="black", linestyle=":", label=f"fine-tuning from epoch {first}")
    ax.set(xlabel="epoch", ylabel="accuracy", title=title, ylim=(0, 1.02))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def sample_grid(split, class_names, per_class: int = 3):
    """One row per class, the first `per_class` images of each, titled with the class."""
    fig, axes = plt.subplots(
        len(class_names), per_class, figsize=(2.5 * per_class, 2.6 * len(class_names)), squeeze=False
    )
    for label, row in enumerate(axes):
        members = np.flatnonzero(split.labels == label)[:per_class]
        for ax, index in zip(row, members):
            ax.imshow(split.images[index])
        for ax in row:
            ax.set_title(class_names[label])
            ax.axis("off")
    fig.tight_layout()
    return fig


def augmentation_grid(image: np.ndarray, layer, title: str, n: int = 4):
    """`n` random draws of one augmentation layer applied to one image. Give the layer its
    own seed: drawing here must not move the run's global random state."""
    import keras

    batch = np.repeat(image[None].astype("float32"), n, axis=0)
    views = keras.ops.convert_to_numpy(layer(batch, training=True))
    side = int(np.ceil(np.sqrt(n)))
    fig, axes = plt.subplots(side, side, figsize=(2.6 * side, 2.6 * side), squeeze=False)
    for ax, view in zip(axes.flat, views):
        ax.imshow(np.clip(view, 0, 255).astype("uint8"))
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(matrix: np.ndarray, class_names, title: str = ""):
    """Counts with true class on rows, predicted on columns."""
    fig, ax = plt.subplots(figsize=(4, 3.6))
    draw_confusion(ax, matrix, class_names, title)
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def draw_confusion(ax, matrix: np.ndarray, class_names, title: str = "") -> None:
    """A confusion matrix on AX: counts in cells, predicted class on the x axis."""
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=12)
    ticks = range(len(class_names))
    ax.set(
        xticks=ticks, yticks=ticks, xticklabels=class_names, yticklabels=class_names, xlabel="predicted", title=title
    )


def objective_against(values, scores, xlabel: str, objective: str, running_best: bool = False, maximize: bool = True):
    """A search's objective against one hyperparameter (or the trial number)."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(values, scores, color="#1f77b4", zorder=3, label="trial")
    if running_best:
        ax.step(
            values,
            (np.maximum if maximize else np.minimum).accumulate(scores),
            where="post",
            color="#ff7f0e",
            label="best so far",
        )
        ax.legend(loc="lower right")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if xlabel.endswith("learning_rate"):
        ax.set_xscale("log")  # searched on a log scale
    if "loss" in objective:
        decimal_axis(ax.yaxis)
    ax.set(xlabel=xlabel, ylabel=objective, title=f"{objective} vs {xlabel}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
