"""Composing the project's Hydra configs (the `catdog` CLI, the report, tests), and Hydra's
errors in one line."""

from __future__ import annotations

import functools

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import OverrideParseException

from catdog import CONFIG_DIR, schema

schema.register()


def load(config_name: str = "train", overrides: list[str] | None = None):
    """CONFIG_NAME composed with OVERRIDES, from inside a Hydra app (whose config search path
    is the project's) or outside one."""
    if GlobalHydra.instance().is_initialized():
        return compose(config_name=config_name, overrides=list(overrides or []))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides or []))


@functools.cache
def preset_variant(preset: str) -> str:
    """The variant name `experiment=PRESET` trains under, as the working tree says now."""
    return load("train", [f"experiment={preset}"]).model.name


def one_line(exc: Exception) -> str:
    """Hydra's message in one line: its first line, the cause's first line (the key and the
    value OmegaConf refused), or the available options of a config group."""
    text = str(exc).split("Config search path:")[0]
    lines = [line for line in text.splitlines() if line.strip()]
    head = lines[0].rstrip(".") if lines else type(exc).__name__
    if isinstance(exc, OverrideParseException):
        return f"cannot parse override '{exc.override}': {head}"
    options = [line.strip() for line in lines if line.startswith("\t")]
    if options:
        where = next(line for line in lines if line.startswith("Available options"))
        return f"{head}. {where} {', '.join(options)}"
    if exc.__cause__ is not None and str(exc.__cause__).strip():
        return f"{head}: {str(exc.__cause__).splitlines()[0]}"
    return head
