"""catdog-study: the cats-vs-dogs Keras study as tracked, tunable experiments."""

import os
import platform
from pathlib import Path

from omegaconf import OmegaConf

# The repository root (src/catdog/__init__.py -> ../..): configs anchor the tracking store
# and run outputs here so that every run shares one store whatever the working directory.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"

# TensorFlow 2.21 runs its oneDNN kernels by default only on x86 CPUs with AVX512-VNNI,
# AVX512-BF16, AVX-VNNI or AMX; on AVX2-only ones it leaves them off, and a plain-CNN epoch
# there takes about 1.6x as long (docs/benchmarks.md, "oneDNN"). TensorFlow reads the
# variable once, when it is first imported, which in every entry point comes after this
# package: set here, it reaches each command, worker and launcher job. A value the user set,
# 0 included, stands; each run records what TensorFlow did (its `env.onednn` tag).
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

OmegaConf.register_new_resolver("catdog_root", lambda: str(PROJECT_ROOT), replace=True)


class CatdogError(Exception):
    """Bad input the user can fix (a setting, an argument, a file); command lines print it
    as one line and exit 2."""


class RunFailure(CatdogError):
    """The work could not be done though the input was fine: data that cannot be fetched,
    a server that does not answer, saved state that is damaged. One line, exit 1."""
