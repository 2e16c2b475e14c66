"""Composing the project's Hydra configs outside a Hydra app (the `catdog` CLI, tests)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from catdog import CONFIG_DIR


def load(config_name: str = "train", overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides or []))
