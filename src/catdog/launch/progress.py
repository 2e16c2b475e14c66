"""Where a multirun study stands. The Hydra callback knows the sweep (how many jobs, which);
each job, in whatever process a launcher runs it, reads and appends one small JSON-lines
file in the sweep folder: one line when it starts and ends ("run 5/12 cnn seed 1: 4 done,
1 skipped, about 1 h 10 min left"), and, with `study.live_report`, the review page
rewritten after every finished job."""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback

from catdog import CatdogError
from catdog.launch import sweep
from catdog.schema import RunConfig
from catdog.tracking import record

log = logging.getLogger("catdog")

LAUNCH_ENV = "CATDOG_LAUNCH"  # set for the jobs of one launch (inherited by launcher processes)


class StudyProgress(Callback):
    """Registered in conf/hydra/default.yaml: writes the launch's job list for the jobs, and
    around each training job (in whatever process a launcher runs it) says where the study
    stands."""

    _started = 0.0

    def on_job_start(self, config, **kwargs) -> None:
        if config.task == "train":
            self._started = time.monotonic()
            job_started(config)

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if config.task == "train" and job_return.status == JobStatus.COMPLETED:
            job_ended(config, job_return.return_value, time.monotonic() - self._started)

    def on_multirun_start(self, config, **kwargs) -> None:
        launch = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + str(os.getpid())
        os.environ[LAUNCH_ENV] = launch
        jobs = sweep.jobs(list(config.hydra.overrides.task))
        _append(_file(Path(config.hydra.sweep.dir), launch), {"event": "launch", "jobs": jobs})

    def on_multirun_end(self, config, **kwargs) -> None:
        state = _read()
        if state is not None:
            log.info("study: %s", _counts(state))


def _file(sweep_dir: Path, launch: str) -> Path:
    return sweep_dir / f".progress-{launch}.jsonl"


def _append(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        fcntl.flock(out, fcntl.LOCK_EX)
        out.write(json.dumps(entry) + "\n")


def _path() -> Path | None:
    launch = os.environ.get(LAUNCH_ENV)
    if not launch or not HydraConfig.initialized():
        return None
    return _file(Path(HydraConfig.get().sweep.dir), launch)


def _read() -> dict | None:
    path = _path()
    if path is None or not path.exists():
        return None
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    jobs = next((e["jobs"] for e in entries if e["event"] == "launch"), [])
    return {"jobs": jobs, "ended": [e for e in entries if e["event"] == "end"]}


def _counts(state: dict) -> str:
    outcomes = [e["outcome"] for e in state["ended"]]
    return f"{outcomes.count('done')} done, {outcomes.count('skipped')} skipped"


def _model(job: list[str]) -> str:
    return next((o.split("=", 1)[1] for o in job if o.startswith("model=")), "")


def time_left(state: dict, running: int | None = None, earlier: dict[str, list[float]] | None = None) -> str:
    """About how long the jobs not yet ended will take: each from the mean of its variant's
    runs measured in this launch, else of its variant's EARLIER runs in the store (seconds
    by variant); a variant with neither is unknown, never guessed from another."""
    ended = {e["job"] for e in state["ended"]}
    measured: dict[str, list[float]] = {}
    for e in state["ended"]:
        if e["outcome"] == "done":
            measured.setdefault(_model(state["jobs"][e["job"]]), []).append(e["seconds"])
    for variant, seconds in (earlier or {}).items():
        measured.setdefault(variant, list(seconds))
    left = [_model(job) for num, job in enumerate(state["jobs"]) if num not in ended and num != running]
    seconds = sum(statistics.fmean(measured[v]) for v in left if measured.get(v))
    unknown = Counter(v or "?" for v in left if not measured.get(v))
    known = "under a minute left" if seconds < 60 else f"about {_duration(seconds)} left"
    if not unknown:
        return known
    never = ", ".join(f"{n} of {v}" for v, n in unknown.items())
    if len(left) == sum(unknown.values()):
        return f"time left unknown: no run measured yet for {never}"
    return f"{known}, plus {never} (never run here: unknown)"


def earlier_seconds(cfg: RunConfig) -> dict[str, list[float]]:
    """Wall seconds of the FINISHED training runs in CFG's experiment, by variant: what a
    study's remaining runs are estimated from before this launch has measured its own."""
    return _earlier_seconds(cfg.tracking.uri, cfg.tracking.experiment)


@functools.cache  # once per process: this launch's own runs are counted from its progress file
def _earlier_seconds(uri: str, experiment_name: str) -> dict[str, list[float]]:
    from mlflow import MlflowClient

    from catdog import tracking

    # Under the store's set-up lock: parallel jobs must not race to create a new store.
    with tracking.store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return {}
    runs, token = [], None
    while True:  # every page, not the first 1,000 runs
        page = client.search_runs(
            [experiment.experiment_id],
            filter_string=record.where(tags={record.KIND_TAG: record.TRAIN}, status=record.FINISHED),
            page_token=token,
        )
        runs += page
        token = page.token
        if not token:
            break
    out: dict[str, list[float]] = {}
    for run in runs:
        if run.info.end_time:
            seconds = (run.info.end_time - run.info.start_time) / 1000
            out.setdefault(run.data.tags.get("variant", "?"), []).append(seconds)
    return out


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def _where(cfg: RunConfig) -> tuple[int, str]:
    num = HydraConfig.get().job.num
    return num, f"{cfg.model.name} seed {cfg.seed}"


def job_started(cfg: RunConfig) -> None:
    state = _read()
    if state is None:
        return
    num, what = _where(cfg)
    left = time_left(state, num, earlier_seconds(cfg))
    log.info("run %d/%d %s: %s, %s", num + 1, len(state["jobs"]), what, _counts(state), left)


def job_ended(cfg: RunConfig, result, seconds: float) -> None:
    """Record the job's outcome, say where the study stands, and rewrite the review page."""
    path = _path()
    if path is None:
        return
    num, what = _where(cfg)
    outcome = "skipped" if result.skipped else "done"
    _append(path, {"event": "end", "job": num, "outcome": outcome, "seconds": seconds})
    state = _read()
    log.info(
        "run %d/%d %s %s (run %s): %s, %s",
        num + 1,
        len(state["jobs"]),
        what,
        "skipped" if result.skipped else f"finished in {_duration(seconds)}",
        result.run_id,
        _counts(state),
        time_left(state, earlier=earlier_seconds(cfg)),
    )
    if cfg.study.live_report:
        _live_report(cfg, len(state["jobs"]))


def _live_report(cfg: RunConfig, expected: int) -> None:
    from catdog.report.build import build_report

    experiment = cfg.tracking.experiment
    out = Path(cfg.paths.reports_dir) / experiment
    try:
        content = build_report(
            experiment,
            out,
            sweep=Path(HydraConfig.get().sweep.dir).name,
            log_run=False,
            expected=expected,
            ledger_path=cfg.paths.ledger,
        )
    except CatdogError as exc:  # a page that cannot be made yet must not stop the study
        log.warning("review page not rewritten: %s", exc)
        return
    log.info("review page %s: %d of %d runs", out / "report.html", content["setup"]["runs"], expected)
