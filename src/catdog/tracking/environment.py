"""What a run ran on: library versions, the CPU, the instruction sets that decide its speed
(and, for some kernels, its last bits), TensorFlow's threads and whether its oneDNN kernels
were on. Logged as `env.*` tags on
every run and shown on the review page."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from pathlib import Path

LIBRARIES = {
    "tensorflow": "tensorflow",
    "keras": "keras",
    "keras_tuner": "keras-tuner",
    "mlflow": "mlflow",
    "numpy": "numpy",
}
# /proc/cpuinfo flags that change speed or numerics here: AVX2 / AVX-512 kernels, bf16.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n")[0]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines())}


@functools.cache
def machine() -> dict[str, str]:
    """The parts that do not change while a process runs."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    out = {"env.python": platform.python_version()}
    for key, package in LIBRARIES.items():
        try:
            out[f"env.{key}"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[f"env.{key}"] = "not installed"
    out["env.cpu"] = info.get("model name") or platform.processor() or platform.machine()
    out["env.isa"] = ",".join(f for f in ISA_FLAGS if f in flags) or "none of " + ",".join(ISA_FLAGS)
    out["env.cores"] = str(os.cpu_count() or 1)
    return out


def threads() -> str:
    """TensorFlow's intra-op threads ("default" when it chooses, as it does unless a parallel
    launcher or worker set them)."""
    import sys

    if "tensorflow" not in sys.modules:
        return "default"
    import tensorflow as tf

    return str(tf.config.threading.get_intra_op_parallelism_threads() or "default")


def onednn() -> str:
    """ "on" or "off": whether TensorFlow runs its oneDNN kernels, as TensorFlow itself says
    (the variable TF_ENABLE_ONEDNN_OPTS may be unset, or set after TensorFlow was imported)."""
    from catdog import private_api

    return "on" if private_api.onednn_enabled() else "off"


def environment() -> dict[str, str]:
    """Every `env.*` tag of a run started now."""
    return {**machine(), "env.threads": threads(), "env.onednn": onednn()}
