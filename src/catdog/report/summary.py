"""A study's numbers: each variant's per-image scores on a split and its row of figures."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, fields

import numpy as np

from catdog import stats
from catdog.report.earlier import earlier_cache_build, earlier_seed_variance
from catdog.report.runs import RunRecord, Study, predictions
from catdog.tracking.record import FEATURES_COMPUTED, FEATURES_SECONDS, FIT_SECONDS, TRAIN_IMAGES_PER_S


@dataclass(frozen=True)
class Scores:
    """One variant's results on one split, on the images every run of the study scored, one
    row per run (seeds x images)."""

    records: list[RunRecord]
    images: list[str]
    classes: list[str]
    labels: np.ndarray  # (n,) class index
    predicted: np.ndarray  # (k, n) class index
    probability: np.ndarray  # (k, n) probability of classes[1]
    losses: np.ndarray | None = None  # (k, n) per-image log loss (None: logged before it was kept)

    @property
    def seeds(self) -> list[str]:
        return [r.seed for r in self.records]

    @property
    def correct(self) -> np.ndarray:
        return (self.predicted == self.labels).astype(float)

    @property
    def brier(self) -> np.ndarray:
        """Per-image Brier score (sklearn's binary definition): additive over images."""
        return (self.probability - (self.labels == 1)) ** 2


def per_image_scores(study: Study, split: str = "test") -> dict[str, Scores]:
    """Each variant's Scores on SPLIT over the images that all its runs, and every other
    variant's, scored. Runs logged without that split's table are left out."""
    tables = {
        g: [(r, t) for r in records if (t := predictions(r, split)) is not None] for g, records in study.groups.items()
    }
    tables = {g: runs for g, runs in tables.items() if runs}
    if not tables:
        return {}
    images = sorted(set.intersection(*(set(t["image"]) for runs in tables.values() for _, t in runs)))
    out = {}
    for group, runs in tables.items():
        frames = [t.set_index("image").loc[images] for _, t in runs]
        classes = [c[len("p_") :] for c in frames[0].columns if c.startswith("p_")]
        index = {name: i for i, name in enumerate(classes)}
        has_loss = all("loss" in f.columns for f in frames)
        out[group] = Scores(
            records=[r for r, _ in runs],
            images=images,
            classes=classes,
            labels=frames[0]["label"].map(index).to_numpy(),
            predicted=np.array([f["predicted"].map(index).to_numpy() for f in frames]),
            probability=np.array([f[f"p_{classes[1]}"].to_numpy(dtype=float) for f in frames]),
            losses=np.array([f["loss"].to_numpy(dtype=float) for f in frames]) if has_loss else None,
        )
    return out


@dataclass(frozen=True)
class VariantRow:
    """One variant of a study: validation per seed (the choosing split), test with its
    interval, cost and provenance. What the terminal, the decision and both pages show."""

    variant: str
    runs: int
    seeds: list[str]
    val_accuracies: list[float]
    val_correct: list[int]
    n_val: int
    val_losses: list[float | None]
    test: stats.Estimate  # over seeds and images (logit scale), or one checkpoint's
    test_accuracies: list[float]
    test_correct: list[int]
    n_test: int
    baseline_accuracy: float
    p_vs_baseline: float  # the worst seed's exact binomial p
    not_above_baseline: list[str]
    best_run_id: str
    brier: stats.Estimate | None
    wall_seconds: list[float]  # each run's, from its start to its end: the fit on a warm feature cache
    cost_seconds: list[float]  # each run's whole cost as a user pays it: its wall time and the cache build
    cache_seconds: float | None  # the feature cache's build, measured where a run built it; None: unknown
    cache_borrowed: bool  # measured by an earlier run outside this study (every run here found it built)
    cached: bool  # its runs train on a feature cache
    epochs: float | None
    images_per_s: float | None
    peak_memory_gb: float | None  # the largest of its runs' own peaks (MLflow system metrics)
    contended: int  # runs that shared the CPU with other work (load average)
    commits: list[str]
    seed_variance: stats.SeedVariance | None  # measured here, borrowed (named), or None: unknown

    @property
    def val_accuracy_mean(self) -> float:
        return float(np.mean(self.val_accuracies))

    @property
    def val_loss_mean(self) -> float | None:
        return _mean(self.val_losses)

    @property
    def test_accuracy_mean(self) -> float:
        return self.test.mean

    @property
    def test_ci(self) -> stats.Interval:
        return self.test.interval

    @property
    def wall_minutes(self) -> float:
        """Mean wall time per run (on a warm feature cache, for variants that have one)."""
        return statistics.fmean(self.wall_seconds) / 60

    @property
    def cost_known(self) -> bool:
        """Its whole cost is measured: no feature cache, or its build timed by some run."""
        return not self.cached or self.cache_seconds is not None

    @property
    def cost_minutes(self) -> float:
        """Mean whole cost per run, the feature cache's build included: what the rule weighs."""
        return statistics.fmean(self.cost_seconds) / 60

    @property
    def prior(self) -> stats.SeedVariance | None:
        """The seed variance borrowed from an earlier study, for a variant run once here."""
        return self.seed_variance if self.runs == 1 else None

    @property
    def seed_note(self) -> str:
        """Where the seed variance behind its intervals comes from."""
        if self.runs > 1:
            return f"{self.runs} seeds"
        if self.seed_variance is None:
            return "one checkpoint; seed variance unknown"
        return f"one run; seed variance from {self.seed_variance.source}"

    def to_json(self) -> dict:
        """The row with intervals as [low, high] and estimates as objects, for json.dumps."""

        def plain(value):
            if isinstance(value, stats.Interval):
                return [value.low, value.high]
            if isinstance(value, stats.Estimate):
                return {"mean": value.mean, "interval": plain(value.interval), "method": value.method}
            if isinstance(value, stats.SeedVariance):
                return {"var": value.var, "df": value.df, "source": value.source}
            return value

        out = {f.name: plain(getattr(self, f.name)) for f in fields(self)}
        means = {"val_accuracy_mean": self.val_accuracy_mean, "val_loss_mean": self.val_loss_mean}
        return out | means | {"wall_minutes": self.wall_minutes, "cost_minutes": self.cost_minutes}


def variant_row(
    group: str, records: list[RunRecord], baseline: float, scores: Scores | None, prior=None, build=None
) -> VariantRow:
    """Validation per seed, test with an interval over seeds and images (PRIOR: a seed
    variance borrowed from an earlier study when the variant ran once here), the worst
    seed's exact binomial p against the baseline, Brier score, cost (BUILD: the feature
    cache's build time an earlier run measured, for a variant whose cache no run here
    built) and code version. The best run is chosen by validation, never by test."""
    tests = [r.test_accuracy for r in records]
    measured = _cache_build(records)
    cache = measured if measured is not None else build
    if scores is not None:
        test = stats.estimate(scores.correct, prior)
    else:  # runs from before per-image predictions were logged: one checkpoint's interval
        best = max(records, key=lambda r: r.val_accuracy)
        wilson = stats.wilson(best.test_correct, best.n_test)
        test = stats.Estimate(float(np.mean(tests)), float("nan"), float("inf"), wilson, "Wilson (one checkpoint)")
    p_values = [stats.above_baseline_p(r.test_correct, r.n_test, baseline) for r in records]
    memory = [r.peak_memory_mb for r in records if r.peak_memory_mb is not None]
    return VariantRow(
        variant=group,
        runs=len(records),
        seeds=[r.seed for r in records],
        val_accuracies=[r.val_accuracy for r in records],
        val_correct=[r.val_correct for r in records],
        n_val=records[0].count("val"),
        val_losses=[r.val_loss for r in records],
        test=test,
        test_accuracies=tests,
        test_correct=[r.test_correct for r in records],
        n_test=records[0].n_test,
        baseline_accuracy=baseline,
        p_vs_baseline=max(p_values),
        not_above_baseline=[r.id for r, p in zip(records, p_values) if p >= stats.ALPHA],
        best_run_id=max(records, key=lambda r: r.val_accuracy).id,
        brier=stats.estimate(scores.brier, None) if scores is not None else None,
        wall_seconds=[r.wall_seconds for r in records],
        cost_seconds=_whole_costs(records, cache),
        cache_seconds=cache,
        cache_borrowed=measured is None and build is not None,
        cached=_cached(records),
        epochs=_mean([_epochs(r) for r in records]),
        images_per_s=_mean([r.metric(TRAIN_IMAGES_PER_S) for r in records]),
        peak_memory_gb=max(memory) / 1024 if memory else None,
        contended=sum(r.contended for r in records),
        commits=sorted({r.commit for r in records}),
        seed_variance=stats.seed_variance(tests) if len(records) > 1 else prior,
    )


def _cache_build(records: list[RunRecord]) -> float | None:
    """The feature cache's build time, from a run of the variant that built it (computed
    image views); None where every run found it built (or the variant has none)."""
    built = [r.metric(FEATURES_SECONDS) for r in records if (r.metric(FEATURES_COMPUTED) or 0) > 0]
    return max(built) if built else None


def _cached(records: list[RunRecord]) -> bool:
    return any(r.metric(FEATURES_SECONDS) is not None for r in records)


def _whole_costs(records: list[RunRecord], build: float | None) -> list[float]:
    """Each run's cost as a user who runs it alone pays it: its wall time plus the feature
    cache's BUILD (measured here or by an earlier run), or plus its own feature time (a
    warm load, or runs made before it was recorded: nothing), since the backbone pass runs
    before the run opens."""
    return [r.wall_seconds + (build if build is not None else r.metric(FEATURES_SECONDS) or 0.0) for r in records]


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _epochs(record: RunRecord) -> float | None:
    """Epochs trained: images/s x fit time / training images (runs log no epoch count)."""
    rate, seconds = record.metric(TRAIN_IMAGES_PER_S), record.metric(FIT_SECONDS)
    if rate is None or seconds is None:
        return None
    return round(rate * seconds / record.count("train"))


def variant_rows(study: Study, scores: dict[str, Scores] | None = None, priors: dict | None = None) -> list[VariantRow]:
    """Every variant's row. PRIORS: borrowed seed variances by variant (`seed_priors`)."""
    scores = per_image_scores(study) if scores is None else scores
    priors = seed_priors(study) if priors is None else priors
    builds = cache_builds(study)
    return [
        variant_row(g, rs, study.baseline, scores.get(g), priors.get(g), builds.get(g))
        for g, rs in study.groups.items()
    ]


def cache_builds(study: Study) -> dict[str, float]:
    """For each variant on a feature cache that every run here found built, the build time
    an earlier run of it measured, if any (`earlier_cache_build`)."""
    found = {
        g: earlier_cache_build(study, g)
        for g, records in study.groups.items()
        if _cache_build(records) is None and _cached(records)
    }
    return {g: seconds for g, seconds in found.items() if seconds is not None}


def seed_priors(study: Study) -> dict[str, stats.SeedVariance]:
    """For each variant run once here, the seed variance of an earlier study of it, if any."""
    found = {g: earlier_seed_variance(study, g) for g, records in study.groups.items() if len(records) == 1}
    return {g: prior for g, prior in found.items() if prior is not None}


COLUMNS = ["variant", "runs", "val right per seed", "val loss", "test accuracy (95% CI)", "p vs baseline", "best run"]


def _cells(row: VariantRow) -> list[str]:
    p = row.p_vs_baseline
    return [
        row.variant,
        str(row.runs),
        f"{', '.join(map(str, row.val_correct))} of {row.n_val}",
        "-" if row.val_loss_mean is None else f"{row.val_loss_mean:.3f}",
        f"{100 * row.test_accuracy_mean:.1f}% {row.test_ci.text()}",
        "< 0.001" if p < 0.001 else f"{p:.3f}",
        row.best_run_id,
    ]


def to_text(rows: list[VariantRow]) -> str:
    """The variant table as fixed-width text for a terminal."""
    table = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(rows: list[VariantRow]) -> list[dict]:
    return [row.to_json() for row in rows]
