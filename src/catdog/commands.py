"""The `catdog` subcommands over the tracking store: the review (compare, report, plan,
reproduce, runs, upload) and a logged model (evaluate, promote, predict). Each handler
parses nothing and prints what a function returns."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from catdog import CatdogError


def parser(description: str) -> argparse.ArgumentParser:
    """The `catdog` command line: a tracking URI, then one subcommand."""
    out = argparse.ArgumentParser(prog="catdog", description=description)
    out.add_argument("--tracking-uri", help="MLflow tracking URI (default: the project's store)")
    sub = out.add_subparsers(dest="command", required=True)
    _review_commands(sub)
    _model_commands(sub)
    return out


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _review_commands(sub) -> None:
    compare = sub.add_parser("compare", help="runs of an experiment by variant, with 95%% intervals")
    compare.add_argument("--experiment", help="experiment name (default: the configured one)")
    compare.add_argument("--json", action="store_true", help="print the rows as JSON")
    compare.set_defaults(func=_compare)

    report = sub.add_parser("report", help="the study's review page (HTML + Markdown) and decision, logged to MLflow")
    report.add_argument("--experiment", help="experiment name (default: the configured one)")
    report.add_argument("--out", metavar="DIR", help="output folder (default: reports/<experiment>/, git-ignored)")
    report.add_argument("--sweep", help="only the runs of this multirun (its `sweep` tag)")
    report.add_argument("--ui-url", help="MLflow UI address for run links (default: the tracking URI if a server)")
    report.add_argument("--control", metavar="VARIANT", help="the variant to measure against (default: chosen)")
    report.add_argument("--all-pairs", action="store_true", help="also every pair of variants, as exploratory")
    report.set_defaults(func=_report)

    plan = sub.add_parser("plan", help="what a budget buys and what a difference needs, from a variant's runs")
    plan.add_argument("--experiment", help="experiment name (default: the configured one)")
    plan.add_argument("--variant", help="only this variant (default: every variant)")
    plan.add_argument("--budget-minutes", type=_positive, help="a search's wall-clock budget, in minutes")
    plan.add_argument("--difference", type=_positive, action="append", metavar="POINTS",
                      help="a difference to detect, in points (repeatable; default: 1 and 2)")  # fmt: skip
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(func=_plan)

    reproduce = sub.add_parser("reproduce", help="train a logged run again at today's code and check it matches")
    reproduce.add_argument("run_id")
    reproduce.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. data.url=file:///... (data moved)")
    reproduce.add_argument("--json", action="store_true", help="print one JSON object")
    reproduce.set_defaults(func=_reproduce)

    runs = sub.add_parser("runs", help="find runs left RUNNING by a process that is gone (killed, crashed)")
    runs.add_argument("--stale", action="store_true", required=True, help="list RUNNING runs whose process has ended")
    runs.add_argument("--experiment", help="only this experiment (default: all)")
    runs.add_argument("--mark-failed", action="store_true", help="end each stale run as FAILED, with a note")
    runs.set_defaults(func=_stale_runs)

    upload = sub.add_parser("upload", help="put a run's results kept on disk (server was gone) into the run")
    upload.add_argument("folder", help="the folder the failed run named (mlruns/unsent/<run id>)")
    upload.set_defaults(func=_upload)


def _model_commands(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="score a logged run's model on a labeled folder")
    evaluate.add_argument("run_id")
    evaluate.add_argument("folder", help="a folder with one sub-folder per class (cats/, dogs/)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(func=_evaluate)

    promote = sub.add_parser("promote", help="register the best model by validation and alias it `champion`")
    promote.add_argument("--experiment", help="experiment name (default: the configured one)")
    promote.add_argument("--variant", help="only runs of this variant")
    promote.add_argument("--run", dest="run_id", help="this run's model instead of the best one")
    promote.set_defaults(func=_promote)

    predict = sub.add_parser("predict", help="classify images or folders of images")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument("--model", default=None, help="model URI (default: models:/catdog-classifier@champion)")
    predict.add_argument("--json", action="store_true", help="one JSON object per image")
    predict.set_defaults(func=_predict)


def _experiment(args, defaults) -> str:
    return args.experiment or defaults.tracking.experiment


def _evaluate(args, defaults) -> None:
    from catdog.serving.evaluate import evaluate_run

    result = evaluate_run(args.run_id, args.folder)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['folder']}: accuracy {result['accuracy']:.1%} on {result['n']} images (run {args.run_id})")
    for name, scores in result["per_class"].items():
        accuracy = "-" if scores["accuracy"] is None else f"{scores['accuracy']:.1%}"
        print(f"  {name:<8} {scores['correct']:>5}/{scores['n']:<5} {accuracy}")


def _compare(args, defaults) -> None:
    from catdog.report import runs, summary

    experiment = _experiment(args, defaults)
    rows = summary.variant_rows(runs.load_study(experiment))
    if args.json:
        print(json.dumps(summary.to_json(rows), indent=2))
        return
    first = rows[0]
    print(f"Experiment {experiment}: test split of {first.n_test} images, baseline {first.baseline_accuracy:.1%}")
    print(summary.to_text(rows))


def _report(args, defaults) -> None:
    from catdog.report import build, summary

    experiment = _experiment(args, defaults)
    out = Path(args.out) if args.out else Path(defaults.paths.reports_dir) / experiment
    content = build.build_report(
        experiment,
        out,
        ui_url=args.ui_url,
        sweep=args.sweep,
        control=args.control,
        all_pairs=args.all_pairs,
        ledger_path=defaults.paths.ledger,
    )
    print(summary.to_text(content["rows"]))
    for c in content["decision"].comparisons:
        difference = f"{100 * c.difference:+.1f} pts {c.interval.text(True)}"
        print(f"  {c.a} vs {c.b}: {difference}, p(Holm) {c.p_holm:.3g}: {c.verdict}")
    print(f"Report: {out / 'report.html'} (and report.md); logged as run {content['report_run_id']}")
    print(content["line"])


def _reproduce(args, defaults) -> None:
    """Exit 0 only if every check came out the same."""
    from dataclasses import asdict

    from catdog.training import reproduce

    outcome = reproduce.reproduce(args.run_id, args.overrides)
    if args.json:
        plain = {k: [asdict(c) | {"same": c.same} for c in v] if k in ("checks", "context") else v
                 for k, v in outcome.items()}  # fmt: skip
        print(json.dumps(plain))
    else:
        print("\n".join(reproduce.lines(outcome)))
    if not outcome["reproduced"]:
        raise SystemExit(1)


def _plan(args, defaults) -> None:
    from catdog.power import PLANNED_DIFFERENCES
    from catdog.report import plan

    points = args.difference or [100 * d for d in PLANNED_DIFFERENCES]
    planned = plan.plan(_experiment(args, defaults), args.variant, args.budget_minutes, [p / 100 for p in points])
    print(json.dumps(planned, indent=2) if args.json else "\n".join(plan.lines(planned)))


def _upload(args, defaults) -> None:
    from catdog.tracking import unsent

    if not (Path(args.folder) / "run.json").is_file():
        raise CatdogError(f"{args.folder} holds no kept run (no run.json)")
    run_id = unsent.upload(args.folder)
    print(f"run {run_id}: metrics, scores, predictions and model uploaded from {args.folder}; the run is FINISHED")


def _stale_runs(args, defaults) -> None:
    import mlflow

    from catdog.tracking import stale

    ids = None
    if args.experiment:
        experiment = mlflow.get_experiment_by_name(args.experiment)
        if experiment is None:
            raise CatdogError(f"no experiment named {args.experiment!r} in {mlflow.get_tracking_uri()}")
        ids = [experiment.experiment_id]
    found = stale.find_stale(ids)
    for run in found:
        if args.mark_failed:
            stale.mark_failed(run)
        action = "marked FAILED" if args.mark_failed else "stale"
        print(f"{run.run_id}  {run.name}  started {run.started}, process {run.pid} gone: {action}")
    if not found:
        print("No stale runs: every RUNNING run of this host still has its process.")
    elif not args.mark_failed:
        print("Run again with --mark-failed to end them as FAILED.")


def _promote(args, defaults) -> None:
    from catdog.serving.promote import promote

    done = promote(_experiment(args, defaults), variant=args.variant, run_id=args.run_id)
    print(f"{done['name']} version {done['version']} is now @{done['alias']}: {done['description']}")
    print(f"Predict with it: catdog predict IMAGE_OR_FOLDER... (model models:/{done['name']}@{done['alias']})")


def _predict(args, defaults) -> None:
    from catdog.serving import predict

    model, class_names = predict.load(args.model or predict.DEFAULT_MODEL)
    files, refused = predict.expand(args.paths)
    for path, reason in refused:
        print(f"catdog predict: {path}: {reason}", file=sys.stderr)
    failed = len(refused)
    for item in predict.predict(model, class_names, files):
        if isinstance(item, tuple):
            failed += 1
            print(f"catdog predict: {item[0]}: not used ({item[1]})", file=sys.stderr)
        elif args.json:
            print(
                json.dumps(
                    {
                        "file": item.file,
                        "class": item.label,
                        "probability": item.probability,
                        "probabilities": item.probabilities,
                    }
                )
            )
        else:
            print(f"{item.file}\t{item.label}\t{item.probability:.3f}")
    if failed:
        raise SystemExit(1)
