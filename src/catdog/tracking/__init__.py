"""Tracking: the one MLflow store every run logs to (`store`, whose API is re-exported here),
loading logged models to predict, results kept while a server is away, and runs left
behind by dead processes."""

from catdog.tracking.store import (
    DIRTY_TAG,
    KIND_TAG,
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
    tracked_run,
)

__all__ = [
    "DIRTY_TAG",
    "KIND_TAG",
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
    "tracked_run",
]
