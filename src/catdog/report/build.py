"""`catdog report`: a study's review page (HTML, images embedded) and Markdown, built from
the tracking store alone and logged back to it as a `kind=report` run. The page opens
with its decision; the evidence follows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from sklearn.metrics import confusion_matrix

from catdog import decision_rule, stats, tracking
from catdog.report import assets, decision, evidence, figures, ledger, prose, provenance, searches
from catdog.report.paths import shown
from catdog.report.runs import Study, history, load_study, misclassified_thumbnails
from catdog.report.summary import Scores, per_image_scores, variant_rows
from catdog.tracking.record import FINE_TUNE_START_EPOCH

log = logging.getLogger(__name__)

GALLERY_SIZE = 18
CURVE_KEYS = ("accuracy", "val_accuracy", "loss", "val_loss")


def ui_base(tracking_uri: str, ui_url: str | None = None) -> str | None:
    """Where the MLflow UI of this store is, when known: a tracking server is its own UI."""
    if ui_url:
        return ui_url.rstrip("/")
    if urlparse(tracking_uri).scheme in ("http", "https"):
        return tracking_uri.rstrip("/")
    return None


def build_report(
    experiment: str,
    out_dir,
    ui_url: str | None = None,
    sweep: str | None = None,
    log_run: bool = True,
    control: str | None = None,
    all_pairs: bool = False,
    expected: int | None = None,
    ledger_path=None,
) -> dict:
    """Write OUT_DIR/report.html and report.md (with their figures) for EXPERIMENT, log
    them as a `kind=report` run when LOG_RUN, and return the report's content. UI_URL: the
    MLflow UI for run links (default: the tracking URI when a server); SWEEP: only the runs
    of this multirun; CONTROL: the variant to measure against (default:
    `decision.choose_control`'s); ALL_PAIRS: also every pair of variants, labelled
    exploratory; EXPECTED: the runs a study will have when complete (the page says when it
    has fewer); LEDGER_PATH: the project's test-split ledger, read and given this
    experiment's entry (None: the store's counts alone)."""
    out_dir = Path(out_dir)
    study = load_study(experiment, sweep)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("Report on %d runs of experiment %s", len(study.records), experiment)
    scores, val = per_image_scores(study), per_image_scores(study, "val")
    rows = variant_rows(study, scores)
    verdict = decision.decide(rows, scores, val, control, all_pairs, study.incumbent)
    content = _content(study, rows, (scores, val), verdict, out_dir, ui_url, sweep, expected, ledger_path)
    content["figures"], content["gallery"] = _figures(study, scores, val, rows, verdict, content["evidence"], out_dir)
    _render(content, out_dir)
    if log_run:
        content["report_run_id"] = _log_report_run(study, out_dir, verdict, content["line"])
    return content


def _content(study: Study, rows, split_scores, verdict, out_dir: Path, ui_url, sweep, expected, ledger_path) -> dict:
    """What the templates render, figures aside. SPLIT_SCORES: (test, validation) Scores."""
    scores, val = split_scores
    base = ui_base(mlflow.get_tracking_uri(), ui_url)
    exp_id = study.experiment.experiment_id
    link = (lambda run_id: f"{base}/#/experiments/{exp_id}/runs/{run_id}") if base else (lambda run_id: None)
    counts = ledger.in_store(study)
    experiment = study.experiment.name
    book = ledger.summary(ledger.record(ledger_path, experiment, counts)) if ledger_path else None
    setup = {**_setup(study, sweep, base), "expected": expected}
    content = {
        "setup": setup,
        "rows": rows,
        "decision": verdict,
        "ledger": counts,
        "book": book,
        "line": decision.line(experiment, verdict, counts["chosen_on_test"]),
        "rule": provenance.rule(study) | {"ledger_before": ledger.before(book, experiment, counts["first"])},
        "environment": provenance.environment(study),
        "evidence": _evidence(study, scores, verdict),
        "searches": [searches.section(run, out_dir, link, rows) for run in study.searches],
        "link": link,
        "alpha": stats.ALPHA,
        "margin": decision_rule.EQUIVALENCE_MARGIN,
        "supply": setup["splits"]["val"] + setup["splits"]["test"],
        "suspects": _suspect_count(suspect_labels(scores, rows)),
        "missing_predictions": len(study.records) - sum(len(s.records) for s in scores.values()),
        "missing_validation": len(study.records) - sum(len(s.records) for s in val.values()),
    }
    content["prose"] = prose.sentences(content)
    return content


def _setup(study: Study, sweep: str | None, base: str | None) -> dict:
    start, end = study.span
    params = study.records[0].run.data.params
    classes = [k[len("n_test_") :] for k in sorted(params) if k.startswith("n_test_")]
    exp_id = study.experiment.experiment_id
    return {
        "experiment": study.experiment.name,
        "sweep": sweep,
        "launches": len({r.run.data.tags.get("launch") or r.run.data.tags.get("sweep") for r in study.records}),
        "tracking_uri": shown(tracking.redact(mlflow.get_tracking_uri())),
        "experiment_link": f"{base}/#/experiments/{exp_id}?workflowType=machine_learning" if base else None,
        "data_source": shown(study.param("data_source") or params.get("data_source")),
        "data_id": study.param("data_id") or study.param("data_hash"),
        "splits": {s: study.records[0].count(s) for s in ("train", "val", "test")},
        "test_by_class": {c: params.get(f"n_test_{c}") for c in classes},
        "baseline": study.baseline,
        "start": start.strftime("%Y-%m-%d %H:%M UTC"),
        "end": end.strftime("%Y-%m-%d %H:%M UTC"),
        "wall_minutes": (end - start).total_seconds() / 60,
        "seeds": sorted({r.seed for r in study.records}, key=lambda s: (len(s), s)),
        "runs": len(study.records),
        "unfinished": study.unfinished,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _evidence(study: Study, scores: dict[str, Scores], verdict: decision.Decision) -> dict:
    reference = (verdict.control or verdict.recommended).variant
    return {
        "reference": reference,
        "differences": evidence.differences(study.groups, reference),
        "per_class": {g: evidence.per_class(s) for g, s in scores.items()},
        "calibration": {g: evidence.calibration(s) for g, s in scores.items()},
    }


def _figures(study: Study, scores, val, rows, verdict, found: dict, out_dir: Path) -> tuple[dict, list[dict]]:
    chosen = verdict.recommended.variant
    curves = {g: {k: [history(r, k) for r in records] for k in CURVE_KEYS} for g, records in study.groups.items()}
    fine_tune = {g: records[0].metric(FINE_TUNE_START_EPOCH) for g, records in study.groups.items()}
    figs = {
        "accuracy": figures.accuracy_by_variant(rows, chosen, val_intervals(rows, val)),
        "curves": figures.curves_by_variant(curves, study.baseline, fine_tune),
        "cost": figures.accuracy_against_cost(rows, chosen),
    }
    if found["calibration"]:
        reliability = {g: c["curve"] for g, c in found["calibration"].items()}
        positive = next(iter(scores.values())).classes[1]
        figs["reliability"] = figures.reliability(reliability, chosen, positive)
    gallery = []
    if chosen in scores:
        own = scores[chosen]
        matrix = sum(confusion_matrix(own.labels, p, labels=range(len(own.classes))) for p in own.predicted)
        runs = len(own.records)
        figs["confusion"] = figures.confusion(
            matrix, own.classes, f"{chosen}: test, summed over {prose.plural(runs, 'run')}"
        )
        gallery = _gallery(own, scores, rows)
        if gallery:
            figs["gallery"] = figures.gallery(gallery)
    saved = {name: assets.figure(fig, f"{name}.png", out_dir) for name, fig in figs.items()}
    for item in gallery:
        item["data_uri"] = assets.thumbnail_uri(item["image"])
    return saved, gallery


def val_intervals(rows, val: dict[str, Scores]) -> dict[str, stats.Interval]:
    """Each variant's validation accuracy interval: over seeds and images where its runs
    logged validation image by image, else from per-seed accuracies and binomial images."""
    out = {}
    for row in rows:
        scores = val.get(row.variant)
        if scores is not None and len(scores.records) == row.runs:
            out[row.variant] = stats.estimate(scores.correct, row.prior).interval
        else:
            out[row.variant] = stats.estimate_rates(row.val_accuracies, row.n_val, row.prior).interval
    return out


# A suspect label needs strong witnesses: a variant at this validation accuracy or above,
# wrong with this much confidence (the wrong class's probability) in every one of its runs,
# and a second such variant that agrees. Wrong in every run of a 74% model says little.
SUSPECT_VAL_ACCURACY = 0.95
SUSPECT_CONFIDENCE = 0.9


def suspect_labels(scores: dict[str, Scores], rows) -> np.ndarray | None:
    """Per test image, whether its label is suspect: at least two strong variants are
    confidently wrong about it in every run. None without two strong variants."""
    strong = {r.variant for r in rows if r.val_accuracy_mean >= SUSPECT_VAL_ACCURACY}
    votes = []
    for group, s in scores.items():
        if group in strong:
            p_true = np.where(s.labels == 1, s.probability, 1 - s.probability)
            votes.append((p_true <= 1 - SUSPECT_CONFIDENCE).all(axis=0))
    return np.sum(votes, axis=0) >= 2 if len(votes) >= 2 else None


def _suspect_count(flags: np.ndarray | None) -> dict | None:
    return None if flags is None else {"flagged": int(flags.sum()), "images": len(flags)}


def _gallery(own: Scores, scores: dict[str, Scores], rows) -> list[dict]:
    """The recommended variant's misclassified test images, most often wrong first, those
    whose label is suspect (`suspect_labels`) marked."""
    always = suspect_labels(scores, rows)
    wrong = (1 - own.correct).sum(axis=0)
    truth = np.where(own.labels == 1, own.probability, 1 - own.probability).mean(axis=0)
    order = sorted(np.flatnonzero(wrong), key=lambda i: (-wrong[i], truth[i]))[:GALLERY_SIZE]
    thumbs: dict[str, np.ndarray] = {}
    for record in own.records:
        thumbs.update(misclassified_thumbnails(record))
    items = []
    for i in order:
        image, label = own.images[i], own.classes[own.labels[i]]
        if image in thumbs:
            suspect = bool(always is not None and always[i])
            detail = "suspect label" if suspect else f"p(true) {truth[i]:.2f}"
            title = f"{Path(image).name}\n{label}, wrong {int(wrong[i])}/{len(own.records)}\n{detail}"
            items.append(
                {
                    "image": thumbs[image],
                    "id": image,
                    "label": label,
                    "wrong": int(wrong[i]),
                    "runs": len(own.records),
                    "p_true": float(truth[i]),
                    "suspect": suspect,
                    "title": title,
                }  # fmt: skip
            )
    return items


def _render(content: dict, out_dir: Path) -> None:
    env = Environment(
        loader=PackageLoader("catdog.report", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(prose.FILTERS)
    env.globals.update(plan=prose.plan, supply=content["supply"])
    (out_dir / "report.html").write_text(env.get_template("report.html.j2").render(**content))
    (out_dir / "report.md").write_text(env.get_template("report.md.j2").render(**content))


def _log_report_run(study: Study, out_dir: Path, verdict: decision.Decision, line: str) -> str:
    mlflow.set_experiment(experiment_id=study.experiment.experiment_id)
    tags = tracking.run_tags(
        "report",
        runs=len(study.records),
        recommended_variant=verdict.recommended.variant,
        recommended_run=verdict.recommended.best_run_id,
        decision=line,
    )
    with tracking.tracked_run(run_name=f"report-{datetime.now(UTC):%Y%m%d-%H%M%S}", tags=tags) as run:
        mlflow.log_params({k: study.param(k) for k in ("data_hash", "data_id") if study.param(k)})
        mlflow.log_artifact(str(out_dir / "report.html"))
        mlflow.log_artifact(str(out_dir / "report.md"))
    return run.info.run_id
