"""Command lines. Thin: parse, call a function that does the work, print one-line errors."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import hydra

from catdog import CONFIG_DIR, CatdogError

log = logging.getLogger("catdog")


def _fail(prog: str, exc: Exception) -> None:
    print(f"{prog}: error: {exc}", file=sys.stderr)
    raise SystemExit(2)


def _guarded(prog: str, work, interrupt_hint: str = ""):
    """WORK(), with bad input and Ctrl-C reported in one line instead of a traceback."""
    try:
        return work()
    except CatdogError as exc:
        _fail(prog, exc)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the run is marked KILLED in MLflow.{interrupt_hint}", file=sys.stderr)
        raise SystemExit(130)


def _sweep_tags() -> dict:
    """In a multirun, tags that group the sweep's runs: filter `tags.sweep = '<id>'`."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return {}
    return {"sweep": Path(hydra_cfg.sweep.dir).name, "sweep_job": hydra_cfg.job.num}


@hydra.main(version_base=None, config_path=str(CONFIG_DIR), config_name="train")
def train(cfg) -> float:
    """catdog-train: one tracked training run. Returns validation accuracy for sweepers."""
    from catdog import training

    result = _guarded("catdog-train", lambda: training.train(cfg, tags=_sweep_tags()))
    log.info(
        "run %s: val accuracy %.1f%%, test accuracy %.1f%% (baseline %.1f%%)",
        result.run_id,
        100 * result.val_accuracy,
        100 * result.test_accuracy,
        100 * result.baseline_accuracy,
    )
    return result.val_accuracy


@hydra.main(version_base=None, config_path=str(CONFIG_DIR), config_name="tune")
def tune(cfg) -> float:
    """catdog-tune: a Keras Tuner search, one parent run with a nested run per trial."""
    from catdog import tuning

    summary = _guarded(
        "catdog-tune",
        lambda: tuning.tune(cfg, tags=_sweep_tags()),
        " Run the same command again to resume the search.",
    )
    line = f"search {summary['search_id']} (run {summary['parent_run_id']}): best {summary['best']}"
    for label in ("best_test", "reference_test"):
        if label in summary:
            line += f"; {label.replace('_', ' ')} accuracy {summary[label]['mean']:.1%} ± {summary[label]['sd']:.1%}"
    log.info(line)
    return summary["best_score"]


def _tracking_defaults():
    from catdog.config import load

    return load("train").tracking


def main(argv: list[str] | None = None) -> None:
    """catdog evaluate | compare: work on runs already in the tracking store."""
    parser = argparse.ArgumentParser(prog="catdog", description=main.__doc__)
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: the project's store)")
    sub = parser.add_subparsers(dest="command", required=True)

    evaluate = sub.add_parser("evaluate", help="score a logged run's model on a labeled folder")
    evaluate.add_argument("run_id")
    evaluate.add_argument("folder", help="a folder with one sub-folder per class (cats/, dogs/)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    compare = sub.add_parser("compare", help="runs of an experiment by variant")
    compare.add_argument("--experiment", help="experiment name (default: the configured one)")
    compare.add_argument("--json", action="store_true", help="print the rows as JSON")
    compare.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown")
    compare.add_argument("--plot", metavar="PATH", help="also write a bar chart (PNG)")

    args = parser.parse_args(argv)
    import mlflow

    defaults = _tracking_defaults()
    mlflow.set_tracking_uri(args.tracking_uri or defaults.uri)
    try:
        if args.command == "evaluate":
            _evaluate(args)
        else:
            _compare(args, args.experiment or defaults.experiment)
    except CatdogError as exc:
        _fail("catdog", exc)


def _evaluate(args) -> None:
    from catdog.evaluation import evaluate_run

    result = evaluate_run(args.run_id, args.folder)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['folder']}: accuracy {result['accuracy']:.1%} on {result['n']} images (run {args.run_id})")
    for name, scores in result["per_class"].items():
        accuracy = "-" if scores["accuracy"] is None else f"{scores['accuracy']:.1%}"
        print(f"  {name:<8} {scores['correct']:>5}/{scores['n']:<5} {accuracy}")


def _compare(args, experiment: str) -> None:
    from catdog import plots, report

    rows = report.summarize(experiment)
    if args.json:
        print(report.to_json(rows))
    else:
        print(f"Experiment {experiment}")
        print(report.to_text(rows))
        print(report.footnote(rows))
    if args.markdown:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{report.to_markdown(rows)}\n\n{report.footnote(rows)}\n")
    if args.plot and rows:
        path = Path(args.plot)
        path.parent.mkdir(parents=True, exist_ok=True)
        baseline = rows[0]["baseline_accuracy"]
        plots.variant_comparison(rows, baseline, f"{experiment}: test accuracy by variant").savefig(path, dpi=120)
