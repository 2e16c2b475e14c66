"""The report's figures. Each function returns a matplotlib Figure; axes are scaled to the
data, and the 50% baseline stays visible (drawn, or marked at the edge when far off)."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.transforms import Bbox

from catdog.plots import decimal_axis, draw_confusion, percent_axis, plt

TRAINING, VALIDATION, HIGHLIGHT, MUTED = "#1f77b4", "#ff7f0e", "#c0392b", "#5d6678"


def wrap(text: str, width: int = 26) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _limits(values, baseline: float, room: float = 3.0) -> tuple[float, float, bool]:
    """Axis limits around VALUES; the baseline is inside them unless it lies more than
    ROOM data spans below, where it would squash the differences that matter."""
    low, high = float(np.min(values)), float(np.max(values))
    span = max(high - low, 0.01)
    shown = baseline >= low - room * span
    low = min(low, baseline) if shown else low
    pad = 0.08 * max(high - low, 0.01)
    return low - pad, min(high + pad, 1.005), shown


def _baseline(ax, baseline: float, shown: bool, vertical: bool = True) -> None:
    """The baseline as a dashed line; when it lies far off scale, a note in the axis label
    (never a label over the data)."""
    if shown:
        (ax.axvline if vertical else ax.axhline)(baseline, color=MUTED, linestyle="--", linewidth=1)
        return
    axis = ax.xaxis if vertical else ax.yaxis
    axis.set_label_text(f"{axis.get_label_text()} (baseline {baseline:.0%} off scale)")


def accuracy_by_variant(rows, recommended: str, val_intervals: dict):
    """Validation (the choosing split): each seed a dot, jittered so that seeds with the same
    score stay visible, and the mean with its 95% interval; test beside it with its
    interval over seeds and images. One row per variant, the recommended one in red."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.46 * len(rows) + 1.7), sharey=True)
    y = np.arange(len(rows))[::-1]
    baseline = rows[0].baseline_accuracy
    jitter = np.random.default_rng(0)  # its own generator: drawing a figure moves no run's state
    for ax, split in zip(axes, ("val", "test")):
        intervals = {r.variant: (val_intervals[r.variant] if split == "val" else r.test_ci) for r in rows}
        points = [v for r in rows for v in getattr(r, f"{split}_accuracies")]
        points += [i.low for i in intervals.values()] + [i.high for i in intervals.values()]
        low, high, shown = _limits(points, baseline)
        for yi, row in zip(y, rows):
            color = HIGHLIGHT if row.variant == recommended else TRAINING
            values = getattr(row, f"{split}_accuracies")
            ax.scatter(values, yi + jitter.uniform(-0.18, 0.18, len(values)), s=14, color=MUTED, zorder=3)
            mean, ci = getattr(row, f"{split}_accuracy_mean"), intervals[row.variant]
            ax.errorbar(mean, yi, xerr=[[mean - ci.low], [ci.high - mean]], fmt="none", color=color, capsize=4)
            ax.scatter([mean], [yi], marker="D", s=36, color=color, zorder=4)
        ax.set(xlim=(low, high), xlabel=f"{'validation' if split == 'val' else 'test'} accuracy")
        _baseline(ax, baseline, shown)
        percent_axis(ax.xaxis)
        ax.grid(axis="x", alpha=0.3)
        ax.yaxis.set_tick_params(labelleft=True)
    axes[0].set_yticks(y, [wrap(r.variant, 34) for r in rows], fontsize=8)
    axes[1].set_yticks(y, [wrap(r.variant, 34) for r in rows], fontsize=8)
    axes[0].set_title("validation: seeds (dots), mean and 95% interval", fontsize=9)
    axes[1].set_title("test: mean and 95% interval (seeds + images)", fontsize=9)
    fig.legend(
        handles=[plt.Line2D([], [], color=MUTED, linestyle="--", label=f"baseline {baseline:.0%} (always one class)")],
        loc="lower center", fontsize=8, frameon=False,
    )  # fmt: skip
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def curves_by_variant(curves: dict[str, dict[str, list[list[float]]]], baseline: float, fine_tune: dict):
    """Accuracy (top row) and loss (bottom row, log scale: the epoch-1 loss of a plain CNN
    would otherwise flatten the rest) for each variant: mean over seeds as a line, min-max
    over seeds as a band; one scale per row, so variants compare at a glance; a dotted
    line where fine-tuning starts."""
    n = len(curves)
    cols = min(n, 4)
    blocks = int(np.ceil(n / cols))
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(3.6 * cols, 5.2 * blocks), squeeze=False, sharey="row")
    for i, (group, by_key) in enumerate(curves.items()):
        top, bottom = axes[2 * (i // cols)][i % cols], axes[2 * (i // cols) + 1][i % cols]
        for ax, metric in ((top, "accuracy"), (bottom, "loss")):
            for key, label, color in ((metric, "training", TRAINING), (f"val_{metric}", "validation", VALIDATION)):
                _band(ax, by_key.get(key) or [], label, color)
            if fine_tune.get(group) is not None:
                ax.axvline(fine_tune[group] + 0.5, color=MUTED, linestyle=":", label="fine-tuning starts")
            ax.grid(alpha=0.3, which="both")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.yaxis.set_tick_params(labelleft=True)
        top.axhline(baseline, color=MUTED, linestyle="--", linewidth=1, label=f"baseline {baseline:.0%}")
        top.set_title(wrap(group), fontsize=9)
        top.set_ylabel("accuracy" if i % cols == 0 else None)
        bottom.set_yscale("log")
        decimal_axis(bottom.yaxis)
        bottom.set(xlabel="epoch", ylabel="loss (log scale)" if i % cols == 0 else None)
    for j in range(n, blocks * cols):
        axes[2 * (j // cols)][j % cols].axis("off")
        axes[2 * (j // cols) + 1][j % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def _band(ax, histories: list[list[float]], label: str, color: str) -> None:
    length = min((len(h) for h in histories), default=0)
    if not length:
        return
    values = np.array([h[:length] for h in histories])
    epochs = np.arange(1, length + 1)
    ax.plot(epochs, values.mean(axis=0), color=color, marker="o" if length < 3 else None, label=label)
    ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2, linewidth=0)


def confusion(matrix: np.ndarray, class_names, title: str):
    """A confusion matrix of summed counts, true class on rows."""
    fig, ax = plt.subplots(figsize=(3.4, 3.2))
    draw_confusion(ax, matrix, class_names, wrap(title, 30))
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def reliability(curves: dict[str, tuple[np.ndarray, ...]], recommended: str, positive: str):
    """The fraction of images that are POSITIVE against the mean predicted P(POSITIVE) per
    bin: on the diagonal when calibrated. CURVES: per variant (predicted, observed, counts)
    over equal-width bins (`evidence.reliability_bins`). A point's area and the bars under
    the curve say how many predictions each bin holds, and the line breaks at empty bins,
    so an empty middle reads as no data, not as calibration."""
    fig, (ax, below) = plt.subplots(2, 1, figsize=(7.6, 5.6), sharex=True, height_ratios=(3, 1))
    below.set_yscale("log")  # corner bins of thousands beside middle bins of a few
    ax.plot([0, 1], [0, 1], color=MUTED, linestyle="--", linewidth=1, label="calibrated")
    most = max((float(np.nanmax(c[2])) for c in curves.values() if len(c[2])), default=0.0) or 1.0
    for i, (group, (predicted, observed, counts)) in enumerate(curves.items()):
        counts = np.nan_to_num(np.asarray(counts, float))
        empty = counts <= 0
        # NaN at an empty bin: matplotlib breaks the line there instead of bridging it.
        predicted = np.where(empty, np.nan, np.asarray(predicted, float))
        observed = np.where(empty, np.nan, np.asarray(observed, float))
        color = f"C{i}"
        ax.plot(predicted, observed, color=color, linewidth=2 if group == recommended else 1, label=wrap(group, 30))
        # Area, not radius, in proportion to the count: a bin of a few predictions stays a speck.
        held = ~empty
        ax.scatter(predicted[held], observed[held], s=6 + 140 * counts[held] / most, color=color, alpha=0.8, zorder=3)
        _count_bars(below, counts, i, len(curves), color)
    # A little room past 0 and 1: a bin that is all one class sits on the frame, half hidden.
    ax.set(ylabel=f"fraction of the bin that are {positive}", xlim=(-0.02, 1.02), ylim=(-0.03, 1.03))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    ax.grid(alpha=0.3)
    below.set_xlabel(f"predicted P({positive}), mean of the bin")
    decimal_axis(below.yaxis)
    below.set_ylabel("predictions\nin the bin", fontsize=8)
    below.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _count_bars(ax, counts: np.ndarray, i: int, groups: int, color: str) -> None:
    """Variant I's predictions per equal-width bin, its bars beside the other variants'."""
    bins = len(counts)
    width = 1 / bins / groups
    left = np.arange(bins) / bins + i * width
    held = counts > 0
    ax.bar(left[held], counts[held], width=width, align="edge", color=color, alpha=0.8)


def accuracy_against_cost(rows, recommended: str):
    """Test accuracy with its interval against the whole cost of a run, the feature cache's
    build included (log scale, at least
    four labelled ticks however narrow the range); each name placed where it covers no
    interval, point or other name."""
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    labels, bars = [], []
    for row in sorted(rows, key=lambda r: r.cost_minutes):
        ci, mean, minutes = row.test_ci, row.test_accuracy_mean, max(row.cost_minutes, 1 / 60)
        color = HIGHLIGHT if row.variant == recommended else TRAINING
        bars.append(
            ax.errorbar(minutes, mean, yerr=[[mean - ci.low], [ci.high - mean]], fmt="o", color=color, capsize=3)
        )
        labels.append((wrap(row.variant, 22), minutes, (mean, ci.low, ci.high), color))
    low, high, shown = _limits(
        [r.test_ci.low for r in rows] + [r.test_ci.high for r in rows], rows[0].baseline_accuracy
    )
    minutes = [max(r.cost_minutes, 1 / 60) for r in rows]
    ax.set(
        xscale="log",
        xlabel="whole cost per run, cache build included (minutes, log scale)",
        ylabel="test accuracy",
        ylim=(low, high),
    )
    _baseline(ax, rows[0].baseline_accuracy, shown, vertical=False)
    ax.set_xlim(min(minutes) / 1.6, max(minutes) * 2.2)
    decimal_axis(ax.xaxis, least=4)
    percent_axis(ax.yaxis)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _place_labels(ax, labels, [artist for bar in bars for artist in bar.get_children()])
    return fig


def _place_labels(ax, labels, avoid, fontsize: float = 7) -> None:
    """Each of LABELS, (text, x, (mean, low, high), color), beside its interval: right of
    it, left, above its top cap or below its bottom one, whichever first covers none of the
    AVOID artists (intervals, caps, points) nor a name already placed and stays inside the
    axes; where none is clear, the least covered. Placement runs on the drawn figure (the
    renderer's extents), after the layout, so later sizing does not move names onto bars."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # Padded by a couple of pixels: a vertical bar's extent has no width, so it would overlap nothing.
    taken = [box.padded(2) for artist in avoid for box in _extents(artist, renderer)]
    frame = ax.get_window_extent(renderer)
    for text, x, (mean, low, high), color in labels:
        candidates = (
            ((x, mean), (6, 0), "left", "center"),
            ((x, mean), (-6, 0), "right", "center"),
            ((x, high), (0, 5), "center", "bottom"),
            ((x, low), (0, -5), "center", "top"),
            ((x, high), (6, 2), "left", "bottom"),
            ((x, low), (6, -2), "left", "top"),
            ((x, high), (-6, 2), "right", "bottom"),
            ((x, low), (-6, -2), "right", "top"),
        )
        best = None
        for xy, offset, ha, va in candidates:
            note = ax.annotate(
                text, xy, xytext=offset, textcoords="offset points", ha=ha, va=va, fontsize=fontsize, color=color
            )
            box = note.get_window_extent(renderer)
            outside = box.width * box.height - _area(box, frame)
            clash = outside + sum(_area(box, other) for other in taken)
            if best is None or clash < best[0]:
                if best is not None:
                    best[1].remove()
                best = (clash, note, box)
            else:
                note.remove()
            if clash == 0:
                break
        taken.append(best[2])


def _extents(artist, renderer) -> list[Bbox]:
    """ARTIST's display boxes: a line collection's (an error bar's bars) one per segment, from
    its own transform, since a collection's window extent on a log axis is an empty box."""
    if isinstance(artist, LineCollection):
        shown = [artist.get_transform().transform(segment) for segment in artist.get_segments() if len(segment)]
        return [Bbox([points.min(axis=0), points.max(axis=0)]) for points in shown]
    return [artist.get_window_extent(renderer)]


def _area(a, b) -> float:
    """The area two display boxes share (0 when apart)."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0) * max(height, 0)


def gallery(items: list[dict], columns: int = 6):
    """ITEMS: {"image": uint8 array, "title": str}; one captioned thumbnail each, with
    room for three lines of caption between rows."""
    rows = max(1, int(np.ceil(len(items) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, items):
        ax.imshow(item["image"])
        ax.set_title(item["title"], fontsize=7, linespacing=1.15)
    fig.tight_layout(h_pad=1.2)
    return fig
