"""Runs left RUNNING by a process that died without ending them (SIGKILL, a lost machine).

Every run records the host, process id and process start time that own it; a RUNNING run
whose process is gone on this host is stale and can be marked FAILED with a note."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow

HOST_TAG, PID_TAG, START_TAG = "host", "pid", "process_start"


def process_start(pid: int) -> str | None:
    """When process PID started (clock ticks since boot, Linux /proc), to tell a reused pid
    from the original process; None where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[19]  # field 22 of stat(5), counted after the command name


def owner_tags() -> dict[str, str]:
    """The host, process id and process start time that own a run: what finds it stale later."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    start = process_start(os.getpid())
    if start:
        tags[START_TAG] = start
    return tags


def alive(pid: int, start: str | None) -> bool:
    """Whether process PID is alive and is the one that started at START (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    return start is None or process_start(pid) in (None, start)


@dataclass(frozen=True)
class StaleRun:
    run_id: str
    experiment_id: str
    name: str
    pid: int
    started: str


def find_stale(experiment_ids: list[str] | None = None) -> list[StaleRun]:
    """RUNNING runs owned by processes of this host that no longer exist."""
    runs = mlflow.search_runs(
        experiment_ids=experiment_ids,
        search_all_experiments=experiment_ids is None,
        filter_string=f"attributes.status = 'RUNNING' and tags.{HOST_TAG} = '{socket.gethostname()}'",
        output_format="list",
    )
    out = []
    for run in runs:
        pid = run.data.tags.get(PID_TAG)
        if pid and pid.isdigit() and not alive(int(pid), run.data.tags.get(START_TAG)):
            started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.info.start_time / 1000))
            out.append(StaleRun(run.info.run_id, run.info.experiment_id, run.info.run_name, int(pid), started))
    return out


def mark_failed(stale: StaleRun) -> None:
    """End STALE as FAILED, with a note saying who ended it and why."""
    client = mlflow.MlflowClient()
    note = (
        f"Marked FAILED by `catdog runs --stale --mark-failed` on {time.strftime('%Y-%m-%d %H:%M')}: "
        f"its process {stale.pid} on {socket.gethostname()} had ended without ending the run."
    )
    client.set_tag(stale.run_id, "mlflow.note.content", note)
    client.set_terminated(stale.run_id, status="FAILED")
