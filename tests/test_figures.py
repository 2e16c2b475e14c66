"""The review page's figures, drawn from small hand-built inputs of the kinds `build` and
`searches` pass, and checked on the drawn matplotlib objects: tick labels, label
positions against error bars, loss-axis formatters, the reliability chart's empty bins."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.ticker import NullFormatter
from matplotlib.transforms import Bbox

from catdog import plots, stats
from catdog.report import evidence, figures, search_figures
from catdog.report.summary import VariantRow

pytestmark = pytest.mark.unit


def row(variant: str, val: list[float], val_ci, test: float, test_ci, minutes: float) -> tuple[VariantRow, object]:
    """A VariantRow as `summary.variant_row` makes it (what the figures read filled in) and its
    validation interval, as `build.val_intervals` gives it."""
    n_val, n_test = 1000, 1000
    tests = [test + d for d in np.linspace(-0.004, 0.004, len(val))]
    return VariantRow(
        variant=variant,
        runs=len(val),
        seeds=[str(i) for i in range(len(val))],
        val_accuracies=val,
        val_correct=[round(v * n_val) for v in val],
        n_val=n_val,
        val_losses=[0.05] * len(val),
        test=stats.Estimate(test, 0.01, len(val) - 1, stats.Interval(*test_ci), "t"),
        test_accuracies=tests,
        test_correct=[round(t * n_test) for t in tests],
        n_test=n_test,
        baseline_accuracy=0.5,
        p_vs_baseline=1e-9,
        not_above_baseline=[],
        best_run_id="0" * 32,
        brier=None,
        wall_seconds=[minutes * 60] * len(val),
        cost_seconds=[minutes * 60] * len(val),
        cache_seconds=None,
        cache_borrowed=False,
        cached=False,
        epochs=20,
        images_per_s=None,
        peak_memory_gb=None,
        contended=0,
        commits=["abc1234"],
        seed_variance=None,
    ), stats.Interval(*val_ci)


# Shaped like experiments/resolution-explore: four variants within two points of each
# other near 99%, each a few seconds per run.
NARROW = [
    row("frozen-224-linear", [0.9865, 0.99, 0.99, 0.988, 0.988], (0.9772, 0.9935), 0.982, (0.954, 0.993), 0.137),
    row("frozen-256-linear", [0.9885, 0.991, 0.991, 0.992, 0.991], (0.9815, 0.995), 0.989, (0.9625, 0.9968), 0.143),
    row("frozen-288-linear", [0.988, 0.9885, 0.99, 0.989, 0.991], (0.980, 0.9945), 0.990, (0.9675, 0.997), 0.16),
    row("frozen-320-linear", [0.9885, 0.988, 0.988, 0.989, 0.9885], (0.9775, 0.9932), 0.985, (0.956, 0.995), 0.2),
]
# Shaped like experiments/reference-study: from chance to 96%, from seconds to minutes.
WIDE = [
    row("cnn", [0.65, 0.57, 0.60], (0.53, 0.68), 0.543, (0.49, 0.60), 5.3),
    row("augmented", [0.51, 0.635, 0.505], (0.375, 0.71), 0.562, (0.41, 0.70), 7.5),
    row("preprocessed", [0.70, 0.705, 0.735], (0.67, 0.75), 0.742, (0.69, 0.79), 7.6),
    row("transfer", [0.963, 0.962, 0.965], (0.951, 0.973), 0.955, (0.915, 0.975), 0.43),
]


def shown_ticks(axis) -> list[tuple[float, str]]:
    """(value, label) of the major ticks inside the view that carry a label, once drawn."""
    return [(t.get_loc(), t.label1.get_text()) for t in _shown(axis)]


def _shown(axis):
    low, high = sorted(axis.get_view_interval())
    return [t for t in axis.get_major_ticks() if low <= t.get_loc() <= high and t.label1.get_text()]


def overlapping(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j and a.overlaps(b)]


@pytest.mark.parametrize("study", [NARROW, WIDE], ids=["narrow", "wide"])
def test_accuracy_tick_labels_print_their_values_exactly_and_apart(study):
    rows = [r for r, _ in study]
    fig = figures.accuracy_by_variant(rows, rows[1].variant, {r.variant: ci for r, ci in study})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        ticks = shown_ticks(ax.xaxis)
        values = np.array([v for v, _ in ticks])
        labels = [text for _, text in ticks]
        assert len(ticks) >= 3, labels
        assert len(set(labels)) == len(labels), labels
        # Each label is its tick's value exactly (a 97.75% tick printed 97.8% would fail).
        assert [float(t.rstrip("%")) for t in labels] == pytest.approx(100 * values, abs=1e-9), labels
        # And with no more decimals than the step needs: one shared count, the fewest that do.
        decimals = {len(t.rstrip("%").partition(".")[2]) for t in labels}
        assert len(decimals) == 1, labels
        step = np.diff(100 * values).min()
        assert decimals.pop() == next(d for d in range(6) if abs(round(step, d) - step) < 1e-9), labels
        assert not overlapping([t.label1.get_window_extent(renderer) for t in _shown(ax.xaxis)]), labels


@pytest.mark.parametrize("study", [NARROW, WIDE], ids=["narrow", "wide"])
def test_cost_axis_labels_its_whole_range_plainly(study):
    rows = [r for r, _ in study]
    fig = figures.accuracy_against_cost(rows, rows[1].variant)
    fig.canvas.draw()
    ax = fig.axes[0]
    ticks = shown_ticks(ax.xaxis)
    labels = [text for _, text in ticks]
    assert len(ticks) >= 4, labels
    assert all(float(text) == pytest.approx(v) for v, text in ticks), labels  # plain minutes, no 10^x
    # Spread across the axis (in decades), not bunched in one corner of it.
    values = [v for v, _ in ticks]
    low, high = ax.get_xlim()
    assert np.log10(max(values) / min(values)) >= 0.5 * np.log10(high / low), labels
    assert isinstance(ax.xaxis.get_minor_formatter(), NullFormatter)
    assert len({text for _, text in shown_ticks(ax.yaxis)}) == len(shown_ticks(ax.yaxis))


@pytest.mark.parametrize("study", [NARROW, WIDE], ids=["narrow", "wide"])
def test_cost_labels_cover_no_error_bar_nor_each_other(study):
    rows = [r for r, _ in study]
    fig = figures.accuracy_against_cost(rows, rows[1].variant)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    names = [t for t in ax.texts if t.get_text().replace("\n", "") in {r.variant for r in rows}]
    assert len(names) == len(rows)
    labels = [t.get_window_extent(renderer) for t in names]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == len(rows)
    # The points and caps by their window extents; the bars by their segments, since a line
    # collection's window extent on a log axis is an empty box that overlaps nothing.
    drawn = [artist.get_window_extent(renderer) for bar in bars for artist in bar.get_children()[:-1]]
    for bar in bars:
        [segments] = bar.lines[2]
        for points in segments.get_transform().transform(np.concatenate(segments.get_segments())).reshape(-1, 2, 2):
            drawn.append(Bbox(points))
    clashes = [(n.get_text(), i) for n, box in zip(names, labels) for i, bar in enumerate(drawn) if box.overlaps(bar)]
    assert not clashes
    assert not overlapping(labels)
    frame = ax.get_window_extent(renderer)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in labels)


def _history(start: float, end: float, epochs: int = 20, seeds: int = 3) -> list[list[float]]:
    """Per seed, a loss falling geometrically from START to END."""
    return [list(np.geomspace(start, end, epochs) * (1 + 0.03 * s)) for s in range(seeds)]


def test_every_loss_axis_uses_one_formatter():
    # One variant whose losses stay inside a decade (where matplotlib labels minor ticks in
    # scientific notation), one spanning five decades, as the published pages' did.
    curves = {
        "frozen-224-linear": {
            "accuracy": [[0.9] * 20] * 3,
            "val_accuracy": [[0.98] * 20] * 3,
            "loss": _history(0.35, 0.04),
            "val_loss": _history(0.08, 0.045),
        },
        "transfer": {
            "accuracy": [[0.99] * 20] * 3,
            "val_accuracy": [[0.96] * 20] * 3,
            "loss": _history(1.5, 0.0008),
            "val_loss": _history(0.2, 0.15),
        },
    }
    fig = figures.curves_by_variant(curves, 0.5, {"frozen-224-linear": None, "transfer": 5})
    fig.canvas.draw()
    losses = [ax for ax in fig.axes if ax.get_yscale() == "log"]
    assert len(losses) == 2
    search = plots.objective_against([1, 2, 3], [0.05, 0.048, 0.0455], "trial", "val_loss", running_best=True)
    search.canvas.draw()
    axes = [ax.yaxis for ax in losses] + [search.axes[0].yaxis]
    assert len({type(axis.get_major_formatter()) for axis in axes}) == 1
    assert all(isinstance(axis.get_minor_formatter(), NullFormatter) for axis in axes)
    for axis in axes:
        labels = [text for _, text in shown_ticks(axis)]
        assert len(labels) >= 3, labels
        assert all(float(text) >= 0 and "e" not in text and "$" not in text for text in labels), labels
        assert all(not t.label1.get_text() for t in axis.get_minor_ticks())


def _near_perfect(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes and probabilities of a model sure of almost every image: its predictions
    sit in the corners and a few lie in between."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.where(y == 1, 1 - rng.beta(0.3, 60, n), rng.beta(0.3, 60, n))
    p[:6] = [0.35, 0.38, 0.62, 0.64, 0.66, 0.81]
    return y, p


def test_reliability_bins_count_each_equal_width_bin():
    predicted, observed, counts = evidence.reliability_bins([0, 1, 1, 0, 1], [0.05, 0.95, 1.0, 0.12, 0.17], bins=10)
    assert counts.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert predicted[0] == pytest.approx(0.05) and predicted[9] == pytest.approx(0.975)
    assert observed[1] == pytest.approx(0.5) and np.isnan(observed[2:9]).all()


def test_reliability_leaves_empty_bins_undrawn_and_shows_counts():
    curves = {
        "frozen-256-linear": evidence.reliability_bins(*_near_perfect()),
        "cnn": evidence.reliability_bins(*_near_perfect(seed=1)),
    }
    _, _, counts = curves["frozen-256-linear"]
    empty = counts == 0
    assert empty.any() and (~empty).sum() >= 4
    fig = figures.reliability(curves, "frozen-256-linear", "dogs")
    fig.canvas.draw()
    ax, below = fig.axes
    line = next(x for x in ax.lines if x.get_label() == "frozen-256-linear")
    x = np.asarray(line.get_xdata(), float)
    # NaN where a bin is empty: matplotlib breaks the line there, so no segment crosses it.
    assert np.isnan(x[empty]).all() and np.isfinite(x[~empty]).all()
    segments = [s for s in np.split(np.arange(len(x)), np.flatnonzero(np.isnan(x))) if len(s)]
    assert all(not empty[s[~np.isnan(x[s])]].any() for s in segments)
    points = ax.collections[0]
    assert len(points.get_offsets()) == (~empty).sum()
    sizes = points.get_sizes()
    held = counts[~empty]
    assert np.argsort(sizes, kind="stable").tolist() == np.argsort(held, kind="stable").tolist()
    assert sizes.max() > 10 * sizes.min()  # a corner bin of hundreds beside a bin of one
    bars = [p for p in below.patches if p.get_height() > 0]
    heights = sorted(p.get_height() for p in bars)
    both = np.concatenate([c[2] for c in curves.values()])
    assert heights == sorted(both[both > 0].tolist())
    assert below.get_yscale() == "log" and [text for _, text in shown_ticks(below.yaxis)]


def test_race_ticks_print_their_values_exactly():
    settings = [
        {
            "running": [
                {"seeds": k, "mean": m, "low": m - 0.004 / k, "high": m + 0.004 / k}
                for k, m in enumerate([0.981, 0.9825, 0.983], start=1)
            ],
            "leader": leader,
            "dropped": False,
        }
        for leader in (True, False)
    ]
    fig = search_figures.race(settings, "search-1")
    fig.canvas.draw()
    ticks = shown_ticks(fig.axes[0].yaxis)
    labels = [text for _, text in ticks]
    assert len(set(labels)) == len(labels) >= 3
    assert [float(t.rstrip("%")) for t in labels] == pytest.approx([100 * v for v, _ in ticks], abs=1e-9)


def test_decimals_follow_the_step_on_linear_axes_and_each_tick_on_log_axes():
    fig = plots.plt.figure()
    ax = fig.add_subplot()
    linear = plots.Decimals(100, "%")
    linear.set_axis(ax.xaxis)
    assert linear.format_ticks([0.9775, 0.98, 0.9825]) == ["97.75%", "98.00%", "98.25%"]
    assert linear.format_ticks([0.97, 0.975, 0.98]) == ["97.0%", "97.5%", "98.0%"]
    ax.set_yscale("log")
    log = plots.Decimals()
    log.set_axis(ax.yaxis)
    assert log.format_ticks([0.0001, 3 * 0.1, 10.0]) == ["0.0001", "0.3", "10"]
    plots.plt.close(fig)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plots.plt.close("all")
