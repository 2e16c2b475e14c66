"""Resuming a study: a job whose resolved config, data and code match a FINISHED run of
its experiment is not trained again. KILLED, FAILED and stale RUNNING runs never count."""

from __future__ import annotations

import hashlib
import json

from omegaconf import OmegaConf

from catdog import tracking
from catdog.schema import RunConfig
from catdog.tracking import record

RUN_KEY_TAG = "run_key"
# Where a run is logged and how it reports, not what it computes.
NOT_IN_KEY = ("tracking", "paths", "study")


def run_key(cfg: RunConfig, data_id: str) -> str:
    """A digest of what decides a run's result: its resolved config (less where it is
    logged), the data's identity and the code (commit and any uncommitted changes)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key in NOT_IN_KEY:
        resolved.pop(key, None)
    resolved.get("train", {}).pop("verbose", None)
    commit, changes = tracking.code_version()
    code = {"commit": commit, "changes": changes}
    payload = json.dumps({"config": resolved, "data": data_id, "code": code}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def finished_run(experiment_id: str, key: str):
    """The latest FINISHED run of the experiment with this key, or None."""
    runs = record.find([experiment_id], tags={RUN_KEY_TAG: key}, status=record.FINISHED, newest_first=True,
                       max_results=1)  # fmt: skip
    return runs[0] if runs else None
