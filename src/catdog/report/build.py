"""`catdog report`: a study's review page (HTML, images embedded) and Markdown, built from
the tracking store alone and logged back to it as a `kind=report` run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from catdog import stats, tracking
from catdog.report import assets, figures, searches
from catdog.report.runs import Study, confusion, history, load_study, misclassified_thumbnails
from catdog.report.summary import pairwise, per_image, variant_rows

log = logging.getLogger(__name__)

GALLERY_SIZE = 18


def ui_base(tracking_uri: str, ui_url: str | None = None) -> str | None:
    """Where the MLflow UI of this store is, when known: a tracking server is its own UI."""
    if ui_url:
        return ui_url.rstrip("/")
    if urlparse(tracking_uri).scheme in ("http", "https"):
        return tracking_uri.rstrip("/")
    return None


def _gallery_items(tables: dict, class_names) -> list[dict]:
    """Test images most often misclassified across every run, with their thumbnails."""
    import pandas as pd

    rows = pd.concat([table for runs in tables.values() for _, table in runs.values()])
    p_true = sum(rows[f"p_{c}"].where(rows["label"] == c, 0.0) for c in class_names)
    per_image = (
        rows.assign(wrong=~rows["correct"].astype(bool), p_true=p_true)
        .groupby(level=0)
        .agg(wrong=("wrong", "sum"), runs=("wrong", "size"), p_true=("p_true", "mean"), label=("label", "first"))
    )
    per_image = per_image[per_image["wrong"] > 0].assign(rate=lambda d: d["wrong"] / d["runs"])
    worst = per_image.sort_values(["rate", "p_true"], ascending=[False, True]).head(GALLERY_SIZE)
    thumbs: dict[str, np.ndarray] = {}
    records = iter([record for runs in tables.values() for record, _ in runs.values()])
    items = []
    for image, row in worst.iterrows():
        while image not in thumbs and (record := next(records, None)) is not None:
            thumbs.update(misclassified_thumbnails(record))
        if image in thumbs:
            items.append(
                {
                    "image": thumbs[image],
                    "id": image,
                    "label": row["label"],
                    "wrong": int(row["wrong"]),
                    "runs": int(row["runs"]),
                    "p_true": float(row["p_true"]),
                    "title": f"{Path(image).name}\n{row['label']}: wrong {row['wrong']}/{row['runs']}\n"
                    f"p(true) = {row['p_true']:.2f}",
                }
            )
    return items


def build_report(
    experiment: str, out_dir, ui_url: str | None = None, sweep: str | None = None, log_run: bool = True
) -> dict:
    """Write OUT_DIR/report.html and report.md (with their figures) for EXPERIMENT (only
    the runs of multirun SWEEP if given), log them as a report run, and return the
    report's content."""
    out_dir = Path(out_dir)
    study = load_study(experiment, sweep)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("Report on %d runs of experiment %s", len(study.records), experiment)
    rows = variant_rows(study)
    tables = per_image(study)
    comparisons = pairwise(study, tables)
    base = ui_base(mlflow.get_tracking_uri(), ui_url)
    exp_id = study.experiment.experiment_id
    link = (lambda run_id: f"{base}/#/experiments/{exp_id}/runs/{run_id}") if base else (lambda run_id: None)
    class_names = [k[len("n_test_") :] for k in sorted(study.records[0].run.data.params) if k.startswith("n_test_")]

    figs = {"accuracy": assets.figure(figures.accuracy_by_variant(rows), "accuracy.png", out_dir)}
    curves = {
        g: {k: [history(r, k) for r in records] for k in ("accuracy", "val_accuracy")}
        for g, records in study.groups.items()
    }
    figs["curves"] = assets.figure(figures.curves_by_variant(curves, study.baseline), "curves.png", out_dir)
    matrices = {}
    for group, records in study.groups.items():
        found = [m for m in (confusion(r) for r in records) if m is not None]
        if found:
            matrices[group] = np.sum(found, axis=0)
    if matrices:
        figs["confusion"] = assets.figure(figures.confusion_grid(matrices, class_names), "confusion.png", out_dir)
    gallery = _gallery_items(tables, class_names) if tables else []
    for item in gallery:
        item["data_uri"] = assets.thumbnail_uri(item["image"])
    if gallery:
        figs["gallery"] = assets.figure(figures.gallery(gallery), "misclassified.png", out_dir, dpi=72)
    search_sections = [searches.section(run, out_dir, link) for run in study.searches]

    start, end = study.span
    params = study.records[0].run.data.params
    setup = {
        "experiment": experiment,
        "sweep": sweep,
        "tracking_uri": tracking.redact(mlflow.get_tracking_uri()),
        "experiment_link": f"{base}/#/experiments/{exp_id}?workflowType=machine_learning" if base else None,
        "data_source": study.param("data_source") or params.get("data_source"),
        "data_hash": study.param("data_id") or study.param("data_hash"),
        "splits": {
            s: sum(int(v) for k, v in params.items() if k.startswith(f"n_{s}_")) for s in ("train", "val", "test")
        },
        "test_by_class": {c: params.get(f"n_test_{c}") for c in class_names},
        "baseline": study.baseline,
        "commits": sorted({r.run.data.tags.get("mlflow.source.git.commit", "unknown")[:10] for r in study.records}),
        "start": start.strftime("%Y-%m-%d %H:%M UTC"),
        "end": end.strftime("%Y-%m-%d %H:%M UTC"),
        "wall_minutes": (end - start).total_seconds() / 60,
        "seeds": sorted({r.seed for r in study.records}, key=lambda s: (len(s), s)),
        "runs": len(study.records),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    flagged = [
        {"variant": row["variant"], "run_id": run_id, "link": link(run_id)}
        for row in rows
        for run_id in row["not_above_baseline"]
    ]
    content = {
        "setup": setup,
        "rows": rows,
        "comparisons": comparisons,
        "figures": figs,
        "gallery": gallery,
        "flagged": flagged,
        "searches": search_sections,
        "link": link,
        "alpha": stats.ALPHA,
        "missing_predictions": len(study.records) - sum(len(v) for v in tables.values()),
    }
    env = Environment(
        loader=PackageLoader("catdog.report", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=_pct, pts=_pts, interval=_interval, pval=_pval, cell=_cell)
    (out_dir / "report.html").write_text(env.get_template("report.html.j2").render(**content))
    (out_dir / "report.md").write_text(env.get_template("report.md.j2").render(**content))
    if log_run:
        content["report_run_id"] = _log_report_run(study, out_dir)
    return content


def _log_report_run(study: Study, out_dir: Path) -> str:
    mlflow.set_experiment(experiment_id=study.experiment.experiment_id)
    with tracking.tracked_run(
        run_name=f"report-{datetime.now(UTC):%Y%m%d-%H%M%S}", tags=tracking.run_tags("report", runs=len(study.records))
    ) as run:
        mlflow.log_params({k: study.param(k) for k in ("data_hash", "data_id") if study.param(k)})
        mlflow.log_artifact(str(out_dir / "report.html"))
        mlflow.log_artifact(str(out_dir / "report.md"))
    return run.info.run_id


def _pct(value, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def _pts(value) -> str:
    return "-" if value is None else f"{100 * value:+.1f} pts"


def _interval(ci, points: bool = False) -> str:
    if ci is None:
        return "-"
    if points:
        return f"[{100 * ci.low:+.1f}, {100 * ci.high:+.1f}]"
    return f"[{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def _pval(p) -> str:
    if p is None or p != p:
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _cell(value) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
