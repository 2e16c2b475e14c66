"""A local worker of a distributed search, started by `distributed.local_workers` as
`python -m catdog.tuning.worker CONFIG`: it runs the chief's trials on CONFIG."""

from __future__ import annotations

import logging
import os
import sys

from omegaconf import OmegaConf

from catdog.guard import guarded
from catdog.launch import job
from catdog.tuning.distributed import ID_VAR
from catdog.tuning.search import tune


def main(argv: list[str] | None = None) -> None:
    """Run the chief's trials on the config file ARGV[0], in this worker process."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    cfg = OmegaConf.load((argv or sys.argv[1:])[0])
    job.limit_threads(int(os.environ.get("CATDOG_THREADS", "0")) or None)
    guarded(f"catdog-tune {os.environ.get(ID_VAR, 'worker')}", lambda: tune(cfg))


if __name__ == "__main__":
    main()
