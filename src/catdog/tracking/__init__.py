"""Tracking: the one MLflow store every run logs to (`store`, whose API is re-exported here),
what a run records of its environment, results kept while a server is away, and runs left
behind by dead processes."""

from catdog.tracking.record import KIND_TAG
from catdog.tracking.store import (
    CHAMPION,
    DIRTY_TAG,
    REGISTERED_MODEL,
    check_reachable,
    code_version,
    configure,
    git_commit,
    git_dirty,
    is_server,
    log_code_changes,
    log_config,
    log_data,
    model_requirements,
    redact,
    run_tags,
    store_lock,
    tracked_run,
)

__all__ = [
    "CHAMPION",
    "DIRTY_TAG",
    "KIND_TAG",
    "REGISTERED_MODEL",
    "check_reachable",
    "code_version",
    "configure",
    "git_commit",
    "git_dirty",
    "is_server",
    "log_code_changes",
    "log_config",
    "log_data",
    "model_requirements",
    "redact",
    "run_tags",
    "store_lock",
    "tracked_run",
]
