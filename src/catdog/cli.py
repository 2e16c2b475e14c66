"""Command lines. Thin: parse, call a function that does the work, print one-line errors."""

from __future__ import annotations

import logging
import sys

import hydra

from catdog import CONFIG_DIR, CatdogError
from catdog.guard import fail, guarded
from catdog.launch.sweep import check_command_line  # its config import registers the schemas Hydra uses
from catdog.schema import RunConfig, SearchRunConfig

log = logging.getLogger("catdog")


@hydra.main(version_base=None, config_path=str(CONFIG_DIR), config_name="train")
def train(cfg: RunConfig):
    """catdog-train: one tracked training run. Returns its RunResult (a sweeper reads
    float(result): the validation accuracy); Hydra hands it to the study's progress callback."""
    from catdog import tracking, training
    from catdog.launch import job

    tracking.code_version()  # read before any work, while the checkout is the code just loaded
    job.share_cores()
    result = guarded("catdog-train", lambda: training.train(cfg, tags=job.sweep_tags()))
    log.info(
        "run %s: val accuracy %.1f%%, test accuracy %.1f%% (baseline %.1f%%)",
        result.run_id,
        100 * result.val_accuracy,
        100 * result.test_accuracy,
        100 * result.baseline_accuracy,
    )
    return result


@hydra.main(version_base=None, config_path=str(CONFIG_DIR), config_name="tune")
def tune(cfg: SearchRunConfig) -> float | None:
    """catdog-tune: a Keras Tuner search, one parent run with a nested run per trial."""
    from catdog import tracking, tuning
    from catdog.launch import job

    tracking.code_version()
    job.share_cores()

    result = guarded(
        "catdog-tune",
        lambda: tuning.tune(cfg, tags=job.sweep_tags()),
        " Run the same command again to resume the search.",
    )
    if isinstance(result, tuning.WorkerResult):
        log.info("worker %s: search %s has no trials left", result.worker, result.search_id)
        return None
    log.info(result.line())
    return result.best_score


def train_command() -> None:
    """The `catdog-train` command: its overrides checked (one line, exit 2), then the app."""
    _check_overrides("catdog-train", "train")
    train()


def tune_command() -> None:
    """The `catdog-tune` command: its overrides checked (one line, exit 2), then the app."""
    _check_overrides("catdog-tune", "tune")
    tune()


def _check_overrides(prog: str, config_name: str) -> None:
    # Hydra reports a bad override in several lines and exits 1; every job of a sweep is
    # checked here first, so no job starts on a sweep that one of them breaks.
    try:
        check_command_line(config_name, sys.argv[1:])
    except CatdogError as exc:
        fail(prog, exc)


def main(argv: list[str] | None = None) -> None:
    """catdog evaluate | compare | report | plan | reproduce | promote | predict | runs | upload: the tracking store."""
    from catdog import commands

    args = commands.parser(main.__doc__).parse_args(argv)
    import mlflow

    from catdog.config import load
    from catdog.tracking import check_reachable

    defaults = load("train")
    mlflow.set_tracking_uri(args.tracking_uri or defaults.tracking.uri)
    try:
        check_reachable(mlflow.get_tracking_uri())
        args.func(args, defaults)
    except CatdogError as exc:
        fail("catdog", exc)
